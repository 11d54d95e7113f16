"""``clientdedupe demo``: the shipped many-agents example, without and with clientdedupe.

An embedded loopback server speaks the OpenAI chat API and counts the TCP connections
(and TLS handshakes) it accepts. The example, which builds one ``openai.OpenAI()`` per
agent, runs twice in subprocesses: as it is, then under ``clientdedupe run``. A table
compares what each run built, opened, took and used.

``_cli`` imports this module to build its parser for every command, ``run`` included,
so only ``argparse`` is imported at the top; everything else when the demo runs. The
helpers that run the example are shared with ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import contextlib

from .._targets import HTTP_ENV, PROXY_VARIABLES
from .launcher import positive_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from typing import Any

    from .stub_server import StubServer

#: The API key the example's clients send to the loopback server: not a real one.
DEMO_API_KEY = "sk-clientdedupe-demo-not-a-real-key"

_MISSING_OPENAI = (
    "clientdedupe demo needs the openai package, which is not installed in this Python "
    "environment ({executable}): the demo runs a real OpenAI-SDK program against a local "
    "server (nothing leaves this machine, no API key is needed). Install it with\n\n"
    "    pip install 'clientdedupe[openai]'\n\n"
    "and run `clientdedupe demo` again.{detail}\n"
)
_MISSING_TRUSTME = (
    "clientdedupe demo --tls needs the trustme package to make a throwaway certificate "
    "authority for its local server. Install it with `pip install trustme`, or run the "
    "demo without --tls.\n"
)
# Variables of the calling environment that would change what the example's clients do:
# the example must talk to the loopback server, configured only as the demo says.
_DROPPED_PREFIXES = ("OPENAI_", "AZURE_OPENAI_", "CLIENTDEDUPE")
_DROPPED = frozenset(HTTP_ENV) | frozenset(PROXY_VARIABLES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clientdedupe demo``."""
    parser.add_argument(
        "--agents", type=positive_int, default=100, help="number of agents (default 100)"
    )
    parser.add_argument("--tls", action="store_true", help="serve the loopback API over TLS")
    parser.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="run the agents on AsyncOpenAI in one event loop",
    )


# -- running the example (shared with benchmarks/) -------------------------------------


def example_path() -> str:
    """The shipped example program, ``clientdedupe/_tools/examples/many_agents.py``."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples", "many_agents.py")


def example_command(agents: int, *, use_async: bool = False, dedupe: bool = False) -> list[str]:
    """The command running the example, plainly or under ``clientdedupe run --report``."""
    import sys

    command = [sys.executable, example_path(), "--agents", str(agents)]
    if use_async:
        command.append("--async")
    if dedupe:
        command = [sys.executable, "-m", "clientdedupe", "run", "--report", "--", *command]
    return command


def child_environment(server: StubServer, ca_file: str | None = None) -> dict[str, str]:
    """This environment, minus anything that would redirect the example's clients,
    plus ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` for ``server`` (and ``SSL_CERT_FILE``)."""
    import os

    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_DROPPED_PREFIXES) and name not in _DROPPED
    }
    env["OPENAI_BASE_URL"] = server.openai_base_url
    env["OPENAI_API_KEY"] = DEMO_API_KEY
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if ca_file is not None:
        env["SSL_CERT_FILE"] = ca_file
    root = package_root()
    if root is not None:
        path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([*path, root])
    return env


def package_root() -> str | None:
    """The directory to put on the children's path so that they import this very
    clientdedupe, or None when it is installed (in site-packages) anyway."""
    import os
    import site

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = [*site.getsitepackages(), site.getusersitepackages()]
    if any(os.path.abspath(folder) == root for folder in installed):
        return None
    return root


def trust_bundle(ca_cert_path: str, folder: str) -> str:
    """A CA file trusting the system's authorities and the throwaway one, written in
    ``folder``. With only the throwaway CA, building an SSL context would cost far
    less than the real thing, and the comparison would flatter the plain run."""
    import os
    import ssl

    paths = ssl.get_default_verify_paths()
    sources = [p for p in (paths.openssl_cafile, paths.cafile) if p and os.path.isfile(p)]
    if not sources:
        try:
            import certifi  # type: ignore[import-not-found, unused-ignore]

            sources = [str(certifi.where())]
        except ImportError:
            pass
    bundle = os.path.join(folder, "ca-bundle.pem")
    with open(bundle, "w", encoding="utf-8") as out:
        for source in [*sources[:1], ca_cert_path]:
            with open(source, encoding="utf-8") as pem:
                out.write(pem.read().rstrip("\n") + "\n")
    return bundle


class ExampleRun:
    """One run of the example: its own JSON report and what the server counted."""

    def __init__(self) -> None:
        self.returncode = 0
        #: What the example measured itself (see many_agents.py), or {} if it failed.
        self.result: dict[str, Any] = {}
        self.stderr = ""
        #: The whole subprocess, interpreter start-up included.
        self.process_seconds = 0.0
        self.connections = 0
        self.tls_handshakes = 0
        self.max_open_connections = 0

    @property
    def ok(self) -> bool:
        """Whether the example ran to the end and reported."""
        return self.returncode == 0 and bool(self.result)

    def report_lines(self) -> list[str]:
        """The ``clientdedupe run --report`` summary lines it wrote on stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("clientdedupe: ")]


def run_example(
    command: Sequence[str],
    env: Mapping[str, str],
    server: StubServer,
    *,
    timeout: float,
    on_tick: Callable[[int], None] | None = None,
) -> ExampleRun:
    """Run ``command`` against ``server`` (its counters zeroed first), calling
    ``on_tick(chat requests so far)`` about ten times a second while it runs."""
    import contextlib
    import json
    import subprocess
    import time

    server.reset_counters()
    run = ExampleRun()
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - started > timeout:
                    process.kill()
                    stdout, stderr = process.communicate()
                    stderr += f"\n(stopped after {timeout:.0f} s)"
                    break
                if on_tick is not None:
                    on_tick(_chat_requests(server))
    except BaseException:
        process.kill()
        process.wait()
        raise
    run.process_seconds = time.perf_counter() - started
    run.returncode = process.returncode
    run.stderr = stderr
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                run.result = json.loads(line)
            break
    run.connections = server.connections
    run.tls_handshakes = server.tls_handshakes
    run.max_open_connections = server.max_open_connections
    return run


def _chat_requests(server: StubServer) -> int:
    return sum(1 for request in server.requests if request.path.endswith("/chat/completions"))


# -- the command -------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    import sys

    version = _openai_version()
    if version is None:
        return 1
    if args.tls:
        try:
            import trustme  # noqa: F401
        except ImportError:
            sys.stderr.write(_MISSING_TRUSTME)
            return 1
    agents = fit_to_open_file_limit(args.agents)
    if agents is None:
        return 1
    try:
        return _demo(agents, tls=args.tls, use_async=args.use_async, version=version)
    except KeyboardInterrupt:
        sys.stderr.write("\nclientdedupe demo: interrupted\n")
        return 130


#: Open files a run needs beside one connection per agent: the interpreter's own, the
#: server's listening socket and threads, the pipes to the example, TLS files.
FD_MARGIN = 32


def fit_to_open_file_limit(agents: int) -> int | None:
    """The number of agents to run under this process's open-file limit.

    Without clientdedupe, each agent's client keeps its own connection open, in the
    example and (the other end) in this process's server: ``agents`` above the limit
    would wait for file descriptors that never come. So the soft limit is raised to
    what the run needs when the hard limit allows it (children inherit it); otherwise
    the number of agents is lowered to what fits, saying so; None (after saying why)
    if not even two fit."""
    import sys

    try:
        import resource
    except ImportError:  # not a POSIX system: no such limit to check
        return agents
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = agents + FD_MARGIN
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return agents
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return agents
    fit = hard - FD_MARGIN
    if fit < 2:
        sys.stderr.write(
            f"clientdedupe demo: the open-file limit (ulimit -n) is {hard}, too low to run "
            f"even two agents (each needs a connection, plus {FD_MARGIN} for the rest). "
            f"Raise it, e.g. `ulimit -n {needed}`, and run the demo again.\n"
        )
        return None
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.stderr.write(
        f"clientdedupe demo: running {fit} agents instead of {agents}: without clientdedupe "
        f"each agent holds a connection open, and the open-file limit (ulimit -n, hard "
        f"limit {hard}) leaves room for {fit}. To run {agents}, raise it first: "
        f"`ulimit -n {needed}` (as root, or after raising the hard limit).\n"
    )
    return fit


def _openai_version() -> str | None:
    """openai's version, or None after telling the user how to install it."""
    import sys

    try:
        import openai
    except ImportError as error:
        detail = f"\n(The import failed with: {error})" if "openai" not in str(error) else ""
        sys.stderr.write(_MISSING_OPENAI.format(executable=sys.executable, detail=detail))
        return None
    return str(getattr(openai, "__version__", "?"))


@contextlib.contextmanager
def serving(tls: bool) -> Iterator[tuple[StubServer, dict[str, str]]]:
    """A loopback server (HTTPS with a throwaway CA when ``tls``) and the environment
    that points the example at it; shared with the benchmarks."""
    import tempfile

    from .stub_server import StubServer

    with contextlib.ExitStack() as resources:
        folder = resources.enter_context(tempfile.TemporaryDirectory(prefix="clientdedupe-"))
        server = resources.enter_context(StubServer(tls=tls))
        ca_file = None
        if server.ca_cert_path is not None:
            ca_file = trust_bundle(server.ca_cert_path, folder)
        yield server, child_environment(server, ca_file)


def _demo(agents: int, *, tls: bool, use_async: bool, version: str) -> int:
    import sys

    flavour = "AsyncOpenAI" if use_async else "OpenAI"
    with serving(tls) as (server, env):
        print(
            f"clientdedupe demo: {agents} agents, each building its own openai.{flavour}() "
            f"(openai {version}) and sending one chat request to a loopback server at "
            f"{server.url}.\nThe same unmodified program runs twice: as it is, then under "
            "`clientdedupe run`.\n",
            flush=True,
        )
        timeout = 120.0 + agents
        runs: list[ExampleRun] = []
        for step, dedupe in enumerate((False, True), start=1):
            variant = f"{'with' if dedupe else 'without'} clientdedupe"
            progress = _Progress(f"[{step}/2] {variant}", agents)
            command = example_command(agents, use_async=use_async, dedupe=dedupe)
            run = run_example(command, env, server, timeout=timeout, on_tick=progress.update)
            progress.done(run)
            if not run.ok:
                sys.stderr.write(
                    f"clientdedupe demo: the example failed ({variant}, exit code "
                    f"{run.returncode}):\n{run.stderr.strip()}\n"
                )
                return 1
            runs.append(run)
    if sys.stderr.isatty():
        print()  # after the progress lines
    print(format_table(runs[0], runs[1], tls=tls))
    report = runs[1].report_lines()
    if report:
        print("\nclientdedupe's own report (clientdedupe run --report):")
        for line in report:
            print(f"  {line}")
    print("\nTry it on your own program: clientdedupe run --report -- python your_app.py")
    if runs[1].result.get("clients_built") != 1:
        said = "\n".join(runs[1].stderr.strip().splitlines()[-15:])
        sys.stderr.write(
            "\nclientdedupe demo: the clients were not shared under `clientdedupe run`; "
            "`clientdedupe doctor` shows why."
            + (f" The example's stderr ended with:\n{said}\n" if said else "\n")
        )
        return 1
    return 0


class _Progress:
    """A progress line on stderr: redrawn in place on a terminal, once otherwise."""

    def __init__(self, label: str, total: int) -> None:
        import sys

        self.label = label
        self.total = total
        self.live = sys.stderr.isatty()
        if not self.live:
            sys.stderr.write(f"  {label}: running {total} agents...\n")
            sys.stderr.flush()

    def update(self, done: int) -> None:
        """Redraw with ``done`` agents finished."""
        if self.live:
            done = min(done, self.total)
            # Before the first request: the interpreter starts and imports openai.
            text = f"{done}/{self.total} agents" if done else "starting..."
            self._draw(done, text)

    def done(self, run: ExampleRun) -> None:
        """Finish the line."""
        import sys

        outcome = f"done in {run.process_seconds:.1f} s" if run.ok else "failed"
        if self.live:
            self._draw(self.total, f"{self.total}/{self.total} agents, {outcome}")
            sys.stderr.write("\n")
        else:
            sys.stderr.write(f"  {self.label}: {outcome}\n")
        sys.stderr.flush()

    def _draw(self, done: int, text: str) -> None:
        import sys

        width = 24
        filled = width * done // self.total
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r  {self.label}  [{bar}] {text}   ")
        sys.stderr.flush()


# -- the table ---------------------------------------------------------------------


def format_table(without: ExampleRun, with_: ExampleRun, *, tls: bool) -> str:
    """The before/after table the demo prints."""
    plain, dedup = without.result, with_.result
    rows: list[tuple[str, str, str, str]] = [
        _count_row("clients built", plain["clients_built"], dedup["clients_built"]),
        _count_row("TCP connections", without.connections, with_.connections),
    ]
    if tls:
        rows.append(_count_row("TLS handshakes", without.tls_handshakes, with_.tls_handshakes))
    rows += [
        _ratio_row(
            "time for the agents",
            plain["wall_seconds"],
            dedup["wall_seconds"],
            _seconds,
            "faster",
        ),
        _ratio_row(
            "whole run, start-up incl.",
            without.process_seconds,
            with_.process_seconds,
            _seconds,
            "faster",
        ),
        _ratio_row(
            "peak RSS", plain["peak_rss_bytes"], dedup["peak_rss_bytes"], _mebibytes, "smaller"
        ),
        _ratio_row(
            "RSS growth (agents)",
            plain["rss_growth_bytes"],
            dedup["rss_growth_bytes"],
            _mebibytes,
            "smaller",
        ),
    ]
    header = ("", "without", "with clientdedupe", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        lines.append(
            f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"
        )
    return "\n".join(line.rstrip() for line in lines)


def _count_row(label: str, without: int, with_: int) -> tuple[str, str, str, str]:
    note = f"{without / with_:.0f}x fewer" if with_ and without > with_ else ""
    return (label, str(without), str(with_), note)


def _ratio_row(
    label: str, without: float, with_: float, show: Callable[[float], str], better: str
) -> tuple[str, str, str, str]:
    if without < 0 or with_ < 0:  # not measurable on this system
        return (label, "n/a", "n/a", "")
    note = f"{without / with_:.1f}x {better}" if with_ > 0 and without > with_ else ""
    return (label, show(without), show(with_), note)


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _mebibytes(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"
