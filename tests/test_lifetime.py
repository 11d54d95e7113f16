"""SPEC §5-§6: close, copies, mutation, failures, eviction."""

from __future__ import annotations

import asyncio
import copy
import gc
import weakref
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import ASYNC_CASES, SYNC_CASES, Case

pytestmark = pytest.mark.usefixtures("installed")


def ask(client: Any, text: str = "hi") -> str:
    return Case.ask(client, text)


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_close_on_shared_client_keeps_it_usable_for_other_holders(
    case: Case, server: StubServer
) -> None:
    mine, theirs = case.build(server), case.build(server)
    mine.close()
    with case.build(server):
        pass
    assert not theirs.is_closed()
    assert ask(theirs, "still here") == "echo: still here"


@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_async_with_on_shared_client_keeps_it_usable_for_other_holders(
    case: Case, server: StubServer
) -> None:
    async def main() -> str:
        theirs = case.build(server)
        async with case.build(server) as mine:
            assert mine is theirs
        await case.build(server).close()
        assert not theirs.is_closed()
        return await case.aask(theirs, "still here")

    assert asyncio.run(main()) == "echo: still here"


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_closing_a_with_options_copy_keeps_the_shared_pool_open(
    case: Case, server: StubServer
) -> None:
    shared = case.build(server)
    with shared.with_options(timeout=5) as derived:
        assert ask(derived) == "echo: hi"
    assert not shared.is_closed()
    assert ask(case.build(server), "after") == "echo: after"
    assert server.connections == 1


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_a_client_that_is_not_shared_really_closes(case: Case, server: StubServer) -> None:
    with clientdedupe.bypass():
        own = case.build(server)
    own.close()
    assert own.is_closed()

    class Sub(case.cls):  # type: ignore[name-defined,misc]
        pass

    sub = Sub(**case.kwargs(server))
    sub.close()
    assert sub.is_closed()


def test_a_with_options_copy_of_an_unshared_client_closes_as_usual(server: StubServer) -> None:
    import openai

    with clientdedupe.bypass():
        own = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    derived = own.with_options(timeout=5)
    derived.close()
    assert own.is_closed()  # the SDK's own behaviour: the pool is shared


def test_a_with_options_copy_on_a_pool_a_holder_put_in_closes_that_pool_as_usual(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    changed = openai.OpenAI(api_key="k", base_url=url)
    assert openai.OpenAI(api_key="k", base_url=url) is changed  # two holders
    with clientdedupe.bypass():
        mine = openai.DefaultHttpxClient()
    changed._client = mine  # a holder's own pool: the client is retired from sharing
    derived = changed.with_options(timeout=5)
    assert derived._client is mine
    derived.close()
    assert mine.is_closed  # the SDK's own behaviour: the copy closes the pool it uses


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_copies_are_new_clients_every_call(case: Case, server: StubServer) -> None:
    shared = case.build(server)
    options = [
        shared.with_options(timeout=5),
        shared.with_options(timeout=5),
        shared.copy(timeout=5),
    ]
    copies = [copy.copy(shared), copy.copy(shared)]
    objects = [shared, *options, *copies]
    assert len({id(o) for o in objects}) == len(objects)
    assert all(type(o) is case.cls for o in objects)
    # The SDKs' copies share the parent's connection pool, as without clientdedupe.
    assert all(o._client is shared._client for o in options)
    assert case.build(server) is shared
    assert ask(options[0]) == "echo: hi"


def test_copy_copy_is_not_a_construction(server: StubServer) -> None:
    import openai

    shared = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    before = clientdedupe.stats()["openai.OpenAI"]["constructions"]
    duplicate = copy.copy(shared)
    assert duplicate is not shared
    assert duplicate.api_key == "k"
    assert clientdedupe.stats()["openai.OpenAI"]["constructions"] == before


def test_a_callers_dict_changed_later_does_not_change_the_shared_client(server: StubServer) -> None:
    import openai

    headers = {"X-Team": "a"}
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, default_headers=headers)
    headers["X-Team"] = "changed"
    headers["X-Extra"] = "1"
    assert (
        openai.OpenAI(api_key="k", base_url=server.openai_base_url, default_headers={"X-Team": "a"})
        is client
    )
    ask(client)
    sent = server.requests[-1].headers
    assert sent["x-team"] == "a"
    assert "x-extra" not in sent


FAILURES = {
    "no api key": lambda case, server: {
        k: v for k, v in case.kwargs(server).items() if k != "api_key"
    },
    "bad http_client": lambda case, server: case.kwargs(server, http_client=object()),
}


@pytest.mark.parametrize(
    ("case", "failure"),
    [
        (case, failure)
        for case in SYNC_CASES + ASYNC_CASES
        for failure in FAILURES
        # anthropic checks credentials per request, not at construction.
        if not (failure == "no api key" and case.module == "anthropic")
    ],
    ids=str,
)
def test_a_failing_construction_raises_the_sdks_error_and_caches_nothing(
    case: Case, server: StubServer, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    kwargs = FAILURES[failure](case, server)
    with clientdedupe.bypass(), pytest.raises(Exception) as unpatched:
        case.cls(**kwargs)

    async def construct() -> Any:
        return case.cls(**kwargs)

    def attempt() -> Any:
        return asyncio.run(construct()) if case.is_async else case.cls(**kwargs)

    for _ in range(2):
        with pytest.raises(type(unpatched.value)) as raised:
            attempt()
        assert str(raised.value) == str(unpatched.value)
    counts = clientdedupe.stats()[case.qualname]
    assert (counts["failed"], counts["live"], counts["built"]) == (2, 0, 0)
    if failure == "no api key":
        monkeypatch.setenv(case.api_key_env, "sk-now-set")
        assert attempt().api_key == "sk-now-set"


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_assigning_an_attribute_on_a_shared_client_retires_it(
    case: Case, server: StubServer
) -> None:
    changed = case.build(server)
    changed.api_key = "sk-changed-by-a-holder"
    fresh = case.build(server)
    assert fresh is not changed
    assert fresh.api_key == "sk-test-key"
    assert case.build(server) is fresh
    assert changed.api_key == "sk-changed-by-a-holder"  # it stays with its holders
    assert clientdedupe.stats()[case.qualname]["retired"] == 1


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_assigning_on_a_resource_of_a_shared_client_retires_it(
    case: Case, server: StubServer
) -> None:
    patched = case.build(server)
    original_create = case.resource(patched).create

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return original_create(*args, **kwargs)

    case.resource(patched).create = wrapper
    fresh = case.build(server)
    assert fresh is not patched
    assert case.resource(fresh).create != wrapper
    assert ask(fresh) == "echo: hi"
    assert ask(patched) == "echo: hi"
    assert clientdedupe.stats()[case.qualname]["retired"] == 1


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_the_sdks_own_use_of_a_shared_client_does_not_retire_it(
    case: Case, server: StubServer
) -> None:
    shared = case.build(server)
    for text in ("one", "two"):
        assert ask(shared, text) == f"echo: {text}"
    shared.with_options(max_retries=0)
    assert case.build(server) is shared
    assert clientdedupe.stats()[case.qualname]["retired"] == 0


def test_a_callable_api_key_refreshed_by_the_sdk_does_not_retire(server: StubServer) -> None:
    import openai

    def provider() -> str:
        return "sk-from-provider"

    shared = openai.OpenAI(api_key=provider, base_url=server.openai_base_url)
    ask(shared)
    assert server.requests[-1].headers["authorization"] == "Bearer sk-from-provider"
    assert openai.OpenAI(api_key=provider, base_url=server.openai_base_url) is shared


def test_max_clients_drops_the_least_recently_used(server: StubServer) -> None:
    import openai

    clientdedupe.uninstall()
    clientdedupe.install(max_clients=2)
    url = server.openai_base_url
    a = openai.OpenAI(api_key="a", base_url=url)
    b = openai.OpenAI(api_key="b", base_url=url)
    assert openai.OpenAI(api_key="a", base_url=url) is a  # a is now the most recently used
    c = openai.OpenAI(api_key="c", base_url=url)  # drops b
    assert openai.OpenAI(api_key="a", base_url=url) is a
    assert openai.OpenAI(api_key="c", base_url=url) is c
    assert openai.OpenAI(api_key="b", base_url=url) is not b
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["evicted"], counts["live"]) == (2, 2)


def test_an_evicted_client_still_never_closes_under_its_other_holders(server: StubServer) -> None:
    import openai

    clientdedupe.uninstall()
    clientdedupe.install(max_clients=1)
    url = server.openai_base_url
    mine, theirs = (
        openai.OpenAI(api_key="a", base_url=url),
        openai.OpenAI(api_key="a", base_url=url),
    )
    openai.OpenAI(api_key="b", base_url=url)  # evicts the first
    mine.close()
    assert ask(theirs, "ok") == "echo: ok"


def test_an_idle_client_evicted_is_closed_and_says_so(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    clientdedupe.uninstall()
    clientdedupe.install(max_clients=1)
    url = server.openai_base_url
    with openai.OpenAI(api_key="a", base_url=url) as idle:  # a client per request
        ask(idle)
    assert not idle.is_closed()  # kept for the next request
    [fingerprint] = clientdedupe.stats()["openai.OpenAI"]["clients"]
    caplog.set_level("DEBUG", logger="clientdedupe")
    openai.OpenAI(api_key="b", base_url=url)  # evicts it: nobody holds it
    assert idle.is_closed()
    assert server.settled_open_connections() == 0
    assert [m for m in caplog.messages if m.startswith("closed an idle")] == [
        f"closed an idle openai.OpenAI [{fingerprint}]"
    ]


def test_an_idle_async_client_evicted_has_its_pools_closed_and_says_so(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    clientdedupe.uninstall()
    clientdedupe.install(max_clients=1)
    url = server.openai_base_url

    async def request() -> openai.AsyncOpenAI:
        async with openai.AsyncOpenAI(api_key="a", base_url=url) as client:
            await Case.aask(client)
        return client

    idle = asyncio.run(request())
    [fingerprint] = clientdedupe.stats()["openai.AsyncOpenAI"]["clients"]
    caplog.set_level("DEBUG", logger="clientdedupe")
    openai.AsyncOpenAI(api_key="b", base_url=url)  # evicts it: nobody holds it
    assert idle.is_closed()
    assert server.settled_open_connections() == 0
    assert [m for m in caplog.messages if m.startswith("closed an idle")] == [
        f"closed an idle openai.AsyncOpenAI [{fingerprint}]"
    ]


def test_cache_clear_forgets_shared_clients_and_holders_keep_theirs(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    held = openai.OpenAI(api_key="k", base_url=url)
    clientdedupe.cache_clear()
    fresh = openai.OpenAI(api_key="k", base_url=url)
    assert fresh is not held
    assert ask(held, "old") == "echo: old"
    assert not held.is_closed()
    held.close()  # its last holder: closed, as without clientdedupe
    assert held.is_closed()
    assert not fresh.is_closed()


def test_a_dropped_shared_client_is_closed_by_the_sdks_finaliser(server: StubServer) -> None:
    import openai

    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    ask(client)
    pool = weakref.ref(client._client)
    clientdedupe.cache_clear()
    del client
    gc.collect()
    # Collected, so its own __del__ (SyncHttpxClientWrapper) has closed it.
    assert pool() is None


def test_closing_a_copy_copy_of_a_shared_client_keeps_the_pool_for_its_holders(
    server: StubServer,
) -> None:
    import openai

    shared = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    duplicate = copy.copy(shared)  # shares the pool, as without clientdedupe
    duplicate.close()
    assert not shared.is_closed()
    assert ask(shared, "still open") == "echo: still open"
    clientdedupe.cache_clear()
    shared.close()  # the last holder
    assert shared.is_closed()


def test_an_attribute_set_from_c_code_on_a_shared_client_retires_it(server: StubServer) -> None:
    import _thread
    import collections
    import functools
    import operator
    import threading

    import openai

    shared = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    done = threading.Event()
    # setattr with no Python frame above it, as from a C callback: the thread runs C code.
    calls = map(
        operator.methodcaller("__call__"),
        [functools.partial(setattr, shared, "max_retries", 7), done.set],
    )
    _thread.start_new_thread(collections.deque(maxlen=0).extend, (calls,))
    assert done.wait(30)
    assert shared.max_retries == 7
    assert openai.OpenAI(api_key="k", base_url=server.openai_base_url) is not shared
