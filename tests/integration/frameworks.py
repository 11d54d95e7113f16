"""Running a user's program, unmodified, the way a user would: plain, or under
``clientdedupe run``; it talks to a loopback StubServer owned by the test."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..processes import run

APPS = Path(__file__).parent / "apps"

#: How many model objects (agents, tasks) each program builds, one call each.
AGENTS = 50


@dataclass(frozen=True)
class Activation:
    """How the user starts the program."""

    name: str
    command: tuple[str, ...]
    #: Whether clientdedupe is active in the program.
    deduplicated: bool

    def __repr__(self) -> str:
        return self.name


PLAIN = Activation("plain", (), deduplicated=False)
LAUNCHER = Activation(
    "clientdedupe run", (sys.executable, "-m", "clientdedupe", "run", "--"), deduplicated=True
)
LAUNCHER_ASYNC_GLOBAL = Activation(
    "clientdedupe run --async-mode global",
    (sys.executable, "-m", "clientdedupe", "run", "--async-mode", "global", "--"),
    deduplicated=True,
)
ACTIVATIONS = (PLAIN, LAUNCHER)


def run_app(app: str, *args: str, activation: Activation, **env: str) -> dict[str, Any]:
    """Run ``apps/<app>`` with ``args`` and ``env``; its last stdout line, parsed."""
    argv = [*activation.command, sys.executable, str(APPS / app), *args]
    result = run(argv, **env)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines, f"{' '.join(argv)} printed nothing:\n{result.stderr}"
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip unless every module is installed (``pip install -e '.[integration]'``).

    Only installed-ness is checked, without importing: a framework that is installed
    but fails to import (or to work with an SDK version) fails its test.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not installed (pip install -e '.[integration]')",
    )
