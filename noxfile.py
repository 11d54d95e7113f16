"""The SDK version matrix, and the integration tests with real frameworks.

Each unit cell is a fresh virtualenv with clientdedupe and its test extra, with some
SDKs (or wrapt, or the interpreter) moved to another supported major version, then the
unit tests. The newest SDKs on the default interpreter are what ``.ci/run`` tests first,
in its own environment: the matrix adds the other majors and interpreters. The versions a cell
must reach are the ranges declared once in ``clientdedupe/_targets.py``
(``Sdk.supported``): each cell runs ``clientdedupe doctor`` first and fails if doctor
warns that a version installed there is outside them.

    .venv/bin/nox                        # every cell, the plugin's oldest pytest, integration
    .venv/bin/nox -t ci                  # the part .ci/run runs (the oldest cell, the plugin)
    .venv/bin/nox -s "unit(python-3.13)" # one cell
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
    # The long process-level and many-thread tests run once, in .ci/run's own
    # environment; the cells run the rest on two workers.
    "-m",
    "not slow",
    "-n",
    "2",
)

#: (cell, interpreter (None: the one running nox), requirements added to ``.[test]``,
#: whether .ci/run runs it).
#: Each requirement is resolved together with clientdedupe's own, so the installer picks
#: the newest release inside it that the rest allows. The older majors of different
#: packages share a cell: each cell costs a full run of the unit tests (four to eight
#: minutes on 2 cores), and they are independent of one another. CI runs the cell that
#: moves the most (the oldest interpreter, wrapt and the older openai stack) to stay well
#: under half an hour on a loaded machine; ``nox`` runs them all.
CELLS: tuple[tuple[str, str | None, tuple[str, ...], bool], ...] = (
    (
        "openai-1,groq-0,anthropic-1,together-2",
        None,
        ("openai>=1,<2", "groq>=0.30,<1", "anthropic>=1,<2", "together>=2,<3"),
        False,
    ),
    # The oldest interpreter, with the newest releases that still support it where no
    # major is asked for (openai 3 needs a newer Python: 2 is the newest there).
    (
        "python-3.9,openai-2,anthropic-0,wrapt-1.17",
        _installed_python("3.9"),
        ("openai>=2,<3", "anthropic<1", "wrapt>=1.17,<1.18"),
        True,
    ),
    # The newest releases, on the newest interpreter.
    ("python-3.13", _installed_python("3.13"), (), False),
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
    [
        nox.param(python, requirements, id=cell, tags=["ci"] if in_ci else [])
        for cell, python, requirements, in_ci in CELLS
    ],
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


@nox.session(tags=["ci"])
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


#: The integration tests (tests/integration): real frameworks and instrumentations,
#: unmodified, against the loopback stub server. Each group is an environment of its own,
#: installed from its extra in pyproject.toml: frameworks whose requirements agree share
#: one (each environment costs an install and a pytest start-up), and none of them is in
#: the dev environment, which stays on the newest SDKs (langchain-groq holds groq below
#: 1.0, instructor holds openai at 3.3).
#: (group, extra, test files, distributions whose versions the session prints)
INTEGRATION_GROUPS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "frameworks",
        "integration",
        (
            "test_langchain_groq.py",
            "test_langchain_openai.py",
            "test_smolagents.py",
            "test_instructor.py",
        ),
        ("langchain-groq", "langchain-openai", "smolagents", "instructor"),
    ),
    (
        "agents",
        "integration-agents",
        ("test_openai_agents.py", "test_autogen.py", "test_haystack.py", "test_pydantic_ai.py"),
        ("openai-agents", "autogen-agentchat", "autogen-ext", "haystack-ai", "pydantic-ai-slim"),
    ),
    (
        "observability",
        "integration-observability",
        ("test_instrumentations.py",),
        (
            "opentelemetry-sdk",
            "opentelemetry-distro",
            "opentelemetry-instrumentation-openai-v2",
            "opentelemetry-util-genai",
            "openinference-instrumentation-openai",
            "logfire",
            "sentry-sdk",
        ),
    ),
)
#: The SDKs, whose versions every integration session prints too.
INTEGRATION_SDKS = ("openai", "groq", "cerebras-cloud-sdk")
_VERSIONS = (
    "import sys; from importlib.metadata import version\n"
    "for name in sys.argv[1:]: print(name, version(name))"
)


@nox.session
@nox.parametrize(
    "extra,tests,distributions",
    [nox.param(extra, tests, names, id=group) for group, extra, tests, names in INTEGRATION_GROUPS],
)
def integration(
    session: nox.Session, extra: str, tests: tuple[str, ...], distributions: tuple[str, ...]
) -> None:
    """One group of real frameworks, unmodified, against the loopback stub server.

    ``INTEGRATION_FRAMEWORKS_REQUIRED=1``: a test whose framework is missing fails here
    instead of skipping, so that a broken install never passes as green. Two workers:
    the tests spend their time in the programs they start, and their counts are made to
    hold on a loaded machine.
    """
    session.install("-e", f".[test,{extra}]")
    _doctor(session)
    session.run("python", "-c", _VERSIONS, *distributions, *INTEGRATION_SDKS)
    session.run(
        "python",
        "-m",
        "pytest",
        *(f"tests/integration/{test}" for test in tests),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        "-n",
        "2",
        *session.posargs,
        env={"INTEGRATION_FRAMEWORKS_REQUIRED": "1"},
    )


@nox.session(default=False)
def mutants(session: nox.Session) -> None:
    """Mutation testing of the core: ``tools/mutants.py`` (docs/mutation-testing.md).

    Not part of a bare ``nox`` run, so not of .ci/run: about half an hour on 2 idle cores.
    Each of its workers is a copy of the repository with a virtualenv of its own
    (``.[test]``, made with uv), so this session's environment only needs uv. Options
    after ``--`` go to the runner (``-- --modules _key _cache``, ``-- --help``).
    """
    session.install("uv")
    ignores = [argument for argument in UNIT_TESTS if argument.startswith("--ignore=")]
    session.run("python", "tools/mutants.py", *ignores, *session.posargs)
