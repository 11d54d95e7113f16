"""The SDK version matrix, and the integration tests with real frameworks.

Each unit cell is a fresh virtualenv with clientdedupe and its test extra, with some
SDKs (or wrapt, or the interpreter) moved to another supported major version, then the
unit tests. The newest SDKs on the default interpreter are what ``.ci/run`` tests first,
in its own environment: the matrix adds the other majors and interpreters. The versions a cell
must reach are the ranges declared once in ``clientdedupe/_targets.py``
(``Sdk.supported``): each cell runs ``clientdedupe doctor`` first and fails if doctor
warns that a version installed there is outside them.

    .venv/bin/nox                        # every cell, the plugin's oldest pytest, integration
    .venv/bin/nox -s "unit(python-3.9)"  # one cell
    .venv/bin/nox -s plugin_oldest       # the pytest plugin on pytest 7.0 / pluggy 1.0
    .venv/bin/nox -l                     # the list

An interpreter that is not on this machine fails its cell ("Python interpreter ... not
found"): it is never reported as passed, nor downloaded. Environments are made with uv
when nox has it (``pip install 'nox[uv]'``: seconds instead of half a minute per cell),
else with virtualenv and pip.
"""

from __future__ import annotations

import glob
import os
import re

import nox

nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"
nox.options.reuse_venv = "no"
nox.options.default_venv_backend = "uv|virtualenv"


def _installed_python(minor: str) -> str:
    """The newest pyenv interpreter of ``minor`` (e.g. ``"3.9"``) if there is one, else
    ``minor`` itself, for nox to look for on the PATH (and to report missing)."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    pattern = os.path.join(root, "versions", f"{minor}.*", "bin", "python")
    found = [path for path in glob.glob(pattern) if re.search(rf"/{re.escape(minor)}\.\d+/", path)]

    def patch_level(path: str) -> int:
        return int(path.split(f"/{minor}.")[1].split("/")[0])

    return max(found, key=patch_level) if found else minor


# The unit tests. The integration tests have their own session (below). The tests of the
# benchmark suite and of ``clientdedupe demo`` are left to .ci/run's own environment: they
# test tooling, whose dealings with the SDKs the contract tests cover, and they would add
# half a minute to every cell.
UNIT_TESTS = (
    "-m",
    "pytest",
    "tests",
    "-p",
    "no:cacheprovider",
    "-q",
    "--ignore=tests/integration",
    "--ignore=tests/test_benchmarks.py",
    "--ignore=tests/test_demo.py",
    # Builds the sdist and the wheel: about the package, not the SDK versions.
    "--ignore=tests/test_packaging.py",
)

#: (cell, interpreter (None: the one running nox), requirements added to ``.[test]``).
#: Each requirement is resolved together with clientdedupe's own, so the installer picks
#: the newest release inside it that the rest allows. The older majors of different
#: packages share a cell: each cell costs a full run of the unit tests (about 1.5 minutes
#: on 2 cores), and they are independent of one another.
CELLS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    (
        "openai-1,groq-0,anthropic-1,together-2",
        None,
        ("openai>=1,<2", "groq>=0.30,<1", "anthropic>=1,<2", "together>=2,<3"),
    ),
    (
        "openai-2,anthropic-0,wrapt-1.17",
        None,
        ("openai>=2,<3", "anthropic<1", "wrapt>=1.17,<1.18"),
    ),
    # The newest releases that still support the oldest interpreter.
    ("python-3.9", _installed_python("3.9"), ()),
    # The newest releases, on the newest interpreter.
    ("python-3.13", _installed_python("3.13"), ()),
)


def _doctor(session: nox.Session) -> None:
    """Show the versions this cell tests; fail if one is outside the declared ranges."""
    report = session.run("python", "-m", "clientdedupe", "doctor", silent=True)
    if not isinstance(report, str):  # only when nox is asked to skip running commands
        return
    print(report, end="")
    if "WARNING" in report:
        session.error("a version installed here is outside the ranges clientdedupe declares")


@nox.session
@nox.parametrize(
    "python,requirements",
    [nox.param(python, requirements, id=cell) for cell, python, requirements in CELLS],
)
def unit(session: nox.Session, requirements: tuple[str, ...]) -> None:
    """The unit tests against one cell of the SDK version matrix."""
    session.install("-e", ".[test]", *requirements)
    _doctor(session)
    session.run("python", *UNIT_TESTS, *session.posargs)


#: The oldest pytest and pluggy the plugin supports (declared in pyproject.toml's
#: ``pytest`` extra and in docs/configuration.md). pytest 7.0 with pluggy 1.0 install and
#: run on every Python clientdedupe supports.
PLUGIN_OLDEST = ("pytest==7.0.*", "pluggy==1.0.*")


@nox.session
def plugin_oldest(session: nox.Session) -> None:
    """The pytest plugin, loaded through its entry point, on the oldest pytest and
    pluggy it supports: installed with clientdedupe, it must never be what breaks a
    test session (issue 11: a ``wrapper=True`` hook broke pluggy 1.0)."""
    session.install(".[openai]", *PLUGIN_OLDEST)
    session.run("python", "-m", "pytest", "--version")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_pytest_plugin.py",
        "-p",
        "no:cacheprovider",
        "-q",
        *session.posargs,
    )


#: What the integration tests drive, and the SDKs they drive it with.
INTEGRATION_DISTRIBUTIONS = (
    "langchain-groq",
    "smolagents",
    "instructor",
    "openai",
    "groq",
    "cerebras-cloud-sdk",
)
_VERSIONS = (
    "import sys; from importlib.metadata import version\n"
    "for name in sys.argv[1:]: print(name, version(name))"
)


@nox.session
def integration(session: nox.Session) -> None:
    """Real frameworks, unmodified, against the loopback stub server (tests/integration).

    Not in the dev environment: langchain-groq holds groq below 1.0 and instructor holds
    openai at the releases that accept its jiter pin, which would move the default
    environment off the latest SDKs.
    """
    session.install("-e", ".[test,integration]")
    _doctor(session)
    session.run("python", "-c", _VERSIONS, *INTEGRATION_DISTRIBUTIONS)
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/integration",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        *session.posargs,
    )
