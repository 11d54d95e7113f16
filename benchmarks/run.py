"""The benchmark command: ``python benchmarks/run.py [--quick] [--json PATH] [--profile]``.

Prints one table (row, without, with, ratio, target, met) and writes the same figures
as JSON (default ``benchmarks/results/latest.json``). Every figure is measured with and
without clientdedupe in this one run: the machines are shared and noisy, so absolute
times do not carry from run to run, ratios do. The full run takes a few minutes on two
cores; ``--quick`` (tiny N, few samples) well under a minute, for smoke tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # Run as a script, sys.path[0] is this folder, whose modules would shadow others
    # (``startup``, ``machine``...): replace it by the checkout, so that ``benchmarks``
    # and this checkout's clientdedupe are importable.
    sys.path[0] = str(ROOT)

from benchmarks import constructors, end_to_end, machine, startup, warmup  # noqa: E402
from benchmarks.report import Row, format_table  # noqa: E402

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    agents: int
    repeats: int
    scaling: tuple[int, ...]
    constructor_samples: int
    hit_min_time: float
    startup_runs: int
    cerebras_constructions: int


FULL = Settings(
    agents=100,
    repeats=3,
    scaling=(10, 100, 1000),
    constructor_samples=25,
    hit_min_time=0.02,
    startup_runs=40,
    cerebras_constructions=100,
)
QUICK = Settings(
    agents=5,
    repeats=1,
    scaling=(2, 5),
    constructor_samples=3,
    hit_min_time=0.002,
    startup_runs=6,
    cerebras_constructions=5,
)


def _log(message: str) -> None:
    sys.stderr.write(f"benchmarks: {message}\n")
    sys.stderr.flush()


def _prepare_process() -> None:
    """Loopback only, no clientdedupe variable from the caller, and enough file
    descriptors for N=1000 clients without clientdedupe."""
    for name in [n for n in os.environ if n.startswith("CLIENTDEDUPE")]:
        del os.environ[name]
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(settings: Settings, *, profile: bool = False) -> dict[str, Any]:
    """Measure everything; returns the report (machine, settings, rows, profile)."""
    from clientdedupe._tools.stub_server import StubServer

    _prepare_process()
    started = time.perf_counter()
    info = machine.describe()
    rows: list[Row] = []
    _log(f"start-up, {settings.startup_runs} runs each")
    rows += startup.measure(settings.startup_runs)
    profile_text = ""
    with StubServer() as server:
        _log("constructor cost, every class")
        rows += constructors.measure(
            server, samples=settings.constructor_samples, min_time=settings.hit_min_time
        )
        _log(f"cerebras, {settings.cerebras_constructions} constructions")
        rows += warmup.measure(server, settings.cerebras_constructions)
        if profile:
            from benchmarks import profile_hit

            _log("profiling the cache-hit path")
            profile_text = profile_hit.profile(server)
    e2e_rows, scaling_rows = end_to_end.measure(
        settings.agents, settings.repeats, settings.scaling, _log
    )
    rows += e2e_rows + scaling_rows
    return {
        "machine": info,
        "settings": settings.__dict__,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": [row.as_json() for row in rows],
        "table": format_table(rows),
        "profile": profile_text,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 even when a target is missed)."""
    parser = argparse.ArgumentParser(
        description="clientdedupe benchmarks: every figure without and with it, in one run."
    )
    parser.add_argument("--quick", action="store_true", help="tiny N and few samples")
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the figures ({DEFAULT_JSON})",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of the cache-hit path"
    )
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL, profile=args.profile)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    rows = report["rows"]
    judged = [row for row in rows if row["met"] is not None]
    missed = [row["label"] for row in judged if not row["met"]]
    print(f"clientdedupe benchmarks{' (--quick)' if args.quick else ''}")
    print(machine.summary(report["machine"]))
    print()
    print(report["table"])
    print()
    print(f"{len(judged) - len(missed)} of {len(judged)} targets met in {report['seconds']} s.")
    if missed:
        print("Missed: " + "; ".join(missed))
    print(f"Figures written to {args.json}")
    if report["profile"]:
        print()
        print(report["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
