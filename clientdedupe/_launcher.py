"""``clientdedupe run -- COMMAND ARGS...``: run a command with clientdedupe active.

Like ``opentelemetry-instrument`` and ``ddtrace-run``: the command replaces this process
(so its exit code, signals, stdin and stdout are its own), with ``CLIENTDEDUPE=1`` and a
directory whose ``sitecustomize.py`` activates clientdedupe first on ``PYTHONPATH``. That
sitecustomize then runs the user's own sitecustomize, if there is one further down the
path. Python processes the command starts inherit the environment, so they are
deduplicated too.
"""

from __future__ import annotations

import os
import shutil
import sys

from . import _config

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

#: The directory holding the launcher's sitecustomize.py.
LAUNCH_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launch_path")

_EXIT_NOT_FOUND = 127
_EXIT_NOT_EXECUTABLE = 126


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clientdedupe run``; each sets the environment variable it names."""
    parser.add_argument("--targets", help=f"comma list of SDKs or classes ({_config.TARGETS})")
    parser.add_argument(
        "--max-clients", type=positive_int, help=f"bound of the cache ({_config.MAX_CLIENTS})"
    )
    parser.add_argument(
        "--async-mode",
        choices=(*_config.ASYNC_MODES, *_config.ASYNC_ALIASES),
        help=f"async sharing ({_config.ASYNC})",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help=f"summary per class on stderr at exit ({_config.REPORT})",
    )
    parser.add_argument(
        "--log",
        choices=_config.LOG_LEVELS,
        help=f"level of the clientdedupe logger ({_config.LOG})",
    )


def environment(args: argparse.Namespace, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the command runs in."""
    env = dict(os.environ if base is None else base)
    env[_config.ENABLED] = "1"
    for variable, value in (
        (_config.TARGETS, args.targets),
        (_config.MAX_CLIENTS, args.max_clients),
        (_config.ASYNC, args.async_mode),
        (_config.LOG, args.log),
    ):
        if value is not None:
            env[variable] = str(value)
    if args.report:
        env[_config.REPORT] = "1"
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != LAUNCH_PATH]
    env["PYTHONPATH"] = os.pathsep.join([LAUNCH_PATH, *path])
    return env


def run(args: argparse.Namespace, command: Sequence[str]) -> int:
    """Replace this process by ``command``; returns an exit code only if that fails."""
    if not command:
        sys.stderr.write(
            "clientdedupe run: no command given (usage: clientdedupe run -- COMMAND [ARGS...])\n"
        )
        return 2
    env = environment(args)
    executable = shutil.which(command[0], path=env.get("PATH"))
    if executable is None:
        sys.stderr.write(f"clientdedupe run: command not found: {command[0]}\n")
        return _EXIT_NOT_FOUND
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(executable, list(command), env)  # does not return
    except OSError as error:
        sys.stderr.write(f"clientdedupe run: cannot run {command[0]}: {error.strerror}\n")
    return _EXIT_NOT_EXECUTABLE
