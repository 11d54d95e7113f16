"""SPEC §5-§6, async: one shared client per key whatever loop runs, one connection pool per
running event loop behind it, closed inside that loop as it ends."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import ASYNC_CASES, Case


def loop_pools(case: Case) -> int:
    return int(clientdedupe.stats()[case.qualname]["loop_pools"])


def idle_warm_up(case: Case) -> int:
    """AsyncCerebras warms up through a sync Cerebras with the same key: that one is
    shared too, and stays idle in the cache with its connection open."""
    return 1 if "Cerebras" in case.qualname else 0


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_one_async_client_serves_successive_asyncio_runs_with_a_pool_per_run(
    case: Case, server: StubServer
) -> None:
    clients: list[Any] = []
    pools_inside: list[int] = []

    async def agent(text: str) -> str:
        first, second = case.build(server), case.build(server)
        assert first is second
        clients.append(first)
        answer = await case.aask(first, text)
        pools_inside.append(loop_pools(case))
        return answer

    left = idle_warm_up(case)
    assert asyncio.run(agent("one")) == "echo: one"
    # Closed inside the loop as it ended:
    assert (server.settled_open_connections(left), loop_pools(case)) == (left, 0)
    assert asyncio.run(agent("two")) == "echo: two"
    assert (server.settled_open_connections(left), loop_pools(case)) == (left, 0)
    assert clients[0] is clients[1]
    assert pools_inside == [1, 1]


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_async_clients_built_outside_any_loop_are_one_client_working_in_every_run(
    case: Case, server: StubServer
) -> None:
    # As langchain, openai-agents and autogen build them: at module level, no loop.
    clients = [case.build(server) for _ in range(6)]
    assert all(client is clients[0] for client in clients)
    before = len(server.requests)
    answers = [asyncio.run(case.aask(client, f"run {i}")) for i, client in enumerate(clients)]
    assert answers == [f"echo: run {i}" for i in range(6)]
    assert len(server.requests) - before == 6
    assert server.settled_open_connections(idle_warm_up(case)) == idle_warm_up(case)


@pytest.mark.usefixtures("installed")
def test_a_held_async_client_works_in_twenty_successive_asyncio_runs(server: StubServer) -> None:
    import openai

    held = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
    answers = [asyncio.run(Case.aask(held, f"run {i}")) for i in range(20)]
    assert answers == [f"echo: run {i}" for i in range(20)]
    assert server.max_open_connections == 1


def test_without_clientdedupe_a_held_async_client_fails_in_a_later_asyncio_run(
    server: StubServer,
) -> None:
    """The baseline the README states: the SDK's own pool belongs to the first loop.

    Without retries, so that the failure surfaces: openai 2 retries it on a fresh
    connection (and succeeds, a second later), openai 3 does not.
    """
    import openai

    held = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, max_retries=0)
    failures = []
    for i in range(4):
        try:
            asyncio.run(Case.aask(held, f"run {i}"))
        except Exception as error:  # RuntimeError, or the SDK's APIConnectionError from it
            failures.append(str(error.__cause__ or error))
    assert "Event loop is closed" in failures


@pytest.mark.usefixtures("installed")
def test_threads_each_running_a_loop_share_the_client_with_a_pool_each(server: StubServer) -> None:
    import openai

    shared = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
    threads_count = 4
    together = threading.Barrier(threads_count)
    answers: list[str] = []
    errors: list[BaseException] = []

    def in_its_own_loop(n: int) -> None:
        async def main() -> None:
            client = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
            assert client is shared
            answers.append(await Case.aask(client, f"thread {n}"))
            together.wait(timeout=30)  # every loop has its pool open at once
            answers.append(await Case.aask(client, f"thread {n} again"))

        try:
            asyncio.run(main())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=in_its_own_loop, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(answers) == sorted(
        [f"echo: thread {n}" for n in range(threads_count)]
        + [f"echo: thread {n} again" for n in range(threads_count)]
    )
    # One connection per loop: each loop reused its own for its second request.
    assert server.connections == threads_count
    assert server.settled_open_connections() == 0
    assert loop_pools(case_for("openai.AsyncOpenAI")) == 0


def case_for(qualname: str) -> Case:
    return next(case for case in ASYNC_CASES if case.qualname == qualname)


@pytest.mark.usefixtures("installed")
def test_a_callers_http_client_is_shared_as_given_and_never_closed_by_clientdedupe(
    server: StubServer,
) -> None:
    import openai

    async def main() -> Any:
        own = openai.DefaultAsyncHttpxClient()
        first = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, http_client=own)
        second = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, http_client=own)
        assert first is second and first._client is own
        await Case.aask(first)
        return own

    own = asyncio.run(main())
    assert not own.is_closed  # the caller's, even after its loop ended
    assert loop_pools(case_for("openai.AsyncOpenAI")) == 0


@pytest.mark.usefixtures("installed")
def test_a_client_given_an_http_client_is_shared_across_loops_as_that_pool_is_the_callers(
    server: StubServer,
) -> None:
    """Unlike other objects by identity (a token provider may hold loop state), a
    caller's ``http_client`` does not make the client loop-bound: plain would use it in
    every loop too."""
    import openai

    own = openai.DefaultAsyncHttpxClient()
    url = server.openai_base_url

    async def build() -> Any:
        return openai.AsyncOpenAI(api_key="k", base_url=url, http_client=own)

    outside = openai.AsyncOpenAI(api_key="k", base_url=url, http_client=own)
    assert asyncio.run(build()) is outside
    assert asyncio.run(build()) is outside

    def provider() -> str:
        return "k"

    async def with_provider() -> Any:
        return openai.AsyncOpenAI(api_key=provider, base_url=url, http_client=own)

    assert asyncio.run(with_provider()) is not asyncio.run(with_provider())


@pytest.mark.usefixtures("installed")
def test_an_object_by_identity_inside_a_dict_argument_binds_the_client_to_its_loop(
    server: StubServer,
) -> None:
    import openai

    class Tag:  # any object that is not plain data: compared by identity
        def __str__(self) -> str:
            return "tenant-7"

    tag = Tag()

    async def build_twice() -> Any:
        query = {"tag": tag}
        first = openai.AsyncOpenAI(
            api_key="k", base_url=server.openai_base_url, default_query=query
        )
        assert (
            openai.AsyncOpenAI(
                api_key="k", base_url=server.openai_base_url, default_query={"tag": tag}
            )
            is first
        )
        return first

    assert asyncio.run(build_twice()) is not asyncio.run(build_twice())


def test_loop_mode_shares_within_one_running_loop_only(server: StubServer) -> None:
    import openai

    clientdedupe.install(async_mode="loop")
    try:
        url = server.openai_base_url

        async def main() -> Any:
            client = openai.AsyncOpenAI(api_key="k", base_url=url)
            assert openai.AsyncOpenAI(api_key="k", base_url=url) is client
            await Case.aask(client)
            return client

        first, second = asyncio.run(main()), asyncio.run(main())
        assert first is not second
        assert server.settled_open_connections() == 0
        outside = openai.AsyncOpenAI(api_key="k", base_url=url)
        assert outside is not openai.AsyncOpenAI(api_key="k", base_url=url)
        counts = clientdedupe.stats()["openai.AsyncOpenAI"]
        assert counts["bypass_reasons"] == {"async, no running event loop": 2}
        assert counts["live"] == 0  # both loops are over
    finally:
        clientdedupe.uninstall()


def test_global_is_an_old_name_of_shared(server: StubServer) -> None:
    import openai

    clientdedupe.install(async_mode="global")
    try:
        url = server.openai_base_url
        client = openai.AsyncOpenAI(api_key="k", base_url=url)
        assert openai.AsyncOpenAI(api_key="k", base_url=url) is client
        assert asyncio.run(Case.aask(client, "one")) == "echo: one"
        assert asyncio.run(Case.aask(client, "two")) == "echo: two"
    finally:
        clientdedupe.uninstall()


def test_off_mode_never_shares_async_clients(server: StubServer) -> None:
    import openai

    clientdedupe.install(async_mode="off")
    try:
        url = server.openai_base_url

        async def main() -> tuple[Any, Any]:
            return openai.AsyncOpenAI(api_key="k", base_url=url), openai.AsyncOpenAI(
                api_key="k", base_url=url
            )

        first, second = asyncio.run(main())
        assert first is not second
        assert openai.OpenAI(api_key="k", base_url=url) is openai.OpenAI(api_key="k", base_url=url)
    finally:
        clientdedupe.uninstall()


@pytest.mark.usefixtures("installed")
def test_bypass_is_local_to_its_task(server: StubServer) -> None:
    import openai

    url = server.openai_base_url

    async def bypassing() -> Any:
        with clientdedupe.bypass():
            await asyncio.sleep(0)  # let the other task run while this one bypasses
            return openai.AsyncOpenAI(api_key="k", base_url=url)

    async def sharing() -> tuple[Any, Any]:
        return openai.AsyncOpenAI(api_key="k", base_url=url), openai.AsyncOpenAI(
            api_key="k", base_url=url
        )

    async def main() -> tuple[Any, tuple[Any, Any]]:
        return await asyncio.gather(bypassing(), sharing())  # type: ignore[return-value]

    fresh, (a, b) = asyncio.run(main())
    assert a is b
    assert fresh is not a


@pytest.mark.usefixtures("installed")
def test_trio_runs_get_pools_of_their_own_never_an_asyncio_one(server: StubServer) -> None:
    import openai
    import trio

    shared = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
    answers = [
        asyncio.run(Case.aask(shared, "asyncio")),
        trio.run(Case.aask, shared, "trio"),
        asyncio.run(Case.aask(shared, "asyncio again")),
        trio.run(Case.aask, shared, "trio again"),
    ]
    assert answers == ["echo: asyncio", "echo: trio", "echo: asyncio again", "echo: trio again"]
    assert server.settled_open_connections() == 0


@pytest.mark.usefixtures("installed")
def test_an_async_client_given_an_object_by_identity_is_shared_within_its_loop_only(
    server: StubServer,
) -> None:
    """Such an object (a token provider, credentials) may hold state tied to one loop:
    anthropic's token cache waits on an event of the loop that made it."""
    import openai

    timeout = (
        openai.DefaultAsyncHttpxClient().timeout
    )  # an httpx Timeout object  # compared by identity, as any such object

    async def twice() -> Any:
        client = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, timeout=timeout)
        assert (
            openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, timeout=timeout)
            is client
        )
        await Case.aask(client)
        return client

    assert asyncio.run(twice()) is not asyncio.run(twice())
    outside = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, timeout=timeout)
    assert (
        openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, timeout=timeout)
        is not outside
    )


@pytest.mark.usefixtures("installed")
def test_trio_runs_close_the_pools_of_clients_dropped_without_close(server: StubServer) -> None:
    import gc

    import openai
    import trio

    clientdedupe.uninstall()
    clientdedupe.install(max_clients=1)

    async def main() -> int:
        for i in range(6):  # a client per request, never closed, left to the collector
            await Case.aask(
                openai.AsyncOpenAI(api_key=f"tenant-{i}", base_url=server.openai_base_url)
            )
        gc.collect()
        for _ in range(20):  # let the closes scheduled in this run go
            await trio.sleep(0)
        # Inside the run: the one client the cache holds keeps its connection.
        return await trio.to_thread.run_sync(server.settled_open_connections, 1)

    assert trio.run(main) == 1
    assert server.settled_open_connections() == 0
