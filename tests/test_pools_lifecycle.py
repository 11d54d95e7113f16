"""SPEC §6, async: the connection pools behind a shared async client, when it is closed
for good (its last holder's ``close()`` once the cache let it go, or the cache dropping
it idle): each loop's pool is closed in its own loop, this loop's before ``close()``
returns, and the client then fails as the SDK's own closed client does."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import clientdedupe
from clientdedupe import _pools
from clientdedupe._tools.stub_server import StubServer

from .cases import Case

pytestmark = pytest.mark.usefixtures("installed")

CLOSE_FAILED = "closing a connection pool as its event loop ends failed"


def build(server: StubServer, api_key: str = "k") -> Any:
    """An AsyncOpenAI on the stub server: no retries and a short timeout, so that a call
    that must fail does so at once."""
    import openai

    return openai.AsyncOpenAI(
        api_key=api_key, base_url=server.openai_base_url, max_retries=0, timeout=5.0
    )


async def build_and_ask(server: StubServer) -> Any:
    """A client built, and used once, in the running loop."""
    client = build(server)
    await Case.aask(client, "in the first loop")
    return client


async def failure_of_a_request(client: Any) -> str:
    """What a request on ``client`` raises (type and message); "" if it succeeds."""
    try:
        await Case.aask(client, "after close")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return ""


def sdk_closed_client_failure(server: StubServer) -> str:
    """What a request on the SDK's own client raises once it is closed."""
    with clientdedupe.bypass():
        plain = build(server)

    async def main() -> str:
        await plain.close()
        return await failure_of_a_request(plain)

    failure = asyncio.run(main())
    assert failure  # the baseline: a closed client refuses requests
    return failure


def closing_tasks_alive() -> int:
    """Tasks that closed a pool, still alive after a full collection."""
    gc.collect()
    closing = _pools._quietly.__code__
    tasks = [task for task in gc.get_objects() if isinstance(task, asyncio.Task)]
    return len([task for task in tasks if getattr(task.get_coro(), "cr_code", None) is closing])


@contextlib.contextmanager
def used_in_another_running_loop(client: Any, server: StubServer) -> Iterator[list[int]]:
    """Use ``client`` in an event loop run by another thread, which keeps running for the
    block. Yields a list, filled once the block is done and that thread joined: the
    server's open connections as that loop saw them, waiting for them to settle."""
    used = threading.Event()
    seen_in_other_loop: list[int] = []

    def other_loop() -> None:
        async def main() -> None:
            await Case.aask(client, "in the other loop")
            used.set()
            # This loop idles, waiting: only a wake-up from the closing thread can
            # close its connection while it runs.
            seen_in_other_loop.append(await asyncio.to_thread(server.settled_open_connections))

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    try:
        assert used.wait(timeout=30)
        yield seen_in_other_loop
    finally:
        thread.join()


def test_a_client_closed_for_good_before_any_use_refuses_requests_as_the_sdks_does(
    server: StubServer,
) -> None:
    expected = sdk_closed_client_failure(server)
    client = build(server)  # outside any loop, as applications build them at import
    clientdedupe.cache_clear()  # the cache lets it go: its holder's close() is the last

    async def main() -> tuple[bool, str]:
        await client.close()
        return client.is_closed(), await failure_of_a_request(client)

    assert asyncio.run(main()) == (True, expected)
    assert len(server.requests) == 0


def test_an_idle_client_built_outside_any_loop_then_dropped_refuses_requests_as_the_sdks_does(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    expected = sdk_closed_client_failure(server)
    sdk_aclose = openai.DefaultAsyncHttpxClient.aclose

    async def slow_aclose(pool: Any) -> None:
        await asyncio.sleep(0.05)  # a slow close: dropping the client must wait for it
        await sdk_aclose(pool)

    monkeypatch.setattr(openai.DefaultAsyncHttpxClient, "aclose", slow_aclose)
    client = build(server)  # outside any loop: the pool the SDK built is no loop's

    async def use_and_close() -> str:
        answer = await Case.aask(client, "used here")
        await client.close()  # its only holder: idle, kept by the cache
        return answer

    assert asyncio.run(use_and_close()) == "echo: used here"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clientdedupe.cache_clear()  # the cache drops it idle: closed for good, not awaited
        gc.collect()
    assert [str(warning.message) for warning in caught] == []

    async def use_again() -> tuple[str, int]:
        failure = await failure_of_a_request(client)
        return failure, await asyncio.to_thread(server.settled_open_connections)

    assert asyncio.run(use_again()) == (expected, 0)
    assert len(server.requests) == 1


def test_closing_for_good_closes_this_loops_connection_before_close_returns(
    server: StubServer,
) -> None:
    expected = sdk_closed_client_failure(server)
    client = build(server)

    async def main() -> tuple[str, int, str]:
        answer = await Case.aask(client, "used here")
        clientdedupe.cache_clear()
        await client.close()
        # Nothing else of this loop runs until this returns: close() itself closed it.
        open_now = server.settled_open_connections()
        return answer, open_now, await failure_of_a_request(client)

    assert asyncio.run(main()) == ("echo: used here", 0, expected)


def test_closing_for_good_closes_the_pool_of_another_running_loop_inside_that_loop(
    server: StubServer,
) -> None:
    client = build(server)
    with used_in_another_running_loop(client, server) as seen_in_other_loop:
        clientdedupe.cache_clear()
        asyncio.run(client.close())
    assert seen_in_other_loop == [0]
    assert client.is_closed()


def test_a_pool_of_a_stopped_loop_is_closed_by_that_loop_as_it_finalises(
    server: StubServer,
) -> None:
    expected = sdk_closed_client_failure(server)

    first = asyncio.new_event_loop()
    try:
        client = first.run_until_complete(build_and_ask(server))  # stopped, not closed

        async def main() -> tuple[int, str]:
            await Case.aask(client, "in the second loop")
            clientdedupe.cache_clear()
            await client.close()
            # This loop's connection is closed; the first loop's waits for that loop.
            open_now = server.settled_open_connections(1)
            return open_now, await failure_of_a_request(client)

        assert asyncio.run(main()) == (1, expected)
        assert server.settled_open_connections(1) == 1
        first.run_until_complete(first.shutdown_asyncgens())
        assert server.settled_open_connections() == 0
    finally:
        first.close()


def test_an_idle_client_evicted_is_closed_in_the_loops_still_running_and_logged(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    clientdedupe.uninstall()
    clientdedupe.install(max_clients=1)
    client = build(server, "tenant-1")
    with used_in_another_running_loop(client, server) as seen_in_other_loop:
        asyncio.run(client.close())  # its only holder: idle, kept by the cache
        assert not client.is_closed()
        with caplog.at_level(logging.DEBUG, logger="clientdedupe"):
            build(server, "tenant-2")  # evicts it
    assert seen_in_other_loop == [0]
    assert client.is_closed()
    assert asyncio.run(failure_of_a_request(client)) == sdk_closed_client_failure(server)
    assert closing_tasks_alive() == 0  # the task that closed it is not kept once done
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("closed an idle")]
    assert clientdedupe.stats()["openai.AsyncOpenAI"]["evicted"] == 1


def test_patching_send_on_a_shared_async_clients_pool_applies_in_its_loop_and_is_undone(
    server: StubServer,
) -> None:
    """As a test does with ``mock.patch.object(client._client, "send", ...)``: set on
    the pool of the running loop, removed from it at the end of the block."""

    async def main() -> tuple[list[str], int]:
        client = build(server)
        answers = [await Case.aask(client, "before")]
        pool = client._client
        with mock.patch.object(pool, "send", wraps=pool.send) as spy:
            answers.append(await Case.aask(client, "spied"))
        answers.append(await Case.aask(client, "after"))
        return answers, spy.call_count

    answers, spied = asyncio.run(main())
    assert answers == ["echo: before", "echo: spied", "echo: after"]
    assert spied == 1


async def use_then_drop_while_pools_are_busy(server: StubServer) -> None:
    """Build a client in the running loop, use it, and let it become garbage unclosed
    while another thread is inside the pools' own bookkeeping (its lock held), as the
    collector can run at any allocation: closing its pools is left to the next call
    into that bookkeeping."""
    client = build(server, "dropped")
    await Case.aask(client, "dropped")
    clientdedupe.cache_clear()  # the cache lets it go; its holder drops it unclosed
    with _pools._lock:
        del client
        gc.collect()


def test_a_client_dropped_unclosed_has_its_pools_closed_at_the_next_first_use_in_a_loop(
    server: StubServer,
) -> None:
    other = build(server, "other")  # outside any loop: no pool of this loop yet
    gc.collect()

    async def main() -> tuple[str, int]:
        await use_then_drop_while_pools_are_busy(server)
        answer = await Case.aask(other, "other")  # its first use in this loop
        # Still inside the loop: the dropped client's connection is closed already.
        return answer, await asyncio.to_thread(server.settled_open_connections, 1)

    assert asyncio.run(main()) == ("echo: other", 1)
    assert server.settled_open_connections() == 0


def test_a_client_dropped_unclosed_has_its_pools_closed_at_the_next_construction(
    server: StubServer,
) -> None:
    gc.collect()

    async def main() -> int:
        await use_then_drop_while_pools_are_busy(server)
        build(server, "next")  # built, never used
        return await asyncio.to_thread(server.settled_open_connections)

    assert asyncio.run(main()) == 0


def test_closing_for_good_after_a_loop_closed_by_hand_never_raises_and_logs_the_failure(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Old-style code closes its loop without finalising it: that loop's connections
    cannot be closed any more. Closing the client for good later, in another loop,
    tries (as the SDK's own close() would, which raises "Event loop is closed"), logs
    the failure at debug level, and returns."""

    first = asyncio.new_event_loop()
    try:
        client = first.run_until_complete(build_and_ask(server))
    finally:
        first.close()  # by hand: nothing finalised its async generators

    async def main(client: Any) -> str:
        answer = await Case.aask(client, "in the second loop")
        clientdedupe.cache_clear()
        await client.close()
        return answer

    with caplog.at_level(logging.DEBUG, logger="clientdedupe"):
        assert asyncio.run(main(client)) == "echo: in the second loop"
    failures = [r for r in caplog.records if r.getMessage() == CLOSE_FAILED]
    assert [str(r.exc_info[1]) for r in failures if r.exc_info] == ["Event loop is closed"]
    assert client.is_closed()
    # The first loop's socket is left to the collector, as without clientdedupe: let
    # it go now (the records' tracebacks hold it), without its ResourceWarning.
    for record in caplog.records:
        record.exc_info = None
    caplog.clear()
    del client, failures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
