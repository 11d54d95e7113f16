"""SPEC §6 and §7: the cache on its less travelled paths — a thread that waited for
another thread's build of the same client (single flight), a construction of the same
client from inside its own build, ``cache_clear()`` or a holder's change racing a
construction, and the last close of a client built on the caller's ``http_client``.

The moments that matter (a thread is waiting for another's build, a build is under way)
are picked with a profile hook (``sys.setprofile``, per thread), as a debugger stopped
there would pick them, or with a layer around a function the build calls: either
observes or interrupts the real code, and nothing is mocked.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import Case

#: Seconds a thread waits for another at most: only reached when the code under test
#: deadlocks (the test then fails rather than hangs); never a synchronisation.
DEADLOCK = 60.0

RETIRED = "retired from sharing"

Hook = Callable[[FrameType, str, object], None]


def _entering(frame: FrameType, module: str, function: str) -> bool:
    return frame.f_code.co_name == function and frame.f_globals.get("__name__") == module


def _profiled(hook: Hook, construct: Callable[[], Any]) -> Any:
    """``construct()`` with ``hook`` as this thread's profile function."""
    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        return construct()
    finally:
        sys.setprofile(previous)


# -- single flight: a second thread constructs what a first thread is building ------------


class Flight:
    """What two threads constructing one client at once got, and how the second waited."""

    def __init__(self) -> None:
        #: "first" / "second" → the client that construction returned, or what it raised
        self.results: dict[str, Any] = {}
        #: The connection pool of the first thread's client as it was built.
        self.pool: object = None
        #: The second thread blocked until the first thread's build was over.
        self.waited = False
        #: The second thread took the cache's lock again while the build was under way.
        self.polled = False
        self.stuck: list[str] = []


def _second_thread_during_first_build(
    first: Callable[[], Any],
    second: Callable[[], Any],
    *,
    once_kept: Callable[[], object] | None = None,
) -> Flight:
    """Run ``first()`` in a thread, and ``second()`` in another while the first one's
    build is under way: the first build goes on only once the second thread waits for
    it (or, were it not to wait, has taken the cache's lock a second time).
    ``once_kept()`` runs in the first thread once its client is in the cache, before the
    waiting thread is told the build is over."""
    flight = Flight()
    building = threading.Event()
    second_is_waiting = threading.Event()
    kept: list[object] = []

    def first_hook(frame: FrameType, event: str, arg: object) -> None:
        if (
            event == "call"
            and not building.is_set()
            and _entering(frame, "clientdedupe._constructor", "build")
        ):
            building.set()
            second_is_waiting.wait(DEADLOCK)
        elif (
            event == "return"
            and not kept
            and arg is not None
            and _entering(frame, "clientdedupe._cache", "_share")
        ):
            kept.append(arg)
            flight.pool = vars(arg)["_client"]
            if once_kept is not None:
                once_kept()

    locks_taken = 0

    def second_hook(frame: FrameType, event: str, arg: object) -> None:
        nonlocal locks_taken
        if event != "call" or second_is_waiting.is_set():
            return
        if _entering(frame, "threading", "wait"):
            caller = frame.f_back
            if caller is not None and caller.f_code.co_name == "get_or_build":
                flight.waited = True
                second_is_waiting.set()
        elif _entering(frame, "clientdedupe._ownership", "__enter__"):
            locks_taken += 1
            if locks_taken > 1:
                flight.polled = True
                second_is_waiting.set()

    def run(name: str, hook: Hook, construct: Callable[[], Any]) -> None:
        try:
            flight.results[name] = _profiled(hook, construct)
        except Exception as error:  # reported to the test, never swallowed
            flight.results[name] = error

    def run_second() -> None:
        if building.wait(DEADLOCK):
            run("second", second_hook, second)

    threads = {
        "first": threading.Thread(target=run, args=("first", first_hook, first), daemon=True),
        "second": threading.Thread(target=run_second, daemon=True),
    }
    for thread in threads.values():
        thread.start()
    for name, thread in threads.items():
        thread.join(DEADLOCK)
        if thread.is_alive():
            flight.stuck.append(name)
    return flight


@pytest.mark.usefixtures("installed")
def test_a_thread_that_waited_for_another_threads_build_gets_that_client_as_one_more_holder(
    server: StubServer,
) -> None:
    import openai

    def construct() -> Any:
        return openai.OpenAI(api_key="k", base_url=server.openai_base_url)

    flight = _second_thread_during_first_build(construct, construct)
    assert (flight.stuck, flight.waited) == ([], True)
    first, second = flight.results["first"], flight.results["second"]
    assert second is first
    # Handed over as built, never initialised again: one connection pool for both.
    assert second._client is flight.pool
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["built"], counts["reused"], counts["holders"]) == (1, 1, 2)
    assert Case.ask(second, "waited") == "echo: waited"
    clientdedupe.cache_clear()  # only its two holders have it now
    first.close()
    assert not second.is_closed()  # the other holder still uses it
    second.close()
    assert second.is_closed()  # the last holder: closed, as without clientdedupe
    assert clientdedupe.stats()["openai.OpenAI"]["closed"] == 1
    assert server.settled_open_connections() == 0


@pytest.mark.usefixtures("installed")
def test_a_thread_waiting_for_another_threads_build_blocks_instead_of_polling_the_cache(
    server: StubServer,
) -> None:
    import openai

    def construct() -> Any:
        return openai.OpenAI(api_key="k", base_url=server.openai_base_url)

    flight = _second_thread_during_first_build(construct, construct)
    assert flight.stuck == []
    assert (flight.waited, flight.polled) == (True, False)
    assert flight.results["second"] is flight.results["first"]


def test_a_client_handed_to_a_thread_that_waited_for_it_is_the_most_recently_used(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    clientdedupe.install(max_clients=2)
    try:

        def construct() -> Any:
            return openai.OpenAI(api_key="waited-for", base_url=url)

        others: list[Any] = []
        flight = _second_thread_during_first_build(
            construct,
            construct,
            # Another client is built while the waiting thread still waits.
            once_kept=lambda: others.append(openai.OpenAI(api_key="other", base_url=url)),
        )
        assert (flight.stuck, flight.waited) == ([], True)
        waited_for = flight.results["second"]
        assert waited_for is flight.results["first"]
        [other] = others
        openai.OpenAI(api_key="third", base_url=url)  # evicts the least recently used
        assert openai.OpenAI(api_key="waited-for", base_url=url) is waited_for
        assert openai.OpenAI(api_key="other", base_url=url) is not other
        assert clientdedupe.stats()["openai.OpenAI"]["evicted"] >= 1
    finally:
        clientdedupe.uninstall()


@pytest.mark.usefixtures("installed")
def test_a_thread_waiting_for_a_build_that_fails_tries_its_own_and_gets_the_sdks_error(
    server: StubServer,
) -> None:
    import openai

    def construct() -> Any:
        return openai.OpenAI(base_url=server.openai_base_url)  # no API key anywhere

    flight = _second_thread_during_first_build(construct, construct)
    assert (flight.stuck, flight.waited) == ([], True)
    assert type(flight.results["first"]) is openai.OpenAIError
    assert type(flight.results["second"]) is openai.OpenAIError
    assert str(flight.results["second"]) == str(flight.results["first"])
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["failed"], counts["built"], counts["live"]) == (2, 0, 0)


# -- a construction of the same client from inside its own build --------------------------


@pytest.mark.usefixtures("installed")
def test_constructing_a_client_inside_its_own_build_gets_a_plain_one_instead_of_a_deadlock(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    from clientdedupe import _constructor

    url = server.openai_base_url
    nested: list[Any] = []
    outer: list[Any] = []
    detach = _constructor.detach

    def constructing_inside(value: object) -> object:
        # As code run inside the build (a layer, a debugger evaluating the same
        # constructor) would. A layer rather than a profile hook: what a hook runs is
        # invisible to tracers, and so to the mutation run's coverage.
        if not nested:
            nested.append(openai.OpenAI(api_key="k", base_url=url))
        return detach(value)

    monkeypatch.setattr(_constructor, "detach", constructing_inside)

    def construct() -> None:
        outer.append(openai.OpenAI(api_key="k", base_url=url))

    thread = threading.Thread(target=construct, daemon=True)
    thread.start()
    thread.join(DEADLOCK)
    assert not thread.is_alive(), "a construction inside its own build deadlocked"
    [shared], [plain] = outer, nested
    assert plain is not shared
    assert type(plain) is openai.OpenAI
    assert Case.ask(plain, "plain") == "echo: plain"
    assert openai.OpenAI(api_key="k", base_url=url) is shared
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["built"], counts["reused"]) == (1, 1)
    assert counts["bypass_reasons"] == {"built inside another construction of the same client": 1}
    plain.close()


# -- cache_clear() and a holder's change, racing a construction ---------------------------


@pytest.mark.usefixtures("installed")
def test_a_client_whose_build_overlapped_cache_clear_goes_to_its_holder_only(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and _entering(frame, "clientdedupe._constructor", "build"):
            clientdedupe.cache_clear()  # from another thread, in that very moment

    during = _profiled(hook, lambda: openai.OpenAI(api_key="k", base_url=url))
    after = openai.OpenAI(api_key="k", base_url=url)
    assert after is not during  # the clear came after the construction began
    assert openai.OpenAI(api_key="k", base_url=url) is after
    assert Case.ask(during, "held") == "echo: held"
    during.close()  # its only holder: closed for good
    assert during.is_closed()
    assert not after.is_closed()


@pytest.mark.usefixtures("installed")
def test_a_change_on_a_client_that_cache_clear_dropped_meanwhile_is_no_retirement(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    caplog.set_level(logging.INFO, logger="clientdedupe")
    url = server.openai_base_url
    client = openai.OpenAI(api_key="k", base_url=url)

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and _entering(frame, "clientdedupe._cache", "retire"):
            clientdedupe.cache_clear()  # from another thread, in that very moment

    def change() -> None:
        client.api_key = "sk-changed-by-a-holder"

    _profiled(hook, change)
    assert clientdedupe.stats()["openai.OpenAI"]["retired"] == 0
    assert not [m for m in caplog.messages if RETIRED in m]
    assert not client.is_closed()  # still its holder's
    assert openai.OpenAI(api_key="k", base_url=url) is not client


@pytest.mark.usefixtures("installed")
def test_a_change_on_an_idle_shared_client_retires_it_closes_it_and_says_so(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    caplog.set_level(logging.INFO, logger="clientdedupe")
    url = server.openai_base_url
    with openai.OpenAI(api_key="k", base_url=url) as client:
        assert Case.ask(client) == "echo: hi"
    assert not client.is_closed()  # idle: kept for the next construction of its key
    [fingerprint] = clientdedupe.stats()["openai.OpenAI"]["clients"]
    client.api_key = "sk-changed"  # no holder is left: nothing keeps it open
    assert client.is_closed()
    assert server.settled_open_connections() == 0
    assert [m for m in caplog.messages if RETIRED in m] == [
        f"a holder changed 'api_key' on a shared openai.OpenAI [{fingerprint}]: {RETIRED}"
    ]
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["retired"], counts["closed"], counts["live"]) == (1, 1, 0)
    assert openai.OpenAI(api_key="k", base_url=url) is not client


# -- clients built on the caller's http_client --------------------------------------------


@pytest.mark.usefixtures("installed")
def test_the_last_close_of_a_client_on_a_callers_http_client_forgets_and_counts_it(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    own: Any = openai.DefaultHttpxClient()
    client = openai.OpenAI(api_key="k", base_url=url, http_client=own)
    assert openai.OpenAI(api_key="k", base_url=url, http_client=own) is client
    client.close()
    assert not own.is_closed  # another holder
    client.close()  # the last holder: closed at once, as plain does
    assert own.is_closed
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["live"], counts["closed"], counts["clients"]) == (0, 1, [])


@pytest.mark.usefixtures("installed")
def test_a_change_on_a_client_closed_for_good_is_no_retirement(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    caplog.set_level(logging.INFO, logger="clientdedupe")
    own = openai.DefaultHttpxClient()
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, http_client=own)
    client.close()  # its only holder, on the caller's http_client: closed for good
    client.api_key = "sk-changed-after-close"
    assert clientdedupe.stats()["openai.OpenAI"]["retired"] == 0
    assert not [m for m in caplog.messages if RETIRED in m]


@pytest.mark.usefixtures("installed")
def test_a_client_on_a_callers_http_client_garbage_collected_is_built_and_shared_again(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    own = openai.DefaultHttpxClient()
    gone = weakref.ref(openai.OpenAI(api_key="k", base_url=url, http_client=own))
    gc.collect()
    assert gone() is None  # dropped by its holder, never closed: the pool is the caller's
    again = openai.OpenAI(api_key="k", base_url=url, http_client=own)
    assert openai.OpenAI(api_key="k", base_url=url, http_client=own) is again
    assert Case.ask(again, "again") == "echo: again"
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["built"], counts["reused"], counts["bypassed"]) == (2, 1, 0)
    again.close()
    again.close()
    assert own.is_closed


# -- the end of an event loop ---------------------------------------------------------------


def test_a_client_collected_as_its_event_loop_ends_leaves_the_loops_other_clients_closed(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    import openai

    caplog.set_level(logging.DEBUG, logger="clientdedupe")
    url = server.openai_base_url

    async def main() -> Any:
        garbage = openai.AsyncOpenAI(api_key="garbage", base_url=url)
        kept = openai.AsyncOpenAI(api_key="kept", base_url=url)
        for client in (garbage, kept):
            assert await Case.aask(client) == "echo: hi"
            await client.close()  # the only holder lets go: idle, kept for this loop
        cycle: list[Any] = [garbage]
        cycle.append(cycle)  # only reference cycles keep it once the cache lets go
        return kept

    def hook(frame: FrameType, event: str, arg: object) -> None:
        # The garbage collector runs just as the ending loop's clients are dropped.
        caller = frame.f_back
        if (
            event == "return"
            and _entering(frame, "clientdedupe._ownership", "__exit__")
            and caller is not None
            and caller.f_code.co_name == "finalise_loop"
        ):
            gc.collect()

    clientdedupe.install(async_mode="loop")
    try:
        kept = _profiled(hook, lambda: asyncio.run(main()))
        assert kept.is_closed()  # closed inside its loop as the loop ended
        assert not [r for r in caplog.records if r.exc_info]
        assert clientdedupe.stats()["openai.AsyncOpenAI"]["live"] == 0
        assert server.settled_open_connections() == 0
    finally:
        clientdedupe.uninstall()
