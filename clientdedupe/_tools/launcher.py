"""``clientdedupe run [options] [--] COMMAND ARGS...``: run a command with clientdedupe
active.

Like ``opentelemetry-instrument`` and ``ddtrace-run``: the command replaces this process
(so its exit code, signals, stdin and stdout are its own), with ``CLIENTDEDUPE=1`` and a
directory whose ``sitecustomize.py`` activates clientdedupe first on ``PYTHONPATH``. That
sitecustomize then runs the user's own sitecustomize, if there is one further down the
path. Python processes the command starts inherit the environment, so they are
deduplicated too.

Precedence (SPEC §4): the launcher's options win over the environment, an explicit
``install()`` in the program wins over both, and ``CLIENTDEDUPE=0`` in the environment
(the operator's kill switch) wins over everything: the launcher keeps it, and the
command runs without deduplication (``--report`` then says so).
"""

from __future__ import annotations

import os
import shutil
import sys

from .. import _config

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

#: The directory holding the launcher's sitecustomize.py.
LAUNCH_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch_path")

_EXIT_USAGE = 2
_EXIT_NOT_FOUND = 127
_EXIT_NOT_EXECUTABLE = 126

#: Options of ``run`` followed by a value (``--targets openai``); the others are flags.
VALUE_OPTIONS = ("--targets", "--max-clients", "--async-mode", "--log")

#: Launchers whose start-up hook runs first and never chains to another one: under
#: ``clientdedupe run`` they would silently turn clientdedupe off (issue 10). Run them
#: outside instead: theirs chains to nothing, ours chains to theirs.
_NON_CHAINING_LAUNCHERS = ("opentelemetry-instrument",)


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


def targets(text: str) -> str:
    """An argparse type: a comma list of targets ``install(targets=...)`` accepts
    (import or pip names, classes, and those of ``CLIENTDEDUPE_EXTRA_TARGETS``)."""
    import argparse

    from .._api import _register_from_environment
    from .._targets import select

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma list of SDKs or classes")
    # Quietly: the command's own start-up reports a bad entry, once.
    _register_from_environment(report=lambda message: None)
    try:
        select(names)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return ",".join(names)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clientdedupe run``; each sets the environment variable it names."""
    parser.add_argument(
        "--targets",
        type=targets,
        help=f"comma list of SDKs or classes, by import or pip name ({_config.TARGETS})",
    )
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


def split_command(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``run``'s own options, and the command. The command starts after ``--``, or
    without it at the first argument that is neither an option of ``run`` nor the value
    of one (as ``ddtrace-run python app.py``): everything from there on is the
    command's, untouched. An unknown option before it is left to argparse to refuse."""
    args = list(args)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return args[:index], args[index + 1 :]
        if not arg.startswith("-") or arg == "-":
            return args[:index], args[index:]
        index += 2 if arg in VALUE_OPTIONS else 1
    return args, []


def environment(args: argparse.Namespace, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the command runs in."""
    env = dict(os.environ if base is None else base)
    if _config.flag(_config.ENABLED, env) is not False:  # the kill switch stays as it is
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
    env["PYTHONPATH"] = python_path(env.get("PYTHONPATH"))
    return env


def python_path(original: str | None) -> str:
    """``original`` with the launcher's directory first, and otherwise exactly as it was:
    an empty entry means the current directory (``PYTHONPATH=:/x``), so none is
    dropped, and none is added when there was no ``PYTHONPATH``."""
    if not original:
        return LAUNCH_PATH
    if original.split(os.pathsep)[0] == LAUNCH_PATH:
        return original  # a launcher under a launcher: already first
    return LAUNCH_PATH + os.pathsep + original


def run(args: argparse.Namespace, command: Sequence[str]) -> int:
    """Replace this process by ``command``; returns an exit code only if that fails."""
    if not command:
        sys.stderr.write(
            "clientdedupe run: no command given "
            "(usage: clientdedupe run [options] [--] COMMAND [ARGS...])\n"
        )
        return _EXIT_USAGE
    name = os.path.basename(command[0])
    if name in _NON_CHAINING_LAUNCHERS:
        sys.stderr.write(
            f"clientdedupe run: not running {name} under clientdedupe run: its start-up "
            "hook goes first and never chains to another one, so clientdedupe would be "
            f"silently off. Run them the other way round:\n\n    {name} clientdedupe run "
            f"-- python app.py\n\n({name}'s own options go before clientdedupe run, "
            "clientdedupe's after it.)\n"
        )
        return _EXIT_USAGE
    env = environment(args)
    command = list(command)
    executable = shutil.which(command[0], path=env.get("PATH"))
    if executable is None and _is_a_script(command[0]):
        # ``clientdedupe run app.py``: a Python file that is not a command by itself
        # runs with this interpreter, the one clientdedupe is installed in.
        executable, command = sys.executable, [sys.executable, *command]
    if executable is None:
        sys.stderr.write(f"clientdedupe run: command not found: {command[0]}\n")
        return _EXIT_NOT_FOUND
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(executable, command, env)  # does not return
    except OSError as error:
        sys.stderr.write(f"clientdedupe run: cannot run {command[0]}: {error.strerror}\n")
    return _EXIT_NOT_EXECUTABLE


def _is_a_script(path: str) -> bool:
    return path.endswith(".py") and os.path.isfile(path)
