"""SPEC §7: nothing printed unasked, except the one-line warnings the contract promises.

The ``clientdedupe`` logger has a ``NullHandler`` (nothing reaches stderr through
logging's last-resort handler); a promised warning is one line on stderr, once, unless
the application's logging shows it (then only there); ``setLevel`` on the logger
silences it.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from clientdedupe import _config

from .processes import run, run_python

LAUNCHER = [sys.executable, "-m", "clientdedupe", "run", "--"]


def fake_sdk_without_per_loop_pools(site: Path) -> None:
    """A ``groq`` shaped like the real one, except that its async connection pool
    cannot be made one per event loop (no ``Async…ClientWrapper`` in ``_base_client``)."""
    info = site / "groq-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: groq\nVersion: 1.0.0\n")
    package = site / "groq"
    package.mkdir()
    (package / "__init__.py").write_text("from ._client import AsyncGroq, Groq\n")
    (package / "_client.py").write_text(
        "class Groq:\n"
        "    def __init__(self, *, api_key=None, base_url=None):\n"
        "        self.api_key = api_key\n"
        "    def close(self):\n"
        "        pass\n"
        "class AsyncGroq:\n"
        "    def __init__(self, *, api_key=None, base_url=None):\n"
        "        self.api_key = api_key\n"
        "    async def close(self):\n"
        "        pass\n"
    )
    (package / "_resource.py").write_text(
        "class SyncAPIResource:\n    pass\nclass AsyncAPIResource:\n    pass\n"
    )
    (package / "_base_client.py").write_text("")


def test_the_clientdedupe_logger_has_a_null_handler() -> None:
    result = run_python(
        """
        import logging
        from clientdedupe._log import logger
        print(any(type(h) is logging.NullHandler for h in logger().handlers))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_a_class_replaced_after_patching_is_not_printed_unasked() -> None:
    program = """
        import clientdedupe, openai
        clientdedupe.install()
        openai.OpenAI.close = lambda self: None  # another library replaces what we patched
        clientdedupe.uninstall()
        print("done")
    """
    result = run_python(program)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("done\n", "")
    # Asked for through the application's own logging, it is there.
    asked = run_python("import logging; logging.basicConfig()\n" + textwrap.dedent(program))
    assert "was replaced after clientdedupe patched it" in asked.stderr


def test_the_kill_switch_is_not_printed_unasked() -> None:
    result = run_python("import clientdedupe; clientdedupe.install()", CLIENTDEDUPE="0")
    assert result.returncode == 0
    assert result.stderr == ""


def test_a_bad_value_is_one_line_once_under_the_launcher_and_an_explicit_install() -> None:
    code = "import clientdedupe; clientdedupe.install(); clientdedupe.install(max_clients=2)"
    result = run([*LAUNCHER, sys.executable, "-c", code], CLIENTDEDUPE_MAX_CLIENTS="abc")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "clientdedupe: WARNING: ignoring CLIENTDEDUPE_MAX_CLIENTS='abc': accepted values "
        "are an integer >= 1; using the default"
    ]


def test_a_promised_warning_goes_through_the_applications_logging_when_it_has_some() -> None:
    result = run_python(
        """
        import logging
        logging.basicConfig(format="%(name)s|%(levelname)s|%(message)s")
        import clientdedupe
        clientdedupe.install()
        """,
        CLIENTDEDUPE_ASYNC="maybe",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "clientdedupe|WARNING|"
        + _config.bad_value(_config.ASYNC, "maybe", "shared/loop/off/global")
    ]


def test_the_loggers_level_silences_the_promised_warnings() -> None:
    result = run_python(
        """
        import logging
        logging.getLogger("clientdedupe").setLevel(logging.ERROR)
        import clientdedupe
        clientdedupe.install()
        """,
        CLIENTDEDUPE_ASYNC="maybe",
    )
    assert result.returncode == 0
    assert result.stderr == ""


def test_the_fallback_to_sharing_within_one_loop_is_one_line(tmp_path: Path) -> None:
    fake_sdk_without_per_loop_pools(tmp_path)
    result = run_python(
        """
        import clientdedupe
        clientdedupe.install(targets=["groq"])
        import groq
        print(groq.Groq(api_key="k") is groq.Groq(api_key="k"))
        """,
        PYTHONPATH=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert result.stderr.splitlines() == [
        "clientdedupe: WARNING: groq.AsyncGroq: async clients are shared within one event "
        "loop only: this version's connection pool cannot be made one per event loop"
    ]
