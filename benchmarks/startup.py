"""Start-up cost: ``python -c "import clientdedupe; clientdedupe.install()"`` against
``python -c pass``, in fresh interpreters, interleaved, median difference.

Every process started with the sitecustomize pays this, so it must stay in the low
milliseconds and import no SDK, nor wrapt (SPEC §8). Bytecode is cached, as it is after
``pip install``, but in a temporary folder (``PYTHONPYCACHEPREFIX``), so that a
``PYTHONDONTWRITEBYTECODE`` in the caller's environment does not make every run compile
clientdedupe from source, and the checkout gets no ``__pycache__``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from clientdedupe._tools.demo import package_root

from .report import Row, Target

SECTION = "Start-up cost (fresh interpreter, median)"
BASELINE = "pass"
INSTALL = "import clientdedupe; clientdedupe.install()"
#: Modules that must not be imported at start-up.
HEAVY = ("wrapt", "openai", "groq", "cerebras", "httpx", "httpx2", "pydantic")
_PROBE = f"""
import json, sys
before = set(sys.modules)
{INSTALL}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def environment(bytecode: str) -> dict[str, str]:
    """This environment without any clientdedupe variable, able to import clientdedupe,
    caching bytecode in the folder ``bytecode``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTDEDUPE")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = bytecode
    root = package_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + [root]
        )
    return env


def _time_once(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def imported_modules(env: dict[str, str]) -> list[str]:
    """The modules ``import clientdedupe; clientdedupe.install()`` imports."""
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, check=True, capture_output=True, text=True
    )
    modules: list[str] = json.loads(probe.stdout.strip().splitlines()[-1])
    return modules


def import_times(env: dict[str, str]) -> list[tuple[str, int]]:
    """``-X importtime``: microseconds of each module ``INSTALL`` imports (self time),
    largest first."""
    probe = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", INSTALL],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    times = []
    for line in probe.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|") if "|" in line else []
        if len(parts) == 3 and parts[0].strip().isdigit():
            times.append((parts[2].strip(), int(parts[0])))
    return sorted(times, key=lambda item: -item[1])


def measure(runs: int) -> list[Row]:
    """The start-up rows: the added time, and whether anything heavy was imported."""
    with tempfile.TemporaryDirectory(prefix="clientdedupe-pyc-") as bytecode:
        env = environment(bytecode)
        for _ in range(2):  # write the bytecode of both, warm the file system caches
            _time_once(BASELINE, env)
            _time_once(INSTALL, env)
        baseline, installed = [], []
        for _ in range(runs):
            baseline.append(_time_once(BASELINE, env))
            installed.append(_time_once(INSTALL, env))
        modules = imported_modules(env)
        times = import_times(env)
    heavy = sorted({m for m in modules if m.split(".")[0] in HEAVY})
    ours = [m for m in modules if m.split(".")[0] == "clientdedupe"]
    others = [m for m in modules if m.split(".")[0] != "clientdedupe"]
    slowest = ", ".join(f"{name} {us} us" for name, us in [t for t in times if t[0] in modules][:4])
    return [
        Row(
            "startup.install",
            SECTION,
            f"python -c pass -> + {INSTALL} ({runs} runs each)",
            "s",
            statistics.median(baseline),
            statistics.median(installed),
            Target("added", 0.005),
            note=f"-X importtime, largest self times: {slowest}",
            extra={"baseline_runs": baseline, "install_runs": installed, "importtime": times},
        ),
        Row(
            "startup.heavy_imports",
            SECTION,
            "SDK, HTTP or wrapt modules imported by install()",
            "count",
            0,
            len(heavy),
            Target("added", 0),
            note=(
                f"install() imported {len(ours)} clientdedupe modules and, outside it: "
                f"{', '.join(others) or 'nothing'}"
            ),
            extra={"imported": modules, "heavy": heavy},
        ),
    ]
