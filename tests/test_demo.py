"""``clientdedupe demo``: the newcomer's first command, run as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .processes import REPO, clean_environment


def demo(
    *args: str, open_files: tuple[int, int] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m clientdedupe demo ARGS`` in a fresh interpreter, with ``open_files``
    as its (soft, hard) open-file limit if given; never hangs."""

    def limit() -> None:
        if open_files is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    return subprocess.run(
        [sys.executable, "-m", "clientdedupe", "demo", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_environment(**env),
        timeout=300,
        preexec_fn=limit,
    )


def table_row(stdout: str, label: str) -> tuple[str, str]:
    """The "without" and "with clientdedupe" cells of a row of the demo's table."""
    match = re.search(rf"^\s+{re.escape(label)}\s+(\S+(?: \S+)?)\s+(\S+(?: \S+)?)", stdout, re.M)
    assert match is not None, f"no {label!r} row in:\n{stdout}"
    return match.group(1), match.group(2)


def test_demo_shows_twenty_clients_and_connections_become_one() -> None:
    result = demo("--agents", "20")
    assert result.returncode == 0, result.stderr
    assert table_row(result.stdout, "clients built") == ("20", "1")
    assert table_row(result.stdout, "TCP connections") == ("20", "1")
    assert "TLS handshakes" not in result.stdout
    for label in ("time for the agents", "peak RSS", "RSS growth (agents)"):
        without, with_ = table_row(result.stdout, label)
        assert re.fullmatch(r"\d+\.\d+ (s|MiB)", without), label
        assert re.fullmatch(r"\d+\.\d+ (s|MiB)", with_), label
    # clientdedupe's own count, from `clientdedupe run --report` in the second run.
    assert "openai.OpenAI: 20 constructions, 1 clients built, 19 reused" in result.stdout
    # The progress indicator, written on stderr (not a terminal here: one line per step).
    assert "[1/2] without clientdedupe: done in" in result.stderr
    assert "[2/2] with clientdedupe: done in" in result.stderr


def test_demo_over_tls_with_async_clients_makes_one_handshake() -> None:
    result = demo("--agents", "4", "--tls", "--async")
    assert result.returncode == 0, result.stderr
    assert "openai.AsyncOpenAI()" in result.stdout
    assert "https://127.0.0.1:" in result.stdout
    assert table_row(result.stdout, "clients built") == ("4", "1")
    assert table_row(result.stdout, "TCP connections") == ("4", "1")
    assert table_row(result.stdout, "TLS handshakes") == ("4", "1")


def test_demo_without_openai_says_how_to_install_it(tmp_path: Path) -> None:
    # An `openai` package that fails to import, first on the path, stands for a missing one.
    blocker = tmp_path / "openai"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'openai'\", name='openai')\n"
    )
    result = demo("--agents", "3", PYTHONPATH=str(tmp_path))
    assert result.returncode == 1
    assert "pip install 'clientdedupe[openai]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_demo_refuses_a_number_of_agents_below_one() -> None:
    result = demo("--agents", "0")
    assert result.returncode == 2
    assert "expected an integer >= 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_lowers_the_agents_to_what_the_open_file_limit_allows() -> None:
    # issue 11, 9: 300 agents under `ulimit -n 256` hung for 7 minutes. Here: a hard
    # limit of 64 files leaves room for 32 agents besides what the run itself needs.
    from clientdedupe._tools.demo import FD_MARGIN

    fit = 64 - FD_MARGIN
    result = demo("--agents", "100", open_files=(64, 64))
    assert result.returncode == 0, result.stderr
    assert f"running {fit} agents instead of 100" in result.stderr
    assert "ulimit -n" in result.stderr
    assert table_row(result.stdout, "clients built") == (str(fit), "1")
    assert table_row(result.stdout, "TCP connections") == (str(fit), "1")


def test_demo_raises_a_low_soft_open_file_limit_when_the_hard_one_allows() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    result = demo("--agents", "40", open_files=(24, hard))
    assert result.returncode == 0, result.stderr
    assert "instead of" not in result.stderr
    assert table_row(result.stdout, "clients built") == ("40", "1")


def test_demo_explains_a_limit_too_low_for_two_agents() -> None:
    result = demo("--agents", "10", open_files=(20, 20))
    assert result.returncode == 1
    assert "open-file limit (ulimit -n) is 20" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
