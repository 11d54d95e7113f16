"""Never break the host: races, reuse, other libraries' patches, internal errors."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import wrapt

import clientdedupe
from clientdedupe._context import BYPASS
from clientdedupe._tools.stub_server import StubServer

from .cases import Case
from .processes import run_python


def test_clients_handed_out_before_uninstall_never_close_under_other_holders(
    server: StubServer,
) -> None:
    import openai

    clientdedupe.install()
    url = server.openai_base_url
    mine, yours, theirs = (
        openai.OpenAI(api_key="k", base_url=url),
        openai.OpenAI(api_key="k", base_url=url),
        openai.OpenAI(api_key="k", base_url=url),
    )
    derived = theirs.with_options(timeout=5)
    clientdedupe.uninstall()
    mine.close()
    with yours:
        pass
    derived.close()
    assert not theirs.is_closed()
    assert Case.ask(theirs, "after uninstall") == "echo: after uninstall"
    theirs.close()  # the last user of the pool: closed for good
    assert theirs.is_closed()
    # A client the cache never held closes as usual.
    own = openai.OpenAI(api_key="k", base_url=url)
    own.close()
    assert own.is_closed()


def test_async_clients_handed_out_before_uninstall_stay_open(server: StubServer) -> None:
    import openai

    async def main() -> str:
        clientdedupe.install()
        shared = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
        other = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
        clientdedupe.uninstall()
        async with shared:
            pass
        return await Case.aask(other, "still open")

    assert asyncio.run(main()) == "echo: still open"


def test_one_bypass_object_reused_nested_and_across_threads() -> None:
    shared_block = clientdedupe.bypass()
    with shared_block:
        with shared_block:
            assert BYPASS.get() == "bypass()"
        assert BYPASS.get() == "bypass()"
    assert BYPASS.get() is None

    inside, leave = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    after: list[object] = []

    def first() -> None:
        try:
            with shared_block:
                inside.set()
                leave.wait()
            after.append(BYPASS.get())
        except BaseException as error:
            errors.append(error)

    def second() -> None:
        try:
            inside.wait()
            with shared_block:
                pass
            after.append(BYPASS.get())
        except BaseException as error:
            errors.append(error)
        finally:
            leave.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert after == [None, None]


def test_uninstall_leaves_a_wrapper_another_library_added_later(server: StubServer) -> None:
    import openai

    calls: list[str] = []

    def instrument(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append("init")
        return wrapped(*args, **kwargs)

    before = vars(openai.OpenAI)["__init__"]
    clientdedupe.install()
    wrapt.wrap_function_wrapper(openai.OpenAI, "__init__", instrument)
    try:
        clientdedupe.uninstall()
        openai.OpenAI(api_key="k", base_url=server.openai_base_url)
        assert calls == ["init"]
        assert openai.OpenAI(api_key="k", base_url=server.openai_base_url) is not None
    finally:
        openai.OpenAI.__init__ = before  # type: ignore[method-assign]


@pytest.mark.usefixtures("installed")
def test_deleting_an_attribute_of_a_shared_client_retires_it(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    shared.chat.completions.extra = 1  # type: ignore[attr-defined]
    fresh = openai.OpenAI(api_key="k", base_url=url)
    del fresh.organization
    assert openai.OpenAI(api_key="k", base_url=url) not in (shared, fresh)
    assert clientdedupe.stats()["openai.OpenAI"]["retired"] == 2


@pytest.mark.usefixtures("installed")
def test_a_failing_first_build_under_contention_caches_nothing_and_hangs_nobody(
    server: StubServer,
) -> None:
    import openai

    start = threading.Barrier(8)
    outcomes: list[str] = []

    def construct() -> None:
        start.wait()
        try:
            openai.OpenAI(base_url=server.openai_base_url)  # no key: the SDK raises
            outcomes.append("built")
        except openai.OpenAIError:
            outcomes.append("raised")

    threads = [threading.Thread(target=construct, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert outcomes == ["raised"] * 8
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["failed"], counts["live"]) == (8, 0)


def test_install_from_many_threads_at_once_patches_once(server: StubServer) -> None:
    import openai

    start = threading.Barrier(8)

    def install() -> None:
        start.wait()
        clientdedupe.install()

    original = vars(openai.OpenAI)["__init__"]
    threads = [threading.Thread(target=install) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert vars(openai.OpenAI)["__init__"].__wrapped__ is original  # one layer, not eight
        url = server.openai_base_url
        assert openai.OpenAI(api_key="k", base_url=url) is openai.OpenAI(api_key="k", base_url=url)
    finally:
        clientdedupe.uninstall()


def test_install_while_another_thread_is_importing_the_sdk(tmp_path: Path) -> None:
    # A slow "groq" whose import is under way in a thread when install() runs.
    package = tmp_path / "groq"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sys\nstarted, finish = sys.modules['__main__'].started, sys.modules['__main__'].finish\n"
        "started.set()\nfinish.wait()\nfrom ._client import Groq, AsyncGroq\n"
    )
    (package / "_resource.py").write_text(
        "class SyncAPIResource:\n    pass\nclass AsyncAPIResource:\n    pass\n"
    )
    (package / "_client.py").write_text(
        "class Groq:\n    def __init__(self, *, api_key=None):\n        self.api_key = api_key\n"
        "    def close(self):\n        pass\n"
        "class AsyncGroq(Groq):\n    async def close(self):\n        pass\n"
    )
    result = run_python(
        """
        import threading
        started, finish = threading.Event(), threading.Event()
        importer = threading.Thread(target=lambda: __import__("groq"))
        importer.start()
        started.wait()
        import clientdedupe
        installer = threading.Thread(target=clientdedupe.install, kwargs={"targets": ["groq"]})
        installer.start()  # waits for the import under way
        finish.set()
        importer.join(); installer.join()
        import groq
        print(groq.Groq(api_key="k") is groq.Groq(api_key="k"), sorted(clientdedupe.stats()))
        """,
        PYTHONPATH=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['groq.AsyncGroq', 'groq.Groq']"
    assert "not deduplicating" not in result.stderr


@pytest.mark.usefixtures("installed")
def test_a_key_that_cannot_be_built_means_a_normal_construction(server: StubServer) -> None:
    import openai

    looping: list[object] = []
    looping.append(looping)  # freezing it recurses forever
    url = server.openai_base_url
    first = openai.OpenAI(api_key="k", base_url=url, default_query={"q": looping})
    second = openai.OpenAI(api_key="k", base_url=url, default_query={"q": looping})
    assert first is not second
    reasons = clientdedupe.stats()["openai.OpenAI"]["bypass_reasons"]
    assert reasons == {"the key could not be built": 2}


def test_keyword_arguments_to_install_win_over_the_environment(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    monkeypatch.setenv("CLIENTDEDUPE_MAX_CLIENTS", "1")
    monkeypatch.setenv("CLIENTDEDUPE_TARGETS", "groq")
    clientdedupe.install(targets=["openai"], max_clients=5)
    try:
        clients = [openai.OpenAI(api_key=str(i), base_url=server.openai_base_url) for i in range(5)]
        assert clientdedupe.stats()["openai.OpenAI"]["live"] == 5
        assert openai.OpenAI(api_key="0", base_url=server.openai_base_url) is clients[0]
    finally:
        clientdedupe.uninstall()


@pytest.mark.usefixtures("installed")
def test_copies_made_by_the_sdk_are_not_counted_as_constructions(server: StubServer) -> None:
    import openai

    shared = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    shared.with_options(timeout=3)
    shared.copy(max_retries=1)
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["constructions"], counts["bypassed"]) == (1, 0)


@pytest.mark.usefixtures("installed")
def test_async_cerebras_built_outside_a_loop_is_shared_and_warms_up_once(
    server: StubServer,
) -> None:
    from cerebras.cloud.sdk import AsyncCerebras

    first = AsyncCerebras(api_key="k", base_url=server.cerebras_base_url)
    second = AsyncCerebras(api_key="k", base_url=server.cerebras_base_url)
    assert first is second
    asyncio.run(first.close())
    assert not first.is_closed()  # its other holder
    asyncio.run(second.close())
    assert not first.is_closed()  # idle: kept for the next construction
    clientdedupe.cache_clear()
    assert first.is_closed()
    warmups = [r for r in server.requests if r.path == "/v1/tcp_warming"]
    assert len(warmups) == 1


@pytest.mark.usefixtures("installed")
def test_async_with_on_a_copy_of_a_shared_async_client_keeps_the_pool_open(
    server: StubServer,
) -> None:
    import openai

    async def main() -> str:
        shared = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
        async with shared.with_options(timeout=5) as derived:
            await Case.aask(derived)
        return await Case.aask(
            openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url), "ok"
        )

    assert asyncio.run(main()) == "echo: ok"


def test_the_kill_switch_says_so_once_at_info(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CLIENTDEDUPE", "0")
    monkeypatch.setattr("clientdedupe._api._state.kill_switch_reported", False)
    caplog.set_level(logging.INFO, logger="clientdedupe")
    clientdedupe.install()
    clientdedupe.install()
    assert not clientdedupe.is_installed()
    said = [r for r in caplog.records if r.name == "clientdedupe"]
    assert len(said) == 1 and said[0].levelno == logging.INFO


def test_a_copy_made_after_uninstall_never_closes_the_pool_of_other_holders(
    server: StubServer,
) -> None:
    import openai

    clientdedupe.install()
    mine = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    theirs = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    clientdedupe.uninstall()
    with mine.with_options(timeout=5) as derived:
        Case.ask(derived)
    mine.copy(max_retries=1).close()
    assert Case.ask(theirs, "still open") == "echo: still open"
