"""``clientdedupe doctor``: one verdict first, then why, in real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from clientdedupe import _config
from clientdedupe._targets import BUILTIN_TARGETS

from .processes import REPO, SITECUSTOMIZE_EXAMPLE, run
from .test_messages import fake_sdk_without_per_loop_pools

DOCTOR = [sys.executable, "-m", "clientdedupe", "doctor"]
LAUNCHER = [sys.executable, "-m", "clientdedupe", "run", "--"]
#: This environment's interpreter first on PATH: `python app.py` runs it.
PATH = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def doctor(*prefix: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("PATH", PATH)
    return run([*prefix, *DOCTOR], **env)


def verdict(stdout: str) -> str:
    first = stdout.splitlines()[1]
    assert first.startswith("Verdict: "), stdout
    return first


def class_line(stdout: str, qualname: str) -> str:
    return next(line for line in stdout.splitlines() if line.strip().startswith(qualname + " "))


def test_with_every_sdk_installed_and_nothing_asked() -> None:
    result = doctor()
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert verdict(out) == (
        "Verdict: NOT active at start-up, because CLIENTDEDUPE is unset: only an explicit "
        "clientdedupe.install() in the program activates it."
    )
    assert out.splitlines()[2].startswith("Fix: run the program as `clientdedupe run -- ")
    for distribution in {t.sdk.distribution for t in BUILTIN_TARGETS}:
        assert f"\n  {distribution} " in out
    for target in BUILTIN_TARGETS:
        line = class_line(out, target.qualname)
        if target.is_async:
            assert line.endswith(
                "would be patched; async: shared across event loops, one connection pool per loop"
            )
        else:
            assert line.endswith("would be patched")
    assert "WARNING" not in out and "Problems" not in out
    assert "launcher: no" in out
    assert result.stderr == ""


def test_on_but_read_by_nothing_at_start_up_is_not_active_and_exits_1() -> None:
    # issue 11, 1: CLIENTDEDUPE=1 with no sitecustomize and no launcher does nothing.
    result = doctor(CLIENTDEDUPE="1")
    assert result.returncode == 1
    assert verdict(result.stdout) == (
        "Verdict: NOT active, because nothing at interpreter start reads it: there is no "
        "sitecustomize.py on the path, and this is not under clientdedupe run."
    )
    assert "Fix: run the program as `clientdedupe run -- python app.py`" in result.stdout


def test_active_through_the_sitecustomize() -> None:
    result = doctor(CLIENTDEDUPE="1", PYTHONPATH=SITECUSTOMIZE_EXAMPLE)
    assert result.returncode == 0, result.stdout
    site = os.path.join(SITECUSTOMIZE_EXAMPLE, "sitecustomize.py")
    assert verdict(result.stdout) == (
        f"Verdict: active in this process (through the sitecustomize at {site})."
    )
    assert f"sitecustomize: {site} (calls clientdedupe" in result.stdout


def test_active_under_the_launcher() -> None:
    result = doctor(*LAUNCHER, PYTHONPATH=SITECUSTOMIZE_EXAMPLE)
    assert result.returncode == 0, result.stdout
    assert verdict(result.stdout) == "Verdict: active in this process (through clientdedupe run)."
    assert "launcher: yes" in result.stdout
    assert "CLIENTDEDUPE:                1 -> on" in result.stdout


def test_would_be_active_for_python_app_py_run_the_same_way() -> None:
    # This process ignores the environment (-I), `python app.py` would not.
    result = run([*LAUNCHER, sys.executable, "-I", "-m", "clientdedupe", "doctor"], PATH=PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdict(result.stdout).startswith(
        "Verdict: would be active for `python app.py` run as you just did"
    )


def test_the_kill_switch_is_the_verdict_and_not_a_failure() -> None:
    result = doctor(*LAUNCHER, CLIENTDEDUPE="0")
    assert result.returncode == 0, result.stdout
    assert verdict(result.stdout).startswith(
        "Verdict: NOT active, because CLIENTDEDUPE=0 is set: the operator's kill switch"
    )


def test_every_bad_value_is_named_and_the_exit_code_is_1() -> None:
    # issue 11, 2: doctor echoed these without a word.
    bad = {
        _config.TARGETS: "opneai",
        _config.MAX_CLIENTS: "abc",
        _config.ASYNC: "maybe",
        _config.LOG: "loud",
        _config.REPORT: "perhaps",
        _config.EXTRA_TARGETS: "not a target",
        "CLIENTDEDUPE_TARGET": "groq",
    }
    result = doctor(**bad)
    assert result.returncode == 1
    problems = result.stdout.split("Problems")[1].split("\nEnvironment:")[0]
    assert "unknown clientdedupe target 'opneai' (did you mean 'openai'?)" in problems
    assert "ignoring CLIENTDEDUPE_MAX_CLIENTS='abc'" in problems
    assert "ignoring CLIENTDEDUPE_ASYNC='maybe'" in problems
    assert "ignoring CLIENTDEDUPE_LOG='loud'" in problems
    assert "ignoring CLIENTDEDUPE_REPORT='perhaps'" in problems
    assert "ignoring CLIENTDEDUPE_EXTRA_TARGETS entry 'not a target'" in problems
    assert "CLIENTDEDUPE_TARGET is not a clientdedupe variable (did you mean " in problems
    assert result.stderr == ""  # listed, not also warned about


def test_targets_from_the_environment_are_honoured() -> None:
    result = doctor(CLIENTDEDUPE_TARGETS="groq.AsyncGroq,cerebras-cloud-sdk")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert class_line(out, "groq.Groq").endswith("not selected (CLIENTDEDUPE_TARGETS)")
    assert class_line(out, "openai.OpenAI").endswith("not selected (CLIENTDEDUPE_TARGETS)")
    assert "would be patched" in class_line(out, "groq.AsyncGroq")
    assert class_line(out, "cerebras.cloud.sdk.Cerebras").endswith("would be patched")


def test_the_async_mode_is_shown_per_async_class() -> None:
    result = doctor(CLIENTDEDUPE_ASYNC="loop")
    assert class_line(result.stdout, "openai.AsyncOpenAI").endswith(
        "would be patched; async: shared within one event loop (CLIENTDEDUPE_ASYNC=loop)"
    )
    assert class_line(result.stdout, "openai.OpenAI").endswith("would be patched")


def test_a_class_that_falls_back_to_sharing_within_one_loop_is_shown(tmp_path: Path) -> None:
    fake_sdk_without_per_loop_pools(tmp_path)
    result = doctor(PYTHONPATH=str(tmp_path))
    assert class_line(result.stdout, "groq.AsyncGroq").endswith(
        "would be patched; async: falls back to sharing within one event loop (this "
        "version's connection pool cannot be made one per event loop)"
    )
    assert class_line(result.stdout, "openai.AsyncOpenAI").endswith("one connection pool per loop")


def test_a_target_named_but_not_installed_is_a_problem() -> None:
    # Without site-packages (-S), no SDK is installed.
    result = run(
        [sys.executable, "-S", "-c", _DOCTOR_WITHOUT_SITE],
        CLIENTDEDUPE_TARGETS="groq",
        PATH=PATH,
    )
    assert result.returncode == 1, result.stdout
    assert "CLIENTDEDUPE_TARGETS names groq, which is not installed here (pip install groq)" in (
        result.stdout
    )


_DOCTOR_WITHOUT_SITE = (
    f"import sys; sys.path.insert(0, {REPO!r}); from clientdedupe._tools.cli import main; "
    "sys.exit(main(['doctor']))"
)


def test_a_missing_wrapt_is_named_with_the_fix() -> None:
    # No site-packages at all (-S): only the standard library and clientdedupe itself.
    result = run([sys.executable, "-S", "-c", _DOCTOR_WITHOUT_SITE], CLIENTDEDUPE="1", PATH=PATH)
    assert result.returncode == 1
    out = result.stdout
    assert verdict(out) == (
        "Verdict: NOT active: clientdedupe needs wrapt, which cannot be imported here."
    )
    assert f"Fix: {sys.executable} -m pip install 'wrapt>=1.17'" in out
    assert "ModuleNotFoundError: No module named 'wrapt'" in out
    assert "wrapt not installed" in out.splitlines()[0]
    for distribution in {t.sdk.distribution for t in BUILTIN_TARGETS}:
        assert f"  {distribution}: not installed (pip install {distribution})" in out
    assert "would be patched" not in out and "would be skipped" not in out
    assert sysconfig.get_paths()["purelib"] not in out.split("Start-up:")[0]
