"""SPEC §6: after ``uninstall()`` the clients handed out before it, and the copies made
from them afterwards, keep counting who uses the shared pool; and a holder's change made
from C code still retires a shared client."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import weakref

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import Case
from .processes import in_forked_child


@pytest.mark.usefixtures("installed")
def test_copies_and_copies_of_copies_made_after_uninstall_keep_the_pool_for_each_other(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    mine, theirs = (openai.OpenAI(api_key="k", base_url=url) for _ in range(2))
    assert mine is theirs
    clientdedupe.uninstall()
    derived = mine.with_options(timeout=5)
    grandchild = derived.copy(max_retries=1)
    assert derived is not mine and grandchild is not derived
    assert grandchild._client is mine._client  # one pool, as without clientdedupe
    mine.close()
    theirs.close()  # no holder left, but two copies still use the pool
    assert Case.ask(derived, "copy") == "echo: copy"
    derived.close()  # the grandchild still uses the pool
    assert Case.ask(grandchild, "grandchild") == "echo: grandchild"
    grandchild.close()  # the last user: closed for good
    assert mine.is_closed()
    assert server.settled_open_connections() == 0


@pytest.mark.usefixtures("installed")
def test_a_copy_of_a_closed_copy_made_after_uninstall_never_closes_the_pool_of_holders(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    mine, theirs = (openai.OpenAI(api_key="k", base_url=url) for _ in range(2))
    clientdedupe.uninstall()
    closed_copy = mine.with_options(timeout=5)
    closed_copy.close()
    closed_copy.with_options(timeout=6).close()  # the pool's still held: kept open
    assert not theirs.is_closed()
    assert Case.ask(theirs, "still mine") == "echo: still mine"


@pytest.mark.usefixtures("installed")
def test_a_copy_on_its_own_http_client_after_uninstall_closes_its_own_pool(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    clientdedupe.uninstall()
    own = openai.DefaultHttpxClient()
    derived = shared.with_options(http_client=own)
    assert Case.ask(derived, "own") == "echo: own"
    derived.close()  # as without clientdedupe: its own pool is closed
    assert own.is_closed
    shared.close()  # the only holder, and no copy uses its pool
    assert shared.is_closed()


def test_an_async_copy_made_after_uninstall_can_be_closed_with_await(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url

    async def main() -> str:
        clientdedupe.install()
        mine = openai.AsyncOpenAI(api_key="k", base_url=url)
        theirs = openai.AsyncOpenAI(api_key="k", base_url=url)
        clientdedupe.uninstall()
        async with mine.with_options(timeout=5) as derived:
            assert await Case.aask(derived, "copy") == "echo: copy"
        await mine.with_options(max_retries=1).close()
        await mine.close()
        return await Case.aask(theirs, "still open")

    try:
        assert asyncio.run(main()) == "echo: still open"
    finally:
        clientdedupe.uninstall()


def test_an_exit_stack_awaits_the_close_of_a_client_already_gone(server: StubServer) -> None:
    import openai

    url = server.openai_base_url

    async def main() -> bool:
        clientdedupe.install()
        client = openai.AsyncOpenAI(api_key="k", base_url=url)
        clientdedupe.uninstall()
        gone = weakref.ref(client)
        async with contextlib.AsyncExitStack() as stack:
            # The stack keeps close() only: after uninstall() it holds no reference to
            # the client, which may be collected before the stack unwinds.
            stack.push_async_callback(client.close)
            del client
            gc.collect()
            collected = gone() is None
        return collected

    try:
        assert asyncio.run(main())
    finally:
        clientdedupe.uninstall()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
@pytest.mark.usefixtures("installed")
def test_after_fork_a_copy_of_a_client_handed_out_before_uninstall_behaves_as_plain(
    server: StubServer,
) -> None:
    import openai

    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    clientdedupe.uninstall()

    def child() -> str:
        try:
            derived = client.with_options(timeout=5)
            shares = derived is not client and derived._client is client._client
            derived.close()  # the parent's client is forgotten here: plain close
            return f"{shares} {client.is_closed()}"
        except BaseException as error:
            return f"{type(error).__name__}: {error}"

    assert in_forked_child(child) == "True True"
    assert not client.is_closed()  # the child's close is the child's
    assert Case.ask(client, "parent") == "echo: parent"


# -- a holder's change made from C code, with no Python frame above it --------------------


@pytest.mark.usefixtures("installed")
def test_a_resource_patched_from_c_code_retires_the_shared_client(server: StubServer) -> None:
    import _thread
    import collections
    import functools
    import operator
    import threading

    import openai

    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    resource = shared.chat.completions
    done = threading.Event()

    def patched(**_: object) -> str:
        return "patched"

    # As instructor.patch does, but from a thread running C code only (a C callback):
    # no Python frame above the assignment says who made it, so it is a holder's.
    calls = map(
        operator.methodcaller("__call__"),
        [functools.partial(setattr, resource, "create", patched), done.set],
    )
    _thread.start_new_thread(collections.deque(maxlen=0).extend, (calls,))
    assert done.wait(30)
    assert vars(shared.chat.completions)["create"] is patched
    fresh = openai.OpenAI(api_key="k", base_url=url)
    assert fresh is not shared
    assert Case.ask(fresh, "unpatched") == "echo: unpatched"
    assert clientdedupe.stats()["openai.OpenAI"]["retired"] == 1
