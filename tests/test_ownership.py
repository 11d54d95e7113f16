"""SPEC §6: who holds, who closes — and never worse than plain, measured side by side."""

from __future__ import annotations

import gc
import weakref

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import SYNC_CASES, Case
from .side_by_side import both, run, server_process

ASK = 'messages=[{"role": "user", "content": "hi"}], model="m"'


# -- holders, idle clients, copies (in process) ------------------------------------------


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_the_last_holders_close_leaves_an_idle_client_that_the_cache_closes_when_dropped(
    case: Case, server: StubServer
) -> None:
    first, second = case.build(server), case.build(server)
    first.close()
    assert not second.is_closed()  # another holder
    second.close()
    assert not first.is_closed()  # idle: kept for the next construction of its key
    counts = clientdedupe.stats()[case.qualname]
    assert (counts["holders"], counts["idle"]) == (0, 1)
    with case.build(server) as again:
        assert again is first
        assert Case.ask(again, "reused") == "echo: reused"
    clientdedupe.cache_clear()
    assert first.is_closed()  # dropped while idle: closed at once
    assert server.settled_open_connections() == 0
    assert clientdedupe.stats()[case.qualname]["closed"] == 1


@pytest.mark.usefixtures("installed")
def test_a_client_dropped_while_held_is_closed_by_its_last_holder(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    first, second = (openai.OpenAI(api_key="k", base_url=url) for _ in range(2))
    clientdedupe.cache_clear()
    assert not first.is_closed()
    first.close()
    assert not second.is_closed()
    second.close()
    assert second.is_closed()


def test_eviction_closes_an_idle_client_and_never_a_held_one(server: StubServer) -> None:
    import openai

    clientdedupe.install(max_clients=1)
    try:
        url = server.openai_base_url
        with openai.OpenAI(api_key="idle", base_url=url) as idle:
            Case.ask(idle)
        held = openai.OpenAI(api_key="held", base_url=url)  # evicts the idle one
        assert idle.is_closed()
        openai.OpenAI(api_key="third", base_url=url)  # evicts the held one
        assert not held.is_closed()
        assert Case.ask(held, "still mine") == "echo: still mine"
        assert clientdedupe.stats()["openai.OpenAI"]["evicted"] == 2
    finally:
        clientdedupe.uninstall()


@pytest.mark.usefixtures("installed")
def test_a_copy_counts_as_a_user_of_the_pool_it_shares(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    derived = shared.with_options(timeout=5)
    clientdedupe.cache_clear()
    shared.close()  # its only holder; the copy still uses the pool
    assert not derived.is_closed()
    assert Case.ask(derived, "copy") == "echo: copy"
    derived.close()  # the last user of the pool
    assert derived.is_closed() and shared.is_closed()


@pytest.mark.usefixtures("installed")
def test_a_client_keyed_on_a_callers_http_client_is_not_kept_alive_by_the_cache(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    client = openai.OpenAI(api_key="k", base_url=url, http_client=openai.DefaultHttpxClient())
    assert openai.OpenAI(api_key="k", base_url=url, http_client=client._client) is client
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None
    assert clientdedupe.stats()["openai.OpenAI"]["live"] == 0


@pytest.mark.usefixtures("installed")
def test_closing_a_client_keyed_on_a_callers_http_client_closes_it_as_plain_does(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    own = openai.DefaultHttpxClient()
    with openai.OpenAI(api_key="k", base_url=url, http_client=own) as client:
        Case.ask(client)
    assert own.is_closed  # the SDK closes the http_client it was given
    assert openai.OpenAI(api_key="k", base_url=url, http_client=own) is not client


# -- never worse than plain (real processes, `clientdedupe run` against plain) ----------------


@pytest.mark.slow
def test_a_client_per_tenant_request_under_a_low_file_limit_keeps_at_most_max_clients_open() -> (
    None
):
    with server_process() as server:
        tenants = run(
            f"""
            import os, resource, openai
            resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))
            peak = 0
            for i in range(1200):
                with openai.OpenAI(api_key=f"tenant-{{i}}", base_url=os.environ["URL"]) as c:
                    c.chat.completions.create({ASK})
                    # Counted here, where closes are immediate: the server only learns
                    # of a close a moment later, and a busy machine stretches that.
                    peak = max(peak, open_sockets())
            report(peak=peak)
            """,
            deduplicated=True,
            URL=server.openai_base_url,
        )
        assert tenants.returncode == 0, tenants.stderr[-3000:]
        assert server.counters()["requests"] == 1200
        assert tenants["peak"] <= 128 + 2
        assert tenants.stats("openai.OpenAI")["built"] == 1200
        server.reset()
        one_key = run(
            f"""
            import os, resource, openai
            resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))
            for i in range(1200):
                with openai.OpenAI(api_key="one-tenant", base_url=os.environ["URL"]) as c:
                    c.chat.completions.create({ASK})
            report()
            """,
            deduplicated=True,
            URL=server.openai_base_url,
        )
        assert one_key.returncode == 0, one_key.stderr[-3000:]
        assert server.counters()["connections"] == 1
        stats = one_key.stats("openai.OpenAI")
        assert (stats["built"], stats["reused"]) == (1, 1199)


def test_async_with_per_asyncio_run_prints_nothing_and_leaves_no_descriptor(
    server: StubServer,
) -> None:
    plain, deduplicated = both(
        f"""
        import asyncio, os, openai

        async def one():
            async with openai.AsyncOpenAI(api_key="k", base_url=os.environ["URL"]) as c:
                await c.chat.completions.create({ASK})

        for _ in range(100):
            asyncio.run(one())
        report(fds=open_fds(), sockets=open_sockets())
        """,
        python_args=("-W", "error::ResourceWarning"),
        URL=server.openai_base_url,
    )
    assert deduplicated.stderr == plain.stderr == ""
    assert deduplicated["fds"] == plain["fds"]
    assert deduplicated["sockets"] == plain["sockets"] == 0
    stats = deduplicated.stats("openai.AsyncOpenAI")
    assert (stats["built"], stats["reused"]) == (1, 99)


def test_build_use_and_close_per_asyncio_run_is_never_worse_than_plain(
    server: StubServer,
) -> None:
    program = f"""
        import asyncio, os, openai

        agents = []  # the holders keep their (closed) clients, as autogen and haystack do

        async def run_once():
            client = openai.AsyncOpenAI(api_key="k", base_url=os.environ["URL"])
            agents.append(client)
            await client.chat.completions.create({ASK})
            await client.close()

        for _ in range(30):
            asyncio.run(run_once())
        report(sockets=open_sockets())
        """
    plain = run(program, deduplicated=False, URL=server.openai_base_url)
    plain_peak = server.max_open_connections
    server.reset_counters()
    deduplicated = run(program, deduplicated=True, URL=server.openai_base_url)
    assert plain.returncode == deduplicated.returncode == 0, deduplicated.stderr
    assert server.max_open_connections <= plain_peak + 1
    assert deduplicated["sockets"] <= plain["sockets"] + 1
    assert deduplicated.stderr == plain.stderr


def test_an_async_client_built_at_import_used_after_its_close_fails_as_plain(
    server: StubServer,
) -> None:
    # Closed by its only holder, then dropped idle by the cache as other tenants come:
    # a call after close() must fail as on the SDK's closed client, and open nothing.
    program = f"""
        import asyncio, os, openai

        client = openai.AsyncOpenAI(
            api_key="tenant-0", base_url=os.environ["URL"], max_retries=0
        )

        async def use():
            await client.chat.completions.create({ASK})

        async def use_and_close():
            await use()
            await client.close()

        asyncio.run(use_and_close())
        others = [openai.AsyncOpenAI(api_key=f"tenant-{{n}}", base_url=os.environ["URL"])
                  for n in range(1, 3)]

        async def use_again():
            try:
                await use()
            except Exception as error:
                return f"{{type(error).__name__}}: {{error}}"
            return "succeeded"

        report(outcome=asyncio.run(use_again()), sockets=open_sockets())
        """
    environment = {"URL": server.openai_base_url, "CLIENTDEDUPE_MAX_CLIENTS": "1"}
    plain, deduplicated = both(program, **environment)
    assert plain["outcome"] != "succeeded"  # the baseline: the SDK refuses it
    assert deduplicated["outcome"] == plain["outcome"]
    assert deduplicated["sockets"] <= plain["sockets"]
    assert deduplicated.stderr == plain.stderr
    assert deduplicated.stats("openai.AsyncOpenAI")["evicted"] >= 1


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_fresh_http_client_per_request_is_never_kept_alive(
    flavour: str, server: StubServer
) -> None:
    if flavour == "async":
        program = f"""
            import asyncio, os, openai
            from openai import DefaultAsyncHttpxClient as HttpClient

            async def main():
                for _ in range(200):
                    client = openai.AsyncOpenAI(
                        api_key="k", base_url=os.environ["URL"], http_client=HttpClient()
                    )
                    await client.chat.completions.create({ASK})

            asyncio.run(main())
            report(live=live(openai.AsyncOpenAI), sockets=open_sockets())
            """
    else:
        program = f"""
            import os, openai
            from openai import DefaultHttpxClient as HttpClient

            for _ in range(200):
                client = openai.OpenAI(
                    api_key="k", base_url=os.environ["URL"], http_client=HttpClient()
                )
                client.chat.completions.create({ASK})
            report(live=live(openai.OpenAI), sockets=open_sockets())
            """
    plain = run(program, deduplicated=False, URL=server.openai_base_url)
    plain_peak = server.max_open_connections
    server.reset_counters()
    deduplicated = run(program, deduplicated=True, URL=server.openai_base_url)
    assert plain.returncode == deduplicated.returncode == 0, deduplicated.stderr
    assert deduplicated["live"] <= plain["live"] + 2
    assert deduplicated["sockets"] <= plain["sockets"] + 2
    assert server.max_open_connections <= 2 * plain_peak + 2


# -- what a red-team pass found ------------------------------------------------------------


@pytest.mark.usefixtures("installed")
def test_a_client_keyed_on_a_callable_is_left_idle_by_its_last_holder_not_closed(
    server: StubServer,
) -> None:
    """Two components build with the same token function; one closes twice: the other's
    client must keep working (it is theirs too, as it would be without clientdedupe)."""
    import openai

    def token() -> str:
        return "sk-from-a-provider"

    mine = openai.OpenAI(api_key=token, base_url=server.openai_base_url)
    theirs = openai.OpenAI(api_key=token, base_url=server.openai_base_url)
    assert mine is theirs
    with mine:
        pass
    mine.close()  # a second close by the same holder lets the other one go as well...
    assert not theirs.is_closed()  # ...but an idle client is kept, not closed
    assert Case.ask(theirs, "still mine") == "echo: still mine"


def test_async_with_in_loops_closed_by_hand_is_never_worse_than_plain(server: StubServer) -> None:
    plain, deduplicated = both(
        f"""
        import asyncio, gc, os, openai

        async def one():
            async with openai.AsyncOpenAI(api_key="k", base_url=os.environ["URL"]) as c:
                await c.chat.completions.create({ASK})

        for _ in range(5):  # old-style loops: nothing finalises their async generators
            loop = asyncio.new_event_loop()
            loop.run_until_complete(one())
            loop.close()
        del loop
        gc.collect()
        report(sockets=open_sockets())
        """,
        python_args=("-W", "default"),
        URL=server.openai_base_url,
    )
    assert deduplicated.stderr == plain.stderr
    assert deduplicated["sockets"] == plain["sockets"] == 0
    assert deduplicated.stats("openai.AsyncOpenAI")["reused"] == 4


def test_a_client_first_used_while_its_loop_shuts_down_is_closed_as_plain(
    server: StubServer,
) -> None:
    plain, deduplicated = both(
        f"""
        import asyncio, gc, os, openai

        async def tokens():
            try:
                yield 1
                yield 2
            finally:  # runs in shutdown_asyncgens: reports with a client of its own
                async with openai.AsyncOpenAI(api_key="k", base_url=os.environ["URL"]) as c:
                    await c.chat.completions.create({ASK})

        async def main():
            global abandoned
            abandoned = tokens()
            await abandoned.__anext__()

        for _ in range(3):
            asyncio.run(main())
        gc.collect()
        report(sockets=open_sockets())
        """,
        URL=server.openai_base_url,
    )
    assert deduplicated.stderr == plain.stderr
    assert deduplicated["sockets"] == plain["sockets"] == 0


def test_async_clients_left_to_the_garbage_collector_in_a_long_loop_release_their_pools(
    server: StubServer,
) -> None:
    """A service that builds an AsyncOpenAI per request and patches it (as
    instructor.patch does: the client is retired) and never closes it."""
    plain, deduplicated = both(
        f"""
        import asyncio, functools, gc, os, openai

        async def handle():
            client = openai.AsyncOpenAI(api_key="k", base_url=os.environ["URL"])
            create = client.chat.completions.create

            @functools.wraps(create)
            async def patched(*args, **kwargs):
                return await create(*args, **kwargs)

            client.chat.completions.create = patched
            await client.chat.completions.create({ASK})

        async def main():
            for _ in range(40):
                await handle()
            gc.collect()
            for _ in range(20):  # let the closes scheduled in this loop run
                await asyncio.sleep(0)
            return open_sockets()

        inside = asyncio.run(main())
        report(inside=inside)
        """,
        URL=server.openai_base_url,
    )
    assert deduplicated["inside"] <= plain["inside"] + 1
    assert deduplicated.stats("openai.AsyncOpenAI")["retired"] == 40
