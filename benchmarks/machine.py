"""The machine and the versions a benchmark run came from."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

DISTRIBUTIONS = ("openai", "groq", "cerebras-cloud-sdk", "wrapt", "httpx", "httpx2")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(folder: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() or None


def describe() -> dict[str, Any]:
    """Python, platform, CPUs, load, and the versions of the SDKs and of wrapt."""
    import clientdedupe

    try:
        cpus_usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus_usable = os.cpu_count()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": cpus_usable,
        "load_average": load,
        "clientdedupe": clientdedupe.__version__,
        "git": _git_commit(Path(clientdedupe.__file__).resolve().parent.parent),
        "versions": {name: _version(name) for name in DISTRIBUTIONS},
        "executable": sys.executable,
    }


def summary(info: dict[str, Any]) -> str:
    """One line for the top of the table."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v is not None)
    return (
        f"{info['implementation']} {info['python']} on {info['platform']}, "
        f"{info['cpus']} CPUs (load {info['load_average']}); clientdedupe "
        f"{info['clientdedupe']} ({info['git']}); {versions}"
    )
