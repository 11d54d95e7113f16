"""The same program run plain and under ``clientdedupe run``, for "never worse than
plain" comparisons (SPEC §6), and a stub server in a process of its own (so that its
sockets do not count against the program's file-descriptor limit)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

from .processes import clean_environment

# Measurements a program can print as its last line, as JSON.
MEASURE = '''
import gc, json, os

def open_sockets():
    """Sockets this process has open (file descriptors that are sockets)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count

def open_fds():
    return len(os.listdir("/proc/self/fd"))

def live(cls):
    """Objects of exactly ``cls`` still alive after a full collection."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is cls)

def report(**figures):
    try:
        import clientdedupe
        figures["stats"] = clientdedupe.stats()
    except Exception:
        figures["stats"] = {}
    print(json.dumps(figures))
'''


class Run:
    """One run of a program: its exit code, stderr and the figures it reported."""

    def __init__(self, completed: subprocess.CompletedProcess[str]) -> None:
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        lines = completed.stdout.strip().splitlines()
        self.figures: dict[str, Any] = json.loads(lines[-1]) if lines else {}

    def __getitem__(self, name: str) -> Any:
        return self.figures[name]

    def stats(self, qualname: str) -> dict[str, Any]:
        return self.figures["stats"][qualname]  # type: ignore[no-any-return]


def run(code: str, *, deduplicated: bool, python_args: tuple[str, ...] = (), **env: str) -> Run:
    """``code`` (dedented, with ``MEASURE`` before it) in a fresh interpreter, plain or
    under ``clientdedupe run``."""
    program = MEASURE + textwrap.dedent(code)
    command = [sys.executable, *python_args, "-c", program]
    if deduplicated:
        command = [sys.executable, "-m", "clientdedupe", "run", "--", *command]
    environment = clean_environment(NO_PROXY="127.0.0.1,localhost", **env)
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=300
    )
    return Run(completed)


def both(code: str, **kwargs: Any) -> tuple[Run, Run]:
    """``code`` run plain, then under ``clientdedupe run``; both must succeed."""
    plain, deduplicated = (
        run(code, deduplicated=False, **kwargs),
        run(code, deduplicated=True, **kwargs),
    )
    assert plain.returncode == 0, plain.stderr
    assert deduplicated.returncode == 0, deduplicated.stderr
    return plain, deduplicated


_SERVER = """
import json, sys
from clientdedupe._tools.stub_server import StubServer
server = StubServer().start()
print(server.url, flush=True)
for line in sys.stdin:
    if line.strip() == "reset":
        server.reset_counters()
        print("{}", flush=True)
        continue
    server.settled_open_connections(0, timeout=5)
    print(json.dumps({"connections": server.connections, "peak": server.max_open_connections,
                      "open": server.open_connections, "requests": len(server.requests)}),
          flush=True)
server.stop()
"""


class ServerProcess:
    """A stub server running in a process of its own."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self._process = process
        self.url = url
        self.openai_base_url = f"{url}/v1"

    def _ask(self, line: str) -> dict[str, int]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())  # type: ignore[no-any-return]

    def counters(self) -> dict[str, int]:
        """connections, peak (simultaneously open), open (once settled), requests."""
        return self._ask("counters")

    def reset(self) -> None:
        self._ask("reset")


@contextlib.contextmanager
def server_process() -> Iterator[ServerProcess]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_environment(),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield ServerProcess(process, url)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
