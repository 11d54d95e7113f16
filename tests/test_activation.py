"""SPEC §3.3-3.4 and §4: activation from outside the code, in real interpreters."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from clientdedupe import _config

from .processes import SITECUSTOMIZE_EXAMPLE, run, run_python

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
    from clientdedupe._launcher import LAUNCH_PATH

    result = run(
        [sys.executable, script],
        PYTHONPATH=os.pathsep.join([str(other), LAUNCH_PATH, str(users)]),
        CLIENTDEDUPE="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["other tool's hook ran", "users hook ran"]
    assert outcome(result.stdout)["same"] is True
