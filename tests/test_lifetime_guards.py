"""SPEC §6, what a holder sees: ``close()`` of one holder keeps the client (and its
connection) for the others and says so; ``uninstall()`` leaves a holder's own
attributes alone; a copy on its own ``http_client`` closes it; a holder's change
retires a shared client, and says which attribute, even when made from a callback
the SDK calls."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import Case

pytestmark = pytest.mark.usefixtures("installed")

KEPT_OPEN = "close() on a shared OpenAI: kept open for its other users"


def test_close_of_one_holder_of_a_sync_client_returns_none_and_says_kept_open(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    url = server.openai_base_url
    mine = openai.OpenAI(api_key="k", base_url=url)
    theirs = openai.OpenAI(api_key="k", base_url=url)
    assert mine is theirs
    caplog.set_level("DEBUG", logger="clientdedupe")
    assert cast(Any, mine).close() is None  # as the SDK's close(): nothing to await
    assert [m for m in caplog.messages if m.startswith("close() on a shared")] == [KEPT_OPEN]
    assert not theirs.is_closed()
    assert Case.ask(theirs, "still") == "echo: still"


def test_the_last_holder_closing_a_kept_sync_client_returns_none(server: StubServer) -> None:
    import openai

    client: Any
    with openai.OpenAI(api_key="k", base_url=server.openai_base_url) as client:
        Case.ask(client)
    assert client.close() is None  # kept idle for the next construction: still None
    assert not client.is_closed()


def test_an_async_holders_close_keeps_the_connection_of_the_other_holders(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url

    async def main() -> list[str]:
        mine = openai.AsyncOpenAI(api_key="k", base_url=url)
        theirs = openai.AsyncOpenAI(api_key="k", base_url=url)
        assert mine is theirs
        answers = [await Case.aask(theirs, "before")]
        await mine.close()
        answers.append(await Case.aask(theirs, "after"))
        return answers

    assert asyncio.run(main()) == ["echo: before", "echo: after"]
    assert server.connections == 1  # the other holder's connection was kept and reused


def test_uninstall_leaves_a_close_a_holder_set_on_its_client(server: StubServer) -> None:
    import openai

    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    calls: list[str] = []

    def my_close() -> None:
        calls.append("mine")

    client.close = my_close  # type: ignore[method-assign]
    clientdedupe.uninstall()
    assert client.close is my_close
    client.close()
    assert calls == ["mine"]


def test_uninstall_leaves_a_with_options_a_holder_set_on_its_client(server: StubServer) -> None:
    import openai

    client: Any = openai.OpenAI(api_key="k", base_url=server.openai_base_url)

    def my_with_options(**options: Any) -> str:
        return "mine"

    client.with_options = my_with_options
    clientdedupe.uninstall()
    assert client.with_options is my_with_options
    assert client.with_options(timeout=5) == "mine"
    derived = client.copy(timeout=5)  # the SDK's copy, still sharing the pool safely
    derived.close()
    assert not client.is_closed()


def test_closing_a_copy_on_its_own_http_client_closes_that_http_client(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    own = openai.DefaultHttpxClient()
    derived = shared.with_options(http_client=own)
    assert Case.ask(derived, "own") == "echo: own"
    derived.close()  # as without clientdedupe: its own pool is closed
    assert own.is_closed
    assert not shared.is_closed()
    assert Case.ask(shared, "shared") == "echo: shared"


def test_a_holders_change_says_which_attribute_retired_the_client(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    [fingerprint] = clientdedupe.stats()["openai.OpenAI"]["clients"]
    caplog.set_level("INFO", logger="clientdedupe")
    client.max_retries = 7
    assert [m for m in caplog.messages if m.endswith("retired from sharing")] == [
        f"a holder changed 'max_retries' on a shared openai.OpenAI [{fingerprint}]:"
        " retired from sharing"
    ]


def test_a_holders_change_made_in_a_callback_the_sdk_calls_retires_the_client(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    clients: list[openai.OpenAI] = []

    def provider() -> str:
        if clients:  # the holder's own code, run by the SDK before a request
            clients[0].max_retries = 0
        return "sk-from-provider"

    shared = openai.OpenAI(api_key=provider, base_url=url)
    clients.append(shared)
    assert Case.ask(shared) == "echo: hi"
    assert shared.max_retries == 0
    fresh = openai.OpenAI(api_key=provider, base_url=url)
    assert fresh is not shared
    assert clientdedupe.stats()["openai.OpenAI"]["retired"] == 1
