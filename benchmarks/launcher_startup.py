"""What the launcher's sitecustomize adds to every Python process ``clientdedupe run``
starts, measured on a child with nothing to do (``python -c pass``).

    .venv/bin/python benchmarks/launcher_startup.py [--runs 30]

Each run starts the child plainly, then with the launcher's environment, back to back
(paired, so that the load of a shared machine hits both alike); the figure is the median
of the paired differences. Target: at most +3 ms (issue 11). Two children:

- activated: ``CLIENTDEDUPE=1`` and the launcher's directory first on ``PYTHONPATH``, as
  ``clientdedupe run`` sets them (the sitecustomize imports clientdedupe and installs);
- opted out: the same path, ``CLIENTDEDUPE`` unset (a child that unset it).

And two interpreters: this one, and a bare virtualenv that has nothing installed (an
editable install's path finder, as in a development virtualenv, imports
``importlib.util`` and ``pathlib`` at start-up whatever the launcher does, which hides
what the sitecustomize would cost in an environment installed from a wheel).
Bytecode is cached in a temporary folder, as after ``pip install``. Besides the wall
time, the CPU time (user + system) each child used is compared the same way: on a
loaded machine it moves far less than the wall time, and for a single-threaded start-up
the two are the same on an idle one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from clientdedupe._tools.launcher import LAUNCH_PATH  # noqa: E402


def _environment(bytecode: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTDEDUPE")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = bytecode
    env["PYTHONPATH"] = REPO  # both children can import clientdedupe from the checkout
    env.update(extra)
    return env


def _once(python: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -c pass``."""
    started = time.perf_counter()
    child = subprocess.Popen([python, "-c", "pass"], env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{python} -c pass exited with {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def paired_ms(
    python: str, plain: dict[str, str], launched: dict[str, str], runs: int
) -> tuple[float, float]:
    """The medians, over ``runs`` pairs, of launched minus plain: wall and CPU time, in
    milliseconds."""
    for _ in range(3):  # write the bytecode, warm the caches
        _once(python, plain)
        _once(python, launched)
    wall, cpu = [], []
    for _ in range(runs):
        base_wall, base_cpu = _once(python, plain)
        this_wall, this_cpu = _once(python, launched)
        wall.append(this_wall - base_wall)
        cpu.append(this_cpu - base_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="paired runs (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clientdedupe-launch-") as folder:
        bare = os.path.join(folder, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True)
        bytecode = os.path.join(folder, "pyc")
        plain = _environment(bytecode)
        path = os.pathsep.join([LAUNCH_PATH, REPO])
        activated = _environment(bytecode, PYTHONPATH=path, CLIENTDEDUPE="1")
        opted_out = _environment(bytecode, PYTHONPATH=path)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"python -c pass, median of {args.runs} paired runs, added by the launcher "
            f"({os.cpu_count()} CPUs, load average {load}):"
        )
        for name, python in (
            ("this interpreter", sys.executable),
            ("a bare virtualenv", os.path.join(bare, "bin", "python")),
        ):
            on, on_cpu = paired_ms(python, plain, activated, args.runs)
            off, off_cpu = paired_ms(python, plain, opted_out, args.runs)
            verdict = "met" if on <= 3.0 else "NOT met"
            print(
                f"  {name:<18} activated {on:+.2f} ms wall ({verdict}: <= +3 ms), "
                f"{on_cpu:+.2f} ms CPU; opted out {off:+.2f} ms wall, {off_cpu:+.2f} ms CPU"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
