"""The ``clientdedupe`` command: ``run``, ``doctor`` and ``demo``."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="clientdedupe",
        description="Share one LLM SDK client per configuration in programs you did not write.",
    )
    parser.add_argument("--version", action="version", version=f"clientdedupe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a command with clientdedupe active",
        usage="clientdedupe run [options] [--] COMMAND [ARGS...]",
        description="Run COMMAND with clientdedupe active in it and in the Python "
        "processes it starts (they inherit the environment). COMMAND starts at the first "
        "argument that is not an option of run (or after --); a Python file that is not "
        "a command itself (clientdedupe run app.py) runs with this interpreter. "
        "CLIENTDEDUPE=0 in the environment (the kill switch) wins over the launcher.",
        allow_abbrev=False,
    )
    from .launcher import add_arguments as add_run_arguments

    add_run_arguments(run)

    commands.add_parser(
        "doctor",
        help="say whether clientdedupe is active here, and if not, why and the fix",
        description="A verdict first (active in this process; would be active for "
        "`python app.py` run the same way; or not active, why, and the fix), then every "
        "CLIENTDEDUPE_* variable checked, the installed SDKs and versions, and the classes "
        "that would be patched or skipped. Exits 1 when what the environment asks for "
        "cannot happen here (a bad value, a missing dependency, CLIENTDEDUPE=1 that "
        "nothing reads), else 0.",
    )

    demo = commands.add_parser(
        "demo",
        help="see the difference on a simulated many-agents program",
        description="Run a shipped example that builds one OpenAI client per agent against "
        "an embedded loopback server, without and with clientdedupe, and compare.",
    )
    from .demo import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clientdedupe`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # The command of "run" (after "--", or from its first word) is passed on untouched.
    command: list[str] = []
    if args_list[:1] == ["run"]:
        from .launcher import split_command

        options, command = split_command(args_list[1:])
        args_list = ["run", *options]
    args = _parser().parse_args(args_list)
    if args.command == "run":
        from .launcher import run

        return run(args, command)
    if args.command == "doctor":
        from .doctor import doctor

        return doctor()
    from .demo import main as demo

    return demo(args)
