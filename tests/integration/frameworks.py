"""Running a user's program, unmodified, the way a user would: plain, or under
``clientdedupe run``; each run talks to a loopback StubServer of its own, which counts
what the program did on the wire.

"Never worse than plain" (SPEC §6) is what :func:`assert_never_worse` checks on a pair
of runs of one program: no more TCP connections, no more connections held open at once,
no more sockets left open at the end, no warning, error or traceback that the plain run
does not print too.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clientdedupe._tools.stub_server import RecordedRequest, StubServer

from ..processes import clean_environment

APPS = Path(__file__).parent / "apps"

#: How many model objects (agents, tasks) each program builds, one call each.
AGENTS = 50

#: A bound on every program: heavy imports on a loaded 2-core machine take seconds.
TIMEOUT = 240

#: What every program runs with: loopback only, no framework's telemetry, and the
#: warnings about leaked sockets and transports shown (Python hides ResourceWarning by
#: default), so that a run that leaks what plain does not is seen.
QUIET = {
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYTHONWARNINGS": "default::ResourceWarning",
    "OTEL_SDK_DISABLED": "true",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "AUTOGEN_DISABLE_RUNTIME_TRACING": "true",
    "LOGFIRE_SEND_TO_LOGFIRE": "false",
    "LOGFIRE_CONSOLE": "false",
}


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
ACTIVATIONS = (PLAIN, LAUNCHER)


@dataclass
class Run:
    """One run of a program: what it printed, and what its server saw."""

    activation: Activation
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    #: TCP connections the server accepted.
    connections: int
    #: Connections the program held open at once, at most (counted so that the moment
    #: the server notices a close cannot change it: StubServer.max_client_open_connections).
    peak: int
    requests: list[RecordedRequest] = field(repr=False)
    #: The program's last stdout line, parsed.
    figures: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.figures[name]

    def describe(self) -> str:
        return f"{' '.join(self.argv)} exited {self.returncode}:\n{self.stderr}"


def run_app(
    app: str,
    *args: str,
    activation: Activation,
    setup: Callable[[StubServer], None] | None = None,
    prefix: Iterable[str] = (),
    check: bool = True,
    **env: str,
) -> Run:
    """Run ``apps/<app>`` with ``args`` and ``env`` against a fresh stub server.

    In ``args`` and ``env`` values, ``{server.url}`` and the other attributes of the
    server are filled in. ``setup`` prepares the server; ``prefix`` goes before the
    whole command (another launcher). With ``check``, the program must exit 0 and print
    its JSON line.
    """
    with StubServer() as server:
        if setup is not None:
            setup(server)
        argv = [
            *prefix,
            *activation.command,
            sys.executable,
            str(APPS / app),
            *(arg.format(server=server) for arg in args),
        ]
        values = {**QUIET, **{name: value.format(server=server) for name, value in env.items()}}
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=clean_environment(**values),
            timeout=TIMEOUT,
        )
        run = Run(
            activation,
            argv,
            completed.returncode,
            completed.stdout,
            completed.stderr,
            server.connections,
            server.max_client_open_connections,
            server.requests,
        )
    lines = completed.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        run.figures = json.loads(lines[-1])
    if check:
        assert run.returncode == 0, run.describe()
        assert run.figures, f"{' '.join(argv)} printed no result:\n{run.stderr}"
    return run


def before_after(app: str, *args: str, **kwargs: Any) -> tuple[Run, Run]:
    """The same program run plain, then under ``clientdedupe run``."""
    return (
        run_app(app, *args, activation=PLAIN, **kwargs),
        run_app(app, *args, activation=LAUNCHER, **kwargs),
    )


_PROBLEM = re.compile(
    r"Traceback \(most recent call last\)|\b\w*(Warning|Error|Exception)\b|never retrieved"
    r"|Exception ignored"
)
#: The first line of a warning as the warnings module prints it; the next line is the
#: source line it points at.
_WARNING = re.compile(r"^\S.*:\d+: (\w*Warning): ")
_NOISE = "ResourceWarning: Enable tracemalloc to get the object allocation traceback"


def resource_warnings(stderr: str) -> int:
    """How many ResourceWarnings (an unclosed socket, transport, event loop...) a
    program printed."""
    return sum(
        1
        for line in stderr.splitlines()
        if (match := _WARNING.search(line)) and match.group(1) == "ResourceWarning"
    )


def problems(stderr: str) -> collections.Counter[str]:
    """The warnings, errors and tracebacks a program printed, one entry per line, with
    addresses and numbers blanked so that two runs of one program compare.

    ResourceWarnings are left out: a socket left to the garbage collector is reported as
    an unclosed transport, an unclosed socket, both or (still reachable at exit) neither,
    depending on when the collector happens to run. :func:`assert_never_worse` compares
    the sockets a program still holds instead, and that a program that leaks nothing
    still leaks nothing.
    """
    found: collections.Counter[str] = collections.Counter()
    resource_warning = False
    for line in stderr.splitlines():
        warning = _WARNING.search(line)
        if warning:
            resource_warning = warning.group(1) == "ResourceWarning"
            if resource_warning:
                continue
        elif resource_warning and line.startswith("  "):
            continue  # the source line a ResourceWarning points at
        else:
            resource_warning = False
        if line.strip() == _NOISE:
            continue
        if _PROBLEM.search(line):
            found[re.sub(r"0x[0-9a-fA-F]+|\d+", "N", line.strip())] += 1
    return found


def assert_never_worse(before: Run, after: Run, *, connections: bool = True, idle: int = 0) -> None:
    """``after`` (clientdedupe) did no worse than ``before`` (plain): no more TCP
    connections, no more held open at once, no more sockets still open when the program
    ends, no warning, error or traceback that plain does not print, and no leaked
    resource at all if plain leaks none. ``connections=False`` leaves out the count of
    TCP connections, for programs whose plain run fails part of its calls (a failed call
    opens no new connection). ``idle`` clients that every holder has closed may still
    keep a connection at the end: the cache keeps them for the next construction of
    their key (SPEC §6), where plain has closed them."""
    if connections:
        assert after.connections <= before.connections, (before.connections, after.connections)
    assert after.peak <= before.peak, (before.peak, after.peak)
    if "sockets" in before.figures:
        assert after["sockets"] <= before["sockets"] + idle, (before["sockets"], after["sockets"])
    new = problems(after.stderr) - problems(before.stderr)
    assert not new, f"printed under clientdedupe only: {dict(new)}\n{after.stderr}"
    if resource_warnings(before.stderr) == 0:
        assert resource_warnings(after.stderr) == 0, after.stderr
    record(before, after)


def record(before: Run, after: Run) -> None:
    """Append the pair's figures to ``$WORKS_WITH_LOG`` (one JSON line), if set: the
    measurements docs/works-with.md is written from."""
    path = os.environ.get("WORKS_WITH_LOG")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]

    def figures(run: Run) -> dict[str, Any]:
        counts = {k: v for k, v in run.figures.items() if k.endswith(("clients", "sockets"))}
        return {"connections": run.connections, "peak": run.peak, **counts}

    line = {
        "test": test,
        "before": figures(before),
        "after": figures(after),
        "versions": after.figures.get("versions", {}),
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def needs(*modules: str) -> pytest.MarkDecorator:
    """The modules a test drives (``pip install -e '.[integration]'`` and the other
    integration extras). Missing ones skip the test, except in the nox session that
    installs them, where they fail it (tests/integration/conftest.py)."""
    return pytest.mark.needs(*modules)
