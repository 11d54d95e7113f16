"""SPEC §3.3-3.4 and §4: activation from outside the code, in real interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clientdedupe import _config

from .processes import SITECUSTOMIZE_EXAMPLE, clean_environment, run, run_python

# An unmodified program: it knows nothing about clientdedupe.
SCRIPT = """
import json, sys
import openai
a = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
b = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
print(json.dumps({"same": a is b, "argv": sys.argv[1:]}))
"""


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "app.py"
    path.write_text(SCRIPT)
    return str(path)


def outcome(stdout: str) -> dict[str, object]:
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("value", "same"), [("1", True), ("yes", True), (None, False), ("0", False)]
)
def test_the_sitecustomize_activates_only_when_asked(
    script: str, value: str | None, same: bool
) -> None:
    env = {"PYTHONPATH": SITECUSTOMIZE_EXAMPLE}
    if value is not None:
        env[_config.ENABLED] = value
    result = run([sys.executable, script], **env)
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["same"] is same
    assert result.stderr == ""


def test_the_kill_switch_beats_an_explicit_install() -> None:
    result = run_python(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
        import clientdedupe, openai
        clientdedupe.install()
        clientdedupe.install()
        a = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
        print(a is openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1"), clientdedupe.is_installed())
        """,
        CLIENTDEDUPE="0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    said = [line for line in result.stderr.splitlines() if line.startswith("clientdedupe ")]
    assert len(said) == 1 and "does nothing" in said[0]


def test_a_broken_clientdedupe_never_stops_the_program(script: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "clientdedupe"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('clientdedupe is broken')\n")
    path = os.pathsep.join([SITECUSTOMIZE_EXAMPLE, str(broken.parent)])
    result = run([sys.executable, script, "x"], PYTHONPATH=path, CLIENTDEDUPE="1")
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout) == {"same": False, "argv": ["x"]}


def test_bad_values_in_every_variable_are_named_and_the_program_still_runs(script: str) -> None:
    bad = {
        _config.TARGETS: "nope",
        _config.MAX_CLIENTS: "many",
        _config.ASYNC: "sometimes",
        _config.LOG: "loud",
        _config.REPORT: "perhaps",
    }
    result = run(
        [sys.executable, script], PYTHONPATH=SITECUSTOMIZE_EXAMPLE, CLIENTDEDUPE="1", **bad
    )
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["same"] is True  # activated, with the defaults
    for variable, value in bad.items():
        lines = [line for line in result.stderr.splitlines() if variable in line]
        assert len(lines) == 1, (variable, result.stderr)
        assert value in lines[0]


def test_a_bad_value_of_the_switch_itself_leaves_clientdedupe_off(script: str) -> None:
    result = run([sys.executable, script], PYTHONPATH=SITECUSTOMIZE_EXAMPLE, CLIENTDEDUPE="maybe")
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["same"] is False
    assert "CLIENTDEDUPE='maybe'" in result.stderr


# ---------------------------------------------------------------------------- launcher

LAUNCHERS = {
    "clientdedupe run": [os.path.join(os.path.dirname(sys.executable), "clientdedupe"), "run"],
    "python -m clientdedupe run": [sys.executable, "-m", "clientdedupe", "run"],
}


@pytest.mark.parametrize("launcher", LAUNCHERS.values(), ids=LAUNCHERS.keys())
def test_the_launcher_deduplicates_an_unmodified_program(script: str, launcher: list[str]) -> None:
    args = ["two words", "--", 'quo"te', "--flag=1", ""]
    result = run([*launcher, "--", sys.executable, script, *args])
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout) == {"same": True, "argv": args}


def test_without_the_launcher_the_same_program_is_not_deduplicated(script: str) -> None:
    result = run([sys.executable, script])
    assert outcome(result.stdout)["same"] is False


def test_the_launcher_passes_exit_code_stdin_and_stdout_through() -> None:
    code = "import sys; data = sys.stdin.read(); print(data.upper()); sys.exit(7)"
    result = run(
        [*LAUNCHERS["clientdedupe run"], "--", sys.executable, "-c", code], input="piped in"
    )
    assert result.returncode == 7
    assert result.stdout == "PIPED IN\n"


def test_the_launcher_reports_a_missing_command_with_exit_127() -> None:
    result = run([*LAUNCHERS["clientdedupe run"], "--", "no-such-command-anywhere"])
    assert result.returncode == 127
    assert "command not found: no-such-command-anywhere" in result.stderr


def test_the_users_own_sitecustomize_still_runs_under_the_launcher(
    script: str, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    users.mkdir()
    (users / "sitecustomize.py").write_text(
        "import os\nos.environ['USERS_SITECUSTOMIZE'] = 'ran'\n"
    )
    code = (
        SCRIPT
        + "\nimport os, sitecustomize\nprint(os.environ.get('USERS_SITECUSTOMIZE'), sitecustomize.__file__)"
    )
    (tmp_path / "app2.py").write_text(code)
    result = run(
        [*LAUNCHERS["clientdedupe run"], "--", sys.executable, str(tmp_path / "app2.py")],
        PYTHONPATH=str(users),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[0])["same"] is True
    assert lines[1] == f"ran {users / 'sitecustomize.py'}"


def test_python_subprocesses_of_the_command_stay_activated(script: str) -> None:
    parent = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, {script!r}]))"
    result = run([*LAUNCHERS["clientdedupe run"], "--", sys.executable, "-c", parent])
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["same"] is True


def test_launcher_options_become_the_environment(tmp_path: Path) -> None:
    code = "import os, json; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('CLIENTDEDUPE')}))"
    result = run(
        [
            *LAUNCHERS["clientdedupe run"],
            "--targets",
            "groq",
            "--max-clients",
            "3",
            "--async-mode",
            "global",
            "--report",
            "--",
            sys.executable,
            "-c",
            code,
        ]
    )
    assert json.loads(result.stdout) == {
        "CLIENTDEDUPE": "1",
        "CLIENTDEDUPE_TARGETS": "groq",
        "CLIENTDEDUPE_MAX_CLIENTS": "3",
        "CLIENTDEDUPE_ASYNC": "global",
        "CLIENTDEDUPE_REPORT": "1",
    }


# ------------------------------------------------------------ tuning from the environment

ACTIVE = {"PYTHONPATH": SITECUSTOMIZE_EXAMPLE, "CLIENTDEDUPE": "1"}


def test_targets_from_the_environment_patch_only_those() -> None:
    result = run_python(
        """
        import groq, openai
        g = [groq.Groq(api_key="k", base_url="http://127.0.0.1:9") for _ in range(2)]
        o = [openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9") for _ in range(2)]
        print(g[0] is g[1], o[0] is o[1])
        """,
        CLIENTDEDUPE_TARGETS="groq",
        **ACTIVE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_max_clients_from_the_environment_bounds_the_cache() -> None:
    result = run_python(
        """
        import openai, clientdedupe
        url = "http://127.0.0.1:9/v1"
        a = openai.OpenAI(api_key="a", base_url=url)
        b = openai.OpenAI(api_key="b", base_url=url)
        print(openai.OpenAI(api_key="a", base_url=url) is a, clientdedupe.stats()["openai.OpenAI"]["evicted"])
        """,
        CLIENTDEDUPE_MAX_CLIENTS="1",
        **ACTIVE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "2"]


ASYNC_PROGRAM = """
import asyncio, openai
url = "http://127.0.0.1:9/v1"
outside = [openai.AsyncOpenAI(api_key="k", base_url=url) for _ in range(2)]
async def main():
    return [openai.AsyncOpenAI(api_key="k", base_url=url) for _ in range(2)]
inside = asyncio.run(main())
print(outside[0] is outside[1], inside[0] is inside[1])
"""


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("loop", ["False", "True"]), ("global", ["True", "True"]), ("off", ["False", "False"])],
)
def test_async_mode_from_the_environment(mode: str, expected: list[str]) -> None:
    result = run_python(ASYNC_PROGRAM, CLIENTDEDUPE_ASYNC=mode, **ACTIVE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_the_exit_report_counts_and_reveals_no_argument_value() -> None:
    result = run_python(
        """
        import openai
        url = "http://127.0.0.1:9/v1"
        import clientdedupe
        for _ in range(5):
            openai.OpenAI(api_key="sk-REPORT-SECRET", base_url=url)
        openai.OpenAI(api_key="sk-OTHER-SECRET", base_url=url).max_retries = 5
        with clientdedupe.bypass():
            openai.OpenAI(api_key="sk-REPORT-SECRET", base_url=url)
        async_outside_a_loop = openai.AsyncOpenAI(api_key="sk-REPORT-SECRET", base_url=url)
        """,
        CLIENTDEDUPE_REPORT="1",
        **ACTIVE,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "clientdedupe: openai.AsyncOpenAI: 1 constructions, 1 clients built, 0 reused, "
        "0 bypassed, 0 evicted, 0 retired",
        "clientdedupe: openai.OpenAI: 7 constructions, 2 clients built, 4 reused, "
        "1 bypassed (mostly: bypass()), 0 evicted, 1 retired",
    ]
    assert "SECRET" not in result.stderr and "127.0.0.1" not in result.stderr


def test_the_log_variable_shows_debug_messages_on_stderr() -> None:
    result = run_python(
        "import openai\nopenai.OpenAI(api_key='sk-LOG-SECRET', base_url='http://127.0.0.1:9/v1')",
        CLIENTDEDUPE_LOG="debug",
        **ACTIVE,
    )
    assert result.returncode == 0, result.stderr
    assert "clientdedupe: DEBUG: built a shared openai.OpenAI [" in result.stderr
    assert "SECRET" not in result.stderr


CHAINING_HOOK = """
import importlib.machinery, importlib.util, os, sys
sys.stderr.write("{name} ran\\n")
here = os.path.dirname(os.path.abspath(__file__))
path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
if spec is not None:
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)
"""


def test_each_start_up_hook_runs_once_beside_another_chaining_tool(
    script: str, tmp_path: Path
) -> None:
    # Another tool whose start-up hook chains the same way, ahead of ours on the path,
    # and the user's own sitecustomize behind both.
    other, users = tmp_path / "other", tmp_path / "users"
    other.mkdir()
    users.mkdir()
    (other / "sitecustomize.py").write_text(CHAINING_HOOK.format(name="other tool's hook"))
    (users / "sitecustomize.py").write_text("import sys\nsys.stderr.write('users hook ran\\n')\n")
    from clientdedupe._tools.launcher import LAUNCH_PATH

    result = run(
        [sys.executable, script],
        PYTHONPATH=os.pathsep.join([str(other), LAUNCH_PATH, str(users)]),
        CLIENTDEDUPE="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["other tool's hook ran", "users hook ran"]
    assert outcome(result.stdout)["same"] is True


# ------------------------------------------------------- SPEC §4 precedence, issue 11

CLIENTDEDUPE_RUN = LAUNCHERS["clientdedupe run"]


def test_the_kill_switch_wins_over_the_launcher(script: str) -> None:
    result = run([*CLIENTDEDUPE_RUN, "--report", "--", sys.executable, script], CLIENTDEDUPE="0")
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["same"] is False
    # --report still answers, and says why nothing was shared.
    assert result.stderr.splitlines() == [
        "clientdedupe: not active (CLIENTDEDUPE=0, the kill switch); "
        "no construction of a covered client"
    ]


def test_an_explicit_install_with_other_settings_wins_over_the_launcher() -> None:
    program = """
        import json, groq, openai, clientdedupe
        clientdedupe.install(targets=["groq"], async_mode="off", max_clients=1)
        url = "http://127.0.0.1:9"
        o = [openai.OpenAI(api_key="k", base_url=url) for _ in range(2)]
        g = [groq.Groq(api_key="k", base_url=url) for _ in range(2)]
        groq.Groq(api_key="other", base_url=url)
        a = [groq.AsyncGroq(api_key="k", base_url=url) for _ in range(2)]
        counts = clientdedupe.stats()
        print(json.dumps([o[0] is o[1], g[0] is g[1], a[0] is a[1], sorted(counts),
                          counts["groq.Groq"]["evicted"]]))
    """
    code = textwrap.dedent(program)
    result = run([*CLIENTDEDUPE_RUN, "--targets", "openai", "--", sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, True, False, ["groq.AsyncGroq", "groq.Groq"], 1]
    assert result.stderr == ""  # no "already installed with other settings"


def test_log_and_report_work_with_an_explicit_install() -> None:
    result = run_python(
        """
        import clientdedupe, openai
        clientdedupe.install()
        for _ in range(3):
            openai.OpenAI(api_key="sk-SECRET", base_url="http://127.0.0.1:9/v1")
        """,
        CLIENTDEDUPE_LOG="debug",
        CLIENTDEDUPE_REPORT="1",
    )
    assert result.returncode == 0, result.stderr
    assert "clientdedupe: DEBUG: built a shared openai.OpenAI [" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "clientdedupe: openai.OpenAI: 3 constructions, 1 clients built, 2 reused, "
        "0 bypassed, 0 evicted, 0 retired"
    )
    assert "SECRET" not in result.stderr


def test_the_report_says_something_when_nothing_was_constructed() -> None:
    result = run([*CLIENTDEDUPE_RUN, "--report", "--", sys.executable, "-c", "pass"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == "clientdedupe: active; no construction of a covered client\n"


# ------------------------------------------------------------ the launcher's command line


def test_the_launcher_takes_the_command_without_the_separator(script: str) -> None:
    # As ddtrace-run: the first word that is not an option of `run` starts the command,
    # and the command's own options (even --report) are its own.
    args = ["--report", "--", "x"]
    result = run([*CLIENTDEDUPE_RUN, "--max-clients", "3", sys.executable, script, *args])
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout) == {"same": True, "argv": args}
    assert result.stderr == ""


def test_the_launcher_runs_a_python_file_with_its_own_interpreter(script: str) -> None:
    result = run([*CLIENTDEDUPE_RUN, "--report", script, "arg"])
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout) == {"same": True, "argv": ["arg"]}
    assert "openai.OpenAI: 2 constructions, 1 clients built, 1 reused" in result.stderr


def test_the_command_has_a_version() -> None:
    from clientdedupe import __version__

    for command in (
        [CLIENTDEDUPE_RUN[0], "--version"],
        [sys.executable, "-m", "clientdedupe", "--version"],
    ):
        result = run(command)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"clientdedupe {__version__}\n"


def test_a_bad_target_at_the_launcher_exits_2_naming_the_valid_ones(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()"
    result = run([*CLIENTDEDUPE_RUN, "--targets", "opneai", "--", sys.executable, "-c", code])
    assert result.returncode == 2
    assert "unknown clientdedupe target 'opneai' (did you mean 'openai'?)" in result.stderr
    assert "valid targets: " in result.stderr and "cerebras-cloud-sdk" in result.stderr
    assert not marker.exists()


def test_the_launcher_accepts_pip_names() -> None:
    code = "import os; print(os.environ['CLIENTDEDUPE_TARGETS'])"
    result = run(
        [
            *CLIENTDEDUPE_RUN,
            "--targets",
            "cerebras-cloud-sdk, fireworks-ai",
            "--",
            sys.executable,
            "-c",
            code,
        ]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cerebras-cloud-sdk,fireworks-ai"
    assert result.stderr == ""


def test_the_launcher_keeps_pythonpath_exactly(tmp_path: Path) -> None:
    # `export PYTHONPATH=$PYTHONPATH:/x` with it unset gives ":/x": the empty entry is the
    # current directory, from which this program imports a module.
    from clientdedupe._tools.launcher import LAUNCH_PATH

    (tmp_path / "helper_in_cwd.py").write_text("VALUE = 42\n")
    code = "import os, helper_in_cwd; print(helper_in_cwd.VALUE, os.environ['PYTHONPATH'])"
    other = str(tmp_path / "elsewhere")
    for pythonpath in (os.pathsep + other, other + os.pathsep):
        env = clean_environment(PYTHONPATH=pythonpath)
        plain = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        launched = subprocess.run(
            [*CLIENTDEDUPE_RUN, "--", sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert plain.stdout == f"42 {pythonpath}\n", plain.stderr
        value, first, rest = launched.stdout, "", ""
        if value.startswith("42 "):
            first, _, rest = value[3:].rstrip("\n").partition(os.pathsep)
        # The launcher's directory first (that of the clientdedupe the launcher runs),
        # then the user's PYTHONPATH exactly as it was.
        assert (os.path.basename(first), rest) == (os.path.basename(LAUNCH_PATH), pythonpath), (
            launched.stdout + launched.stderr
        )


def test_the_launcher_refuses_opentelemetry_instrument_inside_it(tmp_path: Path) -> None:
    # issue 10: opentelemetry-instrument's sitecustomize goes first and never chains, so
    # under `clientdedupe run` clientdedupe would be silently off.
    marker = tmp_path / "ran"
    fake = tmp_path / "bin" / "opentelemetry-instrument"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    path = os.pathsep.join([str(fake.parent), os.environ.get("PATH", "")])
    for command in (["opentelemetry-instrument"], [str(fake)]):
        result = run([*CLIENTDEDUPE_RUN, "--", *command, "python", "app.py"], PATH=path)
        assert result.returncode == 2
        assert "opentelemetry-instrument clientdedupe run -- python app.py" in result.stderr
        assert not marker.exists()


# ------------------------------------------------- the launcher's sitecustomize, issue 11


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A virtualenv with nothing installed: an interpreter that lacks clientdedupe."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return str(folder / "bin" / "python")


MODULES = "import sys; print(' '.join(sorted(sys.modules)))"


def test_the_launchers_sitecustomize_is_quiet_where_clientdedupe_is_missing(
    bare_python: str,
) -> None:
    result = run([*CLIENTDEDUPE_RUN, "--report", "--", bare_python, "-c", "print('ran')"])
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("ran\n", "")


def test_a_broken_clientdedupe_under_the_launcher_says_so_in_one_line(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    broken = Path(site) / "clientdedupe"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('broken here')\n")
    result = run([*CLIENTDEDUPE_RUN, "--", str(venv / "bin" / "python"), "-c", "print('ran')"])
    assert result.returncode == 0
    assert result.stdout == "ran\n"
    assert result.stderr == "clientdedupe: not activated (RuntimeError: broken here)\n"


def test_the_launchers_sitecustomize_imports_only_what_activation_needs(
    bare_python: str,
) -> None:
    # Timing is measured by benchmarks/startup.py; here, what cannot flip under load: the
    # modules a child started by the launcher imports beyond a plain one.
    from clientdedupe._tools.launcher import LAUNCH_PATH

    from .processes import REPO

    def modules(**env: str) -> set[str]:
        result = run([bare_python, "-c", MODULES], **env)
        assert result.returncode == 0, result.stderr
        return set(result.stdout.split())

    plain = modules(PYTHONPATH=REPO)
    launched = os.pathsep.join([LAUNCH_PATH, REPO])
    opted_out = modules(PYTHONPATH=launched)  # CLIENTDEDUPE unset in the child
    active = modules(PYTHONPATH=launched, CLIENTDEDUPE="1")
    assert opted_out - plain == {"sitecustomize"}
    added = active - plain
    assert {"clientdedupe", "clientdedupe.startup", "clientdedupe._api"} <= added
    heavy = {"importlib.util", "logging", "wrapt", "openai", "asyncio", "threading", "re"}
    assert added & heavy == set()
    assert {m for m in added if not m.startswith("clientdedupe")} <= {
        "__future__",
        "sitecustomize",
        "contextvars",
        "_contextvars",
        "_thread",
    }
