"""SPEC §6: the records of who holds a shared client, seen from outside — holder
counts in ``stats()``, a client closed twice, copies of a closed client, a
``cache_clear()`` that comes during a build, the arguments of a client gone freed with
it, an async holder letting go without costing the others their connection, and a
fork child that forgets the parent's records and lock."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import Case
from .processes import in_forked_child
from .throwaway import throwaway_sdk

# -- a registered SDK whose arguments can be watched --------------------------------------

LEDGER = """
    ON_BUILD = []  # callables run at the start of each construction


    class Tag:
        # An argument without weak-reference support (__slots__, no __weakref__):
        # the cache key holds it strongly. FREED counts those the garbage collector freed.
        __slots__ = ("name",)
        FREED = []

        def __init__(self, name):
            self.name = name

        def __del__(self):
            Tag.FREED.append(self.name)


    class Connection:
        def __init__(self):
            self.open = True


    class View:
        # What Ledger.copy() returns: a light object on the same connection.
        def __init__(self, connection):
            self._client = connection


    class Ledger:
        def __init__(self, *, api_key="k", tag=None):
            for hook in ON_BUILD:
                hook()
            self.api_key = api_key
            self.tag = tag
            self._client = Connection()

        def copy(self, **changes):
            return View(self._client)

        def close(self):
            self._client.open = False
"""


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A throwaway SDK, registered and installed; forgotten after the test."""
    files = {"ledger_sdk.py": LEDGER}
    with throwaway_sdk(tmp_path, monkeypatch, "ledger_sdk", files) as ledger_sdk:
        clientdedupe.register("ledger_sdk:Ledger", env={"api_key": "LEDGER_API_KEY"})
        clientdedupe.install()
        yield ledger_sdk


def _freed(ledger: Any, name: str) -> bool:
    for _ in range(3):
        gc.collect()
    return name in ledger.Tag.FREED


def test_a_cache_clear_during_a_build_leaves_the_client_to_its_holder_who_closes_it(
    ledger: Any,
) -> None:
    ledger.ON_BUILD.append(clientdedupe.cache_clear)  # as another thread's could come
    client = ledger.Ledger(api_key="during")
    ledger.ON_BUILD.clear()
    assert ledger.Ledger(api_key="during") is not client  # never cached
    client.close()  # its only holder, and the cache does not keep it: really closed
    assert not client._client.open


def test_the_arguments_of_a_client_gone_are_freed_with_it(ledger: Any) -> None:
    client = ledger.Ledger(tag=ledger.Tag("gone"))
    assert ledger.Ledger(tag=client.tag) is client
    del client
    clientdedupe.cache_clear()
    assert _freed(ledger, "gone")


def test_a_client_the_cache_let_go_frees_its_arguments_when_its_holder_drops_it(
    ledger: Any,
) -> None:
    client = ledger.Ledger(tag=ledger.Tag("let go"))
    clientdedupe.cache_clear()  # its holder has it; the cache no longer does
    del client  # no construction comes after: nothing else may keep its arguments
    assert _freed(ledger, "let go")


def test_the_arguments_of_a_client_whose_copy_was_dropped_are_freed_with_it(
    ledger: Any,
) -> None:
    client = ledger.Ledger(tag=ledger.Tag("copied"))
    view = client.copy()
    assert view._client is client._client
    del view  # never closed: the garbage collector lets it go
    gc.collect()
    del client
    clientdedupe.cache_clear()
    assert _freed(ledger, "copied")


def test_a_copy_dropped_unclosed_no_longer_keeps_the_pool_from_closing(ledger: Any) -> None:
    client = ledger.Ledger(api_key="dropped copy")
    view = client.copy()
    del view
    gc.collect()
    clientdedupe.cache_clear()
    client.close()  # the last user of the pool now
    assert not client._client.open


def test_threads_constructing_a_client_keyed_on_an_object_at_once_get_one_instance(
    ledger: Any,
) -> None:
    tag = ledger.Tag("flight")  # held by identity: the cache holds the client weakly
    waiting = threading.Event()
    second: list[Any] = []

    def spot_the_wait(frame: FrameType, event: str, arg: object) -> None:
        if (
            event == "call"
            and frame.f_code.co_name == "wait"
            and frame.f_back is not None
            and frame.f_back.f_code.co_name == "get_or_build"
        ):
            sys.setprofile(None)
            waiting.set()

    def construct_too() -> None:
        sys.setprofile(spot_the_wait)
        try:
            second.append(ledger.Ledger(tag=tag))
        finally:
            sys.setprofile(None)

    worker = threading.Thread(target=construct_too, daemon=True)

    def while_building() -> None:
        ledger.ON_BUILD.clear()  # this first build only
        worker.start()
        assert waiting.wait(60)  # the other thread waits for this build

    ledger.ON_BUILD.append(while_building)
    first = ledger.Ledger(tag=tag)
    worker.join(60)
    assert second == [first]
    assert clientdedupe.stats()["ledger_sdk.Ledger"]["built"] == 1


# -- holders counted once per close ------------------------------------------------------


@pytest.mark.usefixtures("installed")
def test_a_client_closed_twice_by_its_only_holder_is_closed_when_the_cache_drops_it(
    server: StubServer,
) -> None:
    import openai

    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    client.close()
    client.close()  # a second close() lets go of nothing more
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["holders"], counts["idle"]) == (0, 1)
    clientdedupe.cache_clear()
    assert client.is_closed()


# -- a client on the caller's http_client, closed for good --------------------------------


@pytest.mark.usefixtures("installed")
def test_a_client_on_a_callers_http_client_closed_twice_counts_one_close(
    server: StubServer,
) -> None:
    import openai

    client = openai.OpenAI(
        api_key="k", base_url=server.openai_base_url, http_client=openai.DefaultHttpxClient()
    )
    client.close()  # its only holder: closed at once, and no longer shared
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["live"], counts["closed"]) == (0, 1)
    client.close()
    assert clientdedupe.stats()["openai.OpenAI"]["closed"] == 1
    assert client.is_closed()


@pytest.mark.usefixtures("installed")
def test_each_copy_of_a_closed_client_closes_the_callers_http_client_as_plain_does(
    server: StubServer,
) -> None:
    import openai

    class CountingClient(openai.DefaultHttpxClient):
        """A caller's own ``http_client`` that counts the ``close()`` calls reaching it."""

        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    pool = CountingClient()
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, http_client=pool)
    client.close()
    assert pool.closes == 1
    first, second = client.with_options(timeout=5), client.with_options(timeout=6)
    first.close()
    second.close()
    # Without clientdedupe each close() reaches the pool; the client was closed already.
    assert pool.closes == 3
    assert clientdedupe.stats()["openai.OpenAI"]["closed"] == 1


@pytest.mark.usefixtures("installed")
def test_a_copy_made_before_uninstall_and_closed_after_keeps_the_pool_of_holders(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    mine, theirs = (openai.OpenAI(api_key="k", base_url=url) for _ in range(2))
    derived = mine.with_options(timeout=5)
    clientdedupe.uninstall()
    derived.close()  # the SDK's close() again, but the client's holders use the pool
    assert not theirs.is_closed()
    assert Case.ask(theirs, "still mine") == "echo: still mine"


@pytest.mark.usefixtures("installed")
def test_a_copy_closed_before_uninstall_and_closed_again_after_keeps_the_pool_of_holders(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    mine, theirs = (openai.OpenAI(api_key="k", base_url=url) for _ in range(2))
    derived = mine.with_options(timeout=5)
    derived.close()
    clientdedupe.uninstall()
    derived.close()  # closing twice is the SDK's no-op, never the holders' pool
    derived.with_options(timeout=6).close()
    assert not theirs.is_closed()
    assert Case.ask(theirs, "still mine") == "echo: still mine"


# -- an async holder letting go ---------------------------------------------------------


@pytest.mark.usefixtures("installed")
def test_an_async_holder_letting_go_leaves_the_others_their_connection(
    server: StubServer,
) -> None:
    import openai

    async def main() -> list[str]:
        url = server.openai_base_url
        mine = openai.AsyncOpenAI(api_key="k", base_url=url)
        theirs = openai.AsyncOpenAI(api_key="k", base_url=url)
        assert mine is theirs
        answers = [await Case.aask(theirs, "one")]
        await mine.close()  # another holder still uses the pool of this loop
        answers.append(await Case.aask(theirs, "two"))
        await theirs.close()
        return answers

    assert asyncio.run(main()) == ["echo: one", "echo: two"]
    assert server.connections == 1  # the second request reused the first's connection


# -- fork --------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads running
@pytest.mark.usefixtures("installed")
def test_a_fork_while_another_thread_is_inside_the_critical_section_shares_in_the_child(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    inside, go = threading.Event(), threading.Event()

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if (
            event == "call"
            and frame.f_code.co_name == "register"
            and frame.f_globals.get("__name__") == "clientdedupe._ownership"
        ):
            sys.setprofile(None)
            inside.set()
            go.wait(60)

    def construct() -> None:
        sys.setprofile(hook)
        try:
            openai.OpenAI(api_key="parent", base_url=url)
        finally:
            sys.setprofile(None)

    worker = threading.Thread(target=construct, daemon=True)
    worker.start()
    try:
        assert inside.wait(60)

        def child() -> str:
            first = openai.OpenAI(api_key="child", base_url=url)
            again = openai.OpenAI(api_key="child", base_url=url)
            return str(first is again)

        said = in_forked_child(child)
    finally:
        go.set()
        worker.join(60)
    # The child never waits for a thread it does not have, and shares as usual.
    assert said == "True"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
@pytest.mark.usefixtures("installed")
def test_in_a_fork_child_the_parents_clients_and_copies_close_as_plain(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    copied = openai.OpenAI(api_key="copied", base_url=url)
    copy = copied.with_options(timeout=5)
    other = openai.OpenAI(api_key="other", base_url=url)

    def child() -> str:
        copy.close()
        other.close()
        return f"{copy.is_closed()} {other.is_closed()}"

    # Their sockets are the parent's too: the child's close() is the SDK's own.
    assert in_forked_child(child) == "True True"
    assert not (copied.is_closed() or other.is_closed())
