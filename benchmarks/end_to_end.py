"""End-to-end and scaling: N agents, each building its client and making one chat
request to a loopback server, run by the shipped example in fresh interpreters, plainly
and under ``clientdedupe run``, interleaved.

The example measures itself (wall time, RSS, open file descriptors); the server counts
TCP connections and TLS handshakes. Over TLS the clients trust the system's authorities
plus the throwaway one, so that building an SSL context costs what it costs for real.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from clientdedupe._tools.demo import ExampleRun, example_command, run_example, serving
from clientdedupe._tools.stub_server import StubServer

from .report import Row, Target, not_run

if TYPE_CHECKING:
    pass

SECTION = "End-to-end: N agents, one client and one chat request each (median of runs)"
SCALING = "Scaling: sync, plain HTTP"
WALL_LOWER = Target("lower", 10)
RSS_LOWER = Target("lower", 50)
FLAT = Target("within", 1.5)
LINEAR = Target("between", 2.0, low=0.5)


@dataclass
class Pair:
    """Runs of one configuration, without and with clientdedupe."""

    agents: int
    without: list[ExampleRun] = field(default_factory=list)
    with_: list[ExampleRun] = field(default_factory=list)
    #: Why the configuration could not run at all, or "".
    skipped: str = ""

    @property
    def failure(self) -> str:
        """Why the figures are missing, or ""."""
        if self.skipped:
            return self.skipped
        for run in self.without + self.with_:
            if not run.ok:
                tail = run.stderr.strip().splitlines()[-1:] or [f"exit code {run.returncode}"]
                return f"the example failed: {tail[0]}"
        return ""

    def median(self, metric: Callable[[ExampleRun], float]) -> tuple[float, float]:
        """The median of ``metric`` without and with clientdedupe."""
        return (
            statistics.median(metric(run) for run in self.without),
            statistics.median(metric(run) for run in self.with_),
        )


def wall(run: ExampleRun) -> float:
    """Seconds to build the agents and make their requests."""
    return float(run.result["wall_seconds"])


def per_extra_agent(run: ExampleRun) -> float:
    """Seconds per agent after the first (which pays the SDK's first-request costs)."""
    agents = int(run.result["agents"])
    if agents < 2:
        return wall(run)
    return (wall(run) - float(run.result["first_agent_seconds"])) / (agents - 1)


def rss_growth(run: ExampleRun) -> float:
    """Peak RSS at the end minus RSS before the first agent."""
    return float(run.result["rss_growth_bytes"])


def rss_growth_after_first(run: ExampleRun) -> float:
    """Peak RSS at the end minus RSS after the first agent."""
    return float(run.result["rss_growth_after_first_bytes"])


def run_pair(
    server: StubServer,
    env: dict[str, str],
    agents: int,
    *,
    use_async: bool,
    repeats: int,
    log: Callable[[str], None],
    label: str,
) -> Pair:
    """``repeats`` runs without and with clientdedupe, alternating."""
    pair = Pair(agents)
    timeout = 120.0 + agents
    for i in range(repeats):
        for dedupe, runs in ((False, pair.without), (True, pair.with_)):
            log(f"{label}, {'with' if dedupe else 'without'}, run {i + 1}/{repeats}")
            command = example_command(agents, use_async=use_async, dedupe=dedupe)
            run = run_example(command, env, server, timeout=timeout)
            runs.append(run)
            if not run.ok:
                return pair
    return pair


def configuration_rows(name: str, tls: bool, pair: Pair) -> list[Row]:
    """The end-to-end rows of one configuration (``sync/http``...)."""
    n = pair.agents
    prefix = f"e2e.{name.replace('/', '.')}"
    metrics: list[tuple[str, str, str, Callable[[ExampleRun], float], Target | None]] = [
        ("clients", "clients built", "count", lambda r: r.result["clients_built"], None),
        ("connections", "TCP connections", "count", lambda r: r.connections, None),
        ("handshakes", "TLS handshakes", "count", lambda r: r.tls_handshakes, None),
        ("wall", "wall time", "s", wall, WALL_LOWER),
        ("wall_per_extra_agent", "time per agent after the first", "s", per_extra_agent, None),
        ("fds", "peak open file descriptors", "count", lambda r: r.result["peak_open_fds"], None),
        ("rss", "RSS growth", "bytes", rss_growth, RSS_LOWER),
        (
            "rss_after_first",
            "RSS growth after the first agent",
            "bytes",
            rss_growth_after_first,
            None,
        ),
    ]
    rows = []
    for key, label, unit, metric, target in metrics:
        if key == "handshakes" and not tls:
            continue
        if key in ("clients", "connections", "handshakes"):
            target = Target("to_one", n=n)
        row_id, row_label = f"{prefix}.{key}", f"{name}, N={n}: {label}"
        if pair.failure:
            rows.append(not_run(row_id, SECTION, row_label, unit, pair.failure))
            continue
        without, with_ = pair.median(metric)
        rows.append(Row(row_id, SECTION, row_label, unit, without, with_, target))
    _explain(rows, prefix)
    return rows


def _explain(rows: list[Row], prefix: str) -> None:
    """Say what limits a missed wall-time or RSS target."""
    by_id = {row.id: row for row in rows}
    for key, extra_key, what in (
        ("wall", "wall_per_extra_agent", "time"),
        ("rss", "rss_after_first", "RSS growth"),
    ):
        row, extra = by_id.get(f"{prefix}.{key}"), by_id.get(f"{prefix}.{extra_key}")
        if row is None or row.met is not False or extra is None or extra.ratio is None:
            continue
        row.note = (
            f"{row.label}: both runs pay the first agent's fixed cost (the SDK's lazy "
            f"imports on the first request, the first client); after it, the {what} "
            f"per agent is {extra.ratio:.0f}x lower with clientdedupe"
        )


def measure(
    agents: int, repeats: int, scaling: tuple[int, ...], log: Callable[[str], None]
) -> tuple[list[Row], list[Row]]:
    """The end-to-end rows (sync/async x HTTP/TLS) and the scaling rows."""
    rows: list[Row] = []
    pairs: dict[int, Pair] = {}
    for tls in (False, True):
        scheme = "tls" if tls else "http"
        missing = _tls_unavailable() if tls else ""
        if missing:
            for mode in ("sync", "async"):
                rows += configuration_rows(f"{mode}/{scheme}", tls, Pair(agents, skipped=missing))
            continue
        with serving(tls) as (server, env):
            for mode in ("sync", "async"):
                name = f"{mode}/{scheme}"
                pair = run_pair(
                    server,
                    env,
                    agents,
                    use_async=mode == "async",
                    repeats=repeats,
                    log=log,
                    label=f"end-to-end {name} N={agents}",
                )
                rows += configuration_rows(name, tls, pair)
                if name == "sync/http":
                    pairs[agents] = pair
            for n in scaling if not tls else ():
                if n not in pairs:
                    # A large N without clientdedupe is slow: one run of it is enough.
                    times = repeats if n <= agents else 1
                    label = f"scaling N={n}"
                    pairs[n] = run_pair(
                        server, env, n, use_async=False, repeats=times, log=log, label=label
                    )
    return rows, scaling_rows({n: pairs[n] for n in scaling if n in pairs})


def _tls_unavailable() -> str:
    try:
        import trustme  # noqa: F401
    except ImportError:
        return "trustme is not installed (pip install trustme)"
    return ""


def scaling_rows(pairs: dict[int, Pair]) -> list[Row]:
    """Per N: time per agent, connections, RSS growth; then whether the cost per agent
    stays flat with clientdedupe and the totals grow linearly without it."""
    rows: list[Row] = []
    for n, pair in sorted(pairs.items()):
        for key, label, unit, metric in (
            ("time_per_agent", "time per agent after the first", "s", per_extra_agent),
            ("connections", "TCP connections", "count", lambda r: float(r.connections)),
            ("rss", "RSS growth", "bytes", rss_growth),
        ):
            row_id, row_label = f"scaling.N{n}.{key}", f"N={n}: {label}"
            if pair.failure:
                rows.append(not_run(row_id, SCALING, row_label, unit, pair.failure))
                continue
            without, with_ = pair.median(metric)
            target = Target("to_one", n=n) if key == "connections" else None
            rows.append(Row(row_id, SCALING, row_label, unit, without, with_, target))
    ok = {n: pair for n, pair in pairs.items() if not pair.failure}
    if len(ok) < 2:
        return rows
    small, large = min(ok), max(ok)
    trend: list[tuple[str, str, str, int, Callable[[ExampleRun], float], Target]] = [
        ("with_time_per_agent", "with: time per agent", "s", 1, per_extra_agent, FLAT),
        ("with_rss", "with: RSS growth", "bytes", 1, rss_growth, FLAT),
        ("without_time_per_agent", "without: time per agent", "s", 0, per_extra_agent, LINEAR),
        (
            "without_rss_per_agent",
            "without: RSS growth per agent",
            "bytes",
            0,
            lambda r: rss_growth_after_first(r) / max(int(r.result["agents"]) - 1, 1),
            LINEAR,
        ),
    ]
    for key, label, unit, side, metric, target in trend:
        first, last = ok[small].median(metric)[side], ok[large].median(metric)[side]
        rows.append(
            Row(
                f"scaling.{key}",
                SCALING,
                f"{label}, N={small} | N={large}",
                unit,
                first,
                last,
                target,
                extra={"columns": [f"N={small}", f"N={large}"]},
            )
        )
    return rows
