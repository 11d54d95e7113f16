"""SPEC §5-§6, async: the per-loop connection pools behind a shared async client, seen
from outside: one connection per client per loop, each loop's pools closed in that loop,
loops left behind forgotten cleanly, and the bookkeeping safe across fork()."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings
import weakref
from typing import Any

import pytest

import clientdedupe
from clientdedupe import _pools
from clientdedupe._tools.stub_server import StubServer

from .cases import Case

pytestmark = pytest.mark.usefixtures("installed")


def build(server: StubServer, api_key: str = "k") -> Any:
    """An AsyncOpenAI on the stub server, failing at once rather than retrying."""
    import openai

    return openai.AsyncOpenAI(
        api_key=api_key, base_url=server.openai_base_url, max_retries=0, timeout=5.0
    )


def test_interleaved_clients_in_one_loop_keep_one_connection_each(server: StubServer) -> None:
    first, second = build(server, "first"), build(server, "second")

    async def main() -> tuple[list[str], int]:
        answers = [
            await Case.aask(first, "a"),
            await Case.aask(second, "b"),
            await Case.aask(first, "c"),
            await Case.aask(second, "d"),
        ]
        return answers, await asyncio.to_thread(server.settled_open_connections, 2)

    answers, open_inside = asyncio.run(main())
    assert answers == ["echo: a", "echo: b", "echo: c", "echo: d"]
    assert open_inside == 2
    assert server.connections == 2  # each client's pool of this loop made once
    assert server.settled_open_connections() == 0


def test_a_finished_event_loop_is_not_kept_alive_by_its_pools(server: StubServer) -> None:
    client = build(server)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await Case.aask(client, "once")

    assert asyncio.run(main()) == "echo: once"
    gc.collect()
    assert loops[0]() is None
    assert server.settled_open_connections() == 0


def test_a_first_use_after_the_loop_finalised_its_generators_warns_as_the_sdk_does(
    server: StubServer,
) -> None:
    """Cleanup code run in a loop after ``shutdown_asyncgens()`` (as some frameworks'
    shutdown does) may still use a shared client: asyncio warns no more than it does
    for the SDK's own client (whose httpx async generators it flags)."""
    with clientdedupe.bypass():
        plain = build(server)
    client = build(server)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        counts = []
        for each in (plain, client):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                answer = loop.run_until_complete(Case.aask(each, "late"))
            assert answer == "echo: late"
            counts.append(len(caught))
        assert counts[1] == counts[0]
    finally:
        clientdedupe.cache_clear()
        loop.run_until_complete(client.close())
        loop.run_until_complete(plain.close())
        loop.close()
    assert server.settled_open_connections() == 0


def test_closing_an_idle_client_in_a_loop_that_never_used_it_returns(
    server: StubServer,
) -> None:
    client = build(server)
    assert asyncio.run(Case.aask(client, "used")) == "echo: used"

    async def close_in_a_fresh_loop() -> None:
        await client.close()  # its only holder; the cache keeps it, idle

    asyncio.run(close_in_a_fresh_loop())
    assert not client.is_closed()
    assert asyncio.run(Case.aask(build(server), "again")) == "echo: again"
    assert server.settled_open_connections() == 0


def test_closing_for_good_in_a_loop_where_only_another_client_was_used(
    server: StubServer,
) -> None:
    closing, other = build(server, "closing"), build(server, "other")

    async def main() -> tuple[str, bool]:
        answer = await Case.aask(other, "other")  # this loop has pools, not `closing`'s
        clientdedupe.cache_clear()
        await closing.close()
        return answer, closing.is_closed()

    assert asyncio.run(main()) == ("echo: other", True)
    assert server.settled_open_connections() == 0


def test_a_loop_bound_client_let_go_is_closed_for_good_as_its_loop_ends(
    server: StubServer,
) -> None:
    clientdedupe.uninstall()
    clientdedupe.install(async_mode="loop")

    async def main() -> tuple[str, bool, Any]:
        client = build(server)
        answer = await Case.aask(client, "in the loop")
        await client.close()  # its only holder lets go: the cache keeps it, idle
        return answer, client.is_closed(), client

    answer, closed_inside, client = asyncio.run(main())
    assert (answer, closed_inside) == ("echo: in the loop", False)
    assert client.is_closed()  # the loop's end closed it, inside the loop
    assert server.settled_open_connections() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
def test_a_child_forked_while_another_thread_is_in_the_pools_bookkeeping_can_use_clients(
    server: StubServer,
) -> None:
    """The collector or another thread may be inside the pools' bookkeeping at fork():
    the child must not inherit that as a lock held forever."""
    build(server, "parent")  # the SDK imported and patched before fork(), as in an app
    holding, release = threading.Event(), threading.Event()

    def busy() -> None:
        with _pools._lock:
            holding.set()
            release.wait()

    thread = threading.Thread(target=busy)
    thread.start()
    assert holding.wait(timeout=30)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            answers: list[str] = []
            worker = threading.Thread(
                target=lambda: answers.append(asyncio.run(Case.aask(build(server), "child"))),
                daemon=True,
            )
            worker.start()
            worker.join(timeout=60)  # only a deadlock takes this long
            os.write(write_end, repr(answers).encode())
        finally:
            os._exit(0)
    release.set()
    thread.join()
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        verdict = pipe.read()
    os.waitpid(pid, 0)
    assert verdict == repr(["echo: child"])
