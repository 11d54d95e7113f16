"""SPEC §5: async clients are shared within one running event loop (by default)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import clientdedupe
from clientdedupe._stub_server import StubServer

from .cases import ASYNC_CASES, Case


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_successive_asyncio_runs_each_get_their_own_working_client(
    case: Case, server: StubServer
) -> None:
    clients: list[Any] = []

    async def agent(text: str) -> str:
        first, second = case.build(server), case.build(server)
        assert first is second
        clients.append(first)
        return await case.aask(first, text)

    assert asyncio.run(agent("one")) == "echo: one"
    assert asyncio.run(agent("two")) == "echo: two"
    assert clients[0] is not clients[1]


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_entries_of_a_closed_loop_are_dropped(case: Case, server: StubServer) -> None:
    async def agent() -> int:
        case.build(server)
        return int(clientdedupe.stats()[case.qualname]["live"])

    assert asyncio.run(agent()) == 1
    assert clientdedupe.stats()[case.qualname]["live"] == 0


@pytest.mark.usefixtures("installed")
def test_an_async_client_built_outside_a_loop_is_constructed_normally(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    first, second = (
        openai.AsyncOpenAI(api_key="k", base_url=url),
        openai.AsyncOpenAI(api_key="k", base_url=url),
    )
    assert first is not second
    reasons = clientdedupe.stats()["openai.AsyncOpenAI"]["bypass_reasons"]
    assert reasons == {"async, no running event loop": 2}
    asyncio.run(first.close())
    assert first.is_closed()


@pytest.mark.usefixtures("installed")
def test_loops_in_two_threads_never_share(server: StubServer) -> None:
    import openai

    built: list[Any] = []
    ready = threading.Barrier(2)

    def in_its_own_loop() -> None:
        async def main() -> None:
            built.append(openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url))
            ready.wait()  # both loops are running at once

        asyncio.run(main())

    threads = [threading.Thread(target=in_its_own_loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 2 and built[0] is not built[1]


def test_global_mode_shares_outside_a_loop(server: StubServer) -> None:
    import openai

    clientdedupe.install(async_mode="global")
    try:
        url = server.openai_base_url
        client = openai.AsyncOpenAI(api_key="k", base_url=url)
        assert openai.AsyncOpenAI(api_key="k", base_url=url) is client
        assert asyncio.run(Case.aask(client, "global")) == "echo: global"
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
