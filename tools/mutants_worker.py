"""The worker side of ``tools/mutants.py``; runs with the interpreter of a worker's virtualenv.

Standard library and pytest only. Three parts:

- ``serve()``: a fork server. It imports pytest and the SDKs once (about 4 s a process, more
  than most test selections take to run), never clientdedupe, then forks one child per
  request. The child runs ``pytest.main`` on the worker's copy of the repository, so it
  imports clientdedupe from that copy as it is on disk now (the mutant), as do the
  subprocesses its tests start (the worker's virtualenv has the copy installed editable).
  Each child leads its own process group, killed whole on a timeout.
- ``Plugin``: what the child adds to pytest: durations and outcomes per test, the first
  failure, a watchdog per test, and (for the coverage run) the tracer's current test.
- ``Tracer``: which lines of the core modules each test executes, in the pytest process
  and in every Python subprocess a test starts (``start_in_subprocess``, run by a ``.pth``
  file the runner puts in the worker's virtualenv; it does nothing unless
  ``MUTANTS_TRACE`` is set). Records are written as they are found, one ``write`` each,
  so that a forked child's or a killed subprocess's lines are kept.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys
import threading
import time
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from types import FrameType
    from typing import Any, Callable

    TraceFunction = Callable[[FrameType, str, Any], Any]

#: File the tracer appends its records to; set only for the coverage run.
TRACE_ENV = "MUTANTS_TRACE"
#: The worker's copy of the repository, whose core modules are traced.
ROOT_ENV = "MUTANTS_TRACE_ROOT"
#: Comma list of the traced modules (``_key,_cache``).
MODULES_ENV = "MUTANTS_TRACE_MODULES"
#: The test running now, for the subprocesses it starts.
TEST_ENV = "MUTANTS_TRACE_TEST"
#: This file, for the ``.pth`` boot module.
MODULE_ENV = "MUTANTS_TRACE_MODULE"

#: Imported once by the server, before any fork: the costly part of a pytest start. Never
#: clientdedupe (each child must import the copy on disk), nor wrapt (clientdedupe promises
#: to import it only once a target SDK is imported, and tests may check).
PREIMPORT = (
    "pytest",
    "_pytest.pytester",
    "httpx",
    "anyio",
    "anyio._backends._asyncio",
    "anyio._backends._trio",
    "anyio.pytest_plugin",
    "trio",
    "trustme",
    "openai",
    "groq",
    "anthropic",
    "together",
    "cerebras.cloud.sdk",
    "fireworks",
)


class Tracer:
    """Line coverage of the core modules, by test. Each record is one line of text:
    ``kind<TAB>test<TAB>module<TAB>line`` (kind ``i``: the pytest process, ``s``: a
    subprocess; test empty: outside any test, e.g. while importing)."""

    def __init__(self, path: str, root: str, modules: list[str], kind: str, test: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._files: dict[str, str] = {}
        for module in modules:
            file = os.path.join(root, "clientdedupe", f"{module}.py")
            self._files[file] = module
            self._files[os.path.realpath(file)] = module
        self._kind = kind
        self._test = test
        self._seen: set[tuple[str, int]] = set()

    def set_test(self, test: str) -> None:
        self._test = test
        self._seen = set()

    def _record(self, module: str, line: int) -> None:
        key = (module, line)
        if key in self._seen:
            return
        self._seen.add(key)
        record = f"{self._kind}\t{self._test}\t{module}\t{line}\n"
        with contextlib.suppress(OSError):
            os.write(self._fd, record.encode())

    def global_trace(self, frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        module = self._files.get(frame.f_code.co_filename)
        if module is None:
            return None
        self._record(module, frame.f_lineno)
        return self._local_trace

    def _local_trace(self, frame: FrameType, event: str, arg: object) -> TraceFunction:
        if event == "line":
            self._record(self._files[frame.f_code.co_filename], frame.f_lineno)
        return self._local_trace

    def start(self) -> None:
        threading.settrace(self.global_trace)
        sys.settrace(self.global_trace)


def start_in_subprocess() -> None:
    """Trace this interpreter if ``MUTANTS_TRACE`` is set (from the ``.pth`` boot file)."""
    path = os.environ.get(TRACE_ENV)
    root = os.environ.get(ROOT_ENV)
    if not path or not root:
        return
    modules = os.environ.get(MODULES_ENV, "").split(",")
    Tracer(path, root, modules, "s", os.environ.get(TEST_ENV, "")).start()


class Plugin:
    """Added to the child's pytest: per-test durations and outcomes, the first failure,
    and a watchdog that ends the run when one test takes far longer than it did."""

    def __init__(self, request: dict[str, Any], tracer: Tracer | None) -> None:
        self._result_path: str = request["result"]
        self._limits: dict[str, float] = request.get("limits", {})
        self._default_limit: float | None = request.get("default_limit")
        self._tracer = tracer
        self.durations: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.collected: list[str] = []
        self.failed: str | None = None

    def _write(self, **extra: object) -> None:
        result = {
            "durations": self.durations,
            "outcomes": self.outcomes,
            "collected": self.collected,
            "failed": self.failed,
            **extra,
        }
        with open(self._result_path, "w", encoding="utf-8") as file:
            json.dump(result, file)

    def pytest_collection_finish(self, session: Any) -> None:
        self.collected = [item.nodeid for item in session.items]

    def _watchdog(self, nodeid: str) -> threading.Timer | None:
        limit = self._limits.get(nodeid, self._default_limit)
        if limit is None:
            return None

        def expired() -> None:
            self._write(timeout=nodeid)
            os._exit(124)

        timer = threading.Timer(limit, expired)
        timer.daemon = True
        timer.start()
        return timer

    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Generator[None, object, object]:
        # A hook wrapper: marked so in ``_child``, where pytest is imported (this module is
        # also loaded at the start of every traced subprocess, which must stay cheap).
        if self._tracer is not None:
            self._tracer.set_test(item.nodeid)
        os.environ[TEST_ENV] = item.nodeid
        timer = self._watchdog(item.nodeid)
        try:
            return (yield)
        finally:
            if timer is not None:
                timer.cancel()
            if self._tracer is not None:
                self._tracer.set_test("")
            os.environ.pop(TEST_ENV, None)

    def pytest_runtest_logreport(self, report: Any) -> None:
        nodeid: str = report.nodeid
        self.durations[nodeid] = self.durations.get(nodeid, 0.0) + report.duration
        if report.failed:
            self.outcomes[nodeid] = "failed"
            if self.failed is None:
                self.failed = nodeid
        elif report.skipped:
            self.outcomes.setdefault(nodeid, "skipped")
        elif report.when == "call":
            self.outcomes.setdefault(nodeid, "passed")

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        self._write(exitstatus=int(exitstatus))


def _child(request: dict[str, Any]) -> int:
    """In the forked child: run pytest as the request says; the exit code."""
    os.chdir(request["cwd"])
    os.environ.update(request.get("env", {}))
    tracer = None
    trace = request.get("trace")
    if trace is not None:
        os.environ[TRACE_ENV] = trace["path"]
        os.environ[ROOT_ENV] = trace["root"]
        os.environ[MODULES_ENV] = ",".join(trace["modules"])
        tracer = Tracer(trace["path"], trace["root"], trace["modules"], "i", "")
        tracer.start()
    import pytest

    Plugin.pytest_runtest_protocol = pytest.hookimpl(wrapper=True)(  # type: ignore[method-assign]
        Plugin.pytest_runtest_protocol
    )
    plugin = Plugin(request, tracer)
    return int(pytest.main(request["args"], plugins=[plugin]))


def _wait(pid: int, timeout: float) -> tuple[int | None, float]:
    """Wait for ``pid`` up to ``timeout`` seconds: (its exit code or None, CPU seconds of
    it and of the subprocesses it waited for)."""
    deadline = time.monotonic() + timeout
    pidfd = getattr(os, "pidfd_open", None)
    if pidfd is not None:
        fd = pidfd(pid)
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        if not ready:
            return None, 0.0
    else:
        while not os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            if time.monotonic() > deadline:
                return None, 0.0
            time.sleep(0.02)
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Fork, run the request's pytest in the child, wait at most ``timeout`` seconds."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        code = 70
        try:
            os.setpgrp()
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            code = _child(request)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    started = time.monotonic()
    exit_code, cpu_seconds = _wait(pid, float(request["timeout"]))
    seconds = time.monotonic() - started
    timed_out = exit_code is None
    _kill_group(pid)  # a timeout, or anything its tests left running
    if timed_out:
        os.waitpid(pid, 0)
    return {
        "code": exit_code,
        "timed_out": timed_out,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }


def serve() -> None:
    """Answer one JSON request a line on stdin with one JSON line on stdout."""
    for name in PREIMPORT:
        try:
            importlib.import_module(name)
        except Exception:  # an SDK missing here: its tests import it themselves
            print(f"mutants worker: could not pre-import {name}", file=sys.stderr)
    if "clientdedupe" in sys.modules:
        raise SystemExit("mutants worker: clientdedupe was imported before forking")
    if threading.active_count() > 1:
        print("mutants worker: threads running before fork", file=sys.stderr)
    # What is imported now is shared with every child, and never garbage: out of the
    # collector's sight, a child's collections (pytest runs several at its end) stay short
    # and leave the shared pages unwritten.
    gc.collect()
    gc.freeze()
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        response = run_request(json.loads(line))
        print(json.dumps(response), flush=True)


if __name__ == "__main__":
    serve()
