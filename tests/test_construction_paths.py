"""The less travelled paths of a construction (SPEC §5, §6, §7, §9): a client whose pool
cannot be made one per event loop, a client the cache cannot keep, a key that cannot be
built, ``uninstall()`` while a client is being built, an event loop closed without
finalising its clients, a failing construction through another library's wrapper."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import Case
from .throwaway import throwaway_sdk

# A throwaway SDK shaped like the generated ones (keyword-only constructors, a close()),
# with what no built-in SDK release does today: an async client that builds a
# connection pool of a class its ``_base_client`` does not declare, a client class with
# ``__slots__``, and a close() that fails.
GIZMO = {
    "__init__.py": "from ._client import AsyncGizmo, SlottedGizmo, StubbornGizmo, initialised\n",
    "_base_client.py": """
        import httpx

        class AsyncHttpxClientWrapper(httpx.AsyncClient):
            pass
    """,
    "_client.py": """
        import os

        import httpx

        from ._base_client import AsyncHttpxClientWrapper

        #: Every instance an SDK __init__ ran on, in order.
        initialised = []

        class AsyncGizmo:
            def __init__(self, *, api_key=None, base_url="http://127.0.0.1:9/v1", transport="httpx"):
                initialised.append(self)
                self.api_key = api_key or os.environ["GIZMO_API_KEY"]
                if transport == "httpx":
                    self._client = AsyncHttpxClientWrapper(base_url=base_url)
                else:  # a transport this release builds its own way
                    self._client = httpx.AsyncClient(base_url=base_url)

            async def ask(self, text):
                response = await self._client.post(
                    "/chat/completions",
                    json={"model": "stub-model", "messages": [{"role": "user", "content": text}]},
                    headers={"Authorization": f"Bearer {self.api_key}"},
                )
                return response.json()["choices"][0]["message"]["content"]

            async def close(self):
                await self._client.aclose()

        class SlottedGizmo:
            __slots__ = ("api_key", "closed")

            def __init__(self, *, api_key=None):
                initialised.append(self)
                self.api_key = api_key or os.environ["GIZMO_API_KEY"]
                self.closed = False

            def close(self):
                self.closed = True

        class StubbornGizmo:
            def __init__(self, *, api_key=None):
                initialised.append(self)
                self.api_key = api_key or os.environ["GIZMO_API_KEY"]

            def close(self):
                raise ConnectionError("gizmo: the session could not be ended")
    """,
}

UNSHAREABLE_POOL = "its connection pool cannot be made one per event loop"


@pytest.fixture
def gizmo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The throwaway SDK, importable; forgotten (and its registrations) after the test."""
    monkeypatch.setenv("GIZMO_API_KEY", "sk-gizmo")
    files = {f"gizmo/{name}": source for name, source in GIZMO.items()}
    with throwaway_sdk(tmp_path, monkeypatch, "gizmo", files) as module:
        yield module


class Layer:
    """Another library's layer around a class's ``__init__``, put there before
    ``install()``: it notes every instance it runs on, and holds the first construction
    inside it until ``release`` is set."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.sdk_init = vars(cls)["__init__"]
        self.seen: list[Any] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        sdk_init = self.sdk_init

        @functools.wraps(sdk_init)  # keeps the SDK's keyword-only signature visible
        def init(instance: Any, *args: Any, **kwargs: Any) -> None:
            self.seen.append(instance)
            if not self.release.is_set():
                self.entered.set()
                self.release.wait(30)
            sdk_init(instance, *args, **kwargs)

        cls.__init__ = init  # type: ignore[misc]

    def restore(self) -> None:
        self.cls.__init__ = self.sdk_init  # type: ignore[misc]


def construct_while_uninstalling(layer: Layer, construct: Callable[[], Any]) -> Any:
    """Run ``construct()`` in another thread; ``uninstall()`` while the SDK's ``__init__``
    is building the client for sharing; return what the construction returned."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(construct())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert layer.entered.wait(30)
        clientdedupe.uninstall()  # while the build is under way
    finally:
        layer.release.set()
        thread.join(30)
    assert not errors, errors
    (result,) = results
    return result


async def _let_pending_tasks_finish() -> None:
    """Wait for every other task of this loop (closings spawned by clientdedupe)."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*others)


# -- async clients whose pool cannot be made one per event loop ---------------------------


def test_an_async_client_whose_pool_cannot_be_made_per_loop_is_never_shared(
    gizmo: Any, server: StubServer
) -> None:
    clientdedupe.register("gizmo:AsyncGizmo")
    clientdedupe.install()
    url = server.openai_base_url

    async def main() -> tuple[list[Any], list[Any], list[str]]:
        usual = [gizmo.AsyncGizmo(base_url=url) for _ in range(2)]
        own = [gizmo.AsyncGizmo(base_url=url, transport="own") for _ in range(2)]
        answers = [await client.ask(f"mine {n}") for n, client in enumerate(own)]
        for client in (*usual, *own):
            await client.close()
        return usual, own, answers

    usual, own, answers = asyncio.run(main())
    assert usual[0] is usual[1]  # the class is deduplicated...
    assert own[0] is not own[1]  # ...but not a client on a pool of unknown class
    assert gizmo.initialised == [usual[0], own[0], own[1]]  # each initialised once
    assert answers == ["echo: mine 0", "echo: mine 1"]
    assert all(client._client.is_closed for client in own)  # closed by their close()
    counts = clientdedupe.stats()["gizmo.AsyncGizmo"]
    assert counts["bypass_reasons"] == {UNSHAREABLE_POOL: 2}
    assert (counts["built"], counts["reused"], counts["constructions"]) == (1, 1, 4)


def test_in_loop_mode_an_async_client_on_any_pool_is_shared_within_its_loop(
    gizmo: Any, server: StubServer
) -> None:
    clientdedupe.register("gizmo:AsyncGizmo")
    clientdedupe.install(async_mode="loop")
    url = server.openai_base_url

    async def main() -> tuple[Any, Any, str]:
        first = gizmo.AsyncGizmo(base_url=url, transport="own")
        second = gizmo.AsyncGizmo(base_url=url, transport="own")
        answer = await second.ask("shared")
        await first.close()
        await second.close()
        return first, second, answer

    first, second, answer = asyncio.run(main())
    later, _, _ = asyncio.run(main())
    assert first is second and answer == "echo: shared"
    assert later is not first  # another loop, another client
    assert first._client.is_closed  # closed inside its loop as the loop ended
    counts = clientdedupe.stats()["gizmo.AsyncGizmo"]
    assert (counts["built"], counts["reused"], counts["bypassed"]) == (2, 2, 0)


# -- a client the cache cannot keep --------------------------------------------------------


def test_a_client_the_cache_cannot_track_is_returned_unshared_with_a_warning(
    gizmo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clientdedupe.register("gizmo:SlottedGizmo")
    with caplog.at_level(logging.WARNING, logger="clientdedupe"):
        clientdedupe.install()
        first = gizmo.SlottedGizmo()
        second = gizmo.SlottedGizmo()
    assert first is not second
    assert gizmo.initialised == [first, second]  # each initialised exactly once
    assert [r.getMessage() for r in caplog.records] == ["could not share a gizmo.SlottedGizmo"] * 2
    assert all(r.exc_info is not None for r in caplog.records)
    first.close()
    assert first.closed and not second.closed  # its close() is its own


# -- a key that cannot be built ------------------------------------------------------------


@pytest.mark.usefixtures("installed")
def test_a_construction_whose_key_cannot_be_built_is_built_normally_and_counted(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    # A replaced environment the SDK reads fine, but with a name no key can read.
    environment = {"NO_PROXY": "127.0.0.1,localhost", b"LEGACY_BYTES_NAME": "1"}
    monkeypatch.setattr(os, "environ", environment)
    first = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    second = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    assert first is not second
    assert Case.ask(first, "one") == "echo: one"
    assert Case.ask(second, "two") == "echo: two"
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert counts["bypass_reasons"] == {"the key could not be built": 2}
    assert counts["built"] == 0


# -- uninstall() while a client is being built ---------------------------------------------


def test_an_async_client_built_while_uninstalling_is_closed_and_a_working_one_returned(
    server: StubServer,
) -> None:
    import openai

    layer = Layer(openai.AsyncOpenAI)
    clientdedupe.install()
    try:
        client = construct_while_uninstalling(
            layer, lambda: openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
        )
    finally:
        clientdedupe.uninstall()
        layer.restore()
    discarded, returned = layer.seen  # built for sharing, then by the class itself
    assert returned is client and discarded is not client
    assert discarded.is_closed()  # never handed out: closed, not left open
    assert not client.is_closed()

    async def use() -> str:
        try:
            return await Case.aask(client, "after")
        finally:
            await client.close()

    assert asyncio.run(use()) == "echo: after"


def test_a_client_built_while_uninstalling_leaves_the_callers_http_client_open(
    server: StubServer,
) -> None:
    import openai

    layer = Layer(openai.OpenAI)
    clientdedupe.install()
    http_client = openai.DefaultHttpxClient()
    try:
        client = construct_while_uninstalling(
            layer,
            lambda: openai.OpenAI(
                api_key="k", base_url=server.openai_base_url, http_client=http_client
            ),
        )
    finally:
        clientdedupe.uninstall()
        layer.restore()
    assert not http_client.is_closed  # the caller's: never closed by us
    with client:
        assert Case.ask(client, "after") == "echo: after"
    assert http_client.is_closed  # by its own client's close, as without clientdedupe


def test_a_client_built_while_uninstalling_in_a_loop_has_its_pool_closed_in_that_loop(
    gizmo: Any, server: StubServer
) -> None:
    layer = Layer(gizmo.AsyncGizmo)
    clientdedupe.register("gizmo:AsyncGizmo")
    clientdedupe.install()
    url = server.openai_base_url

    async def main() -> tuple[Any, bool, str]:
        client = gizmo.AsyncGizmo(base_url=url, transport="own")
        await _let_pending_tasks_finish()
        discarded = layer.seen[0]
        try:
            return client, discarded._client.is_closed, await client.ask("after")
        finally:
            await client.close()

    try:
        client, discarded_closed, answer = construct_while_uninstalling(
            layer, lambda: asyncio.run(main())
        )
    finally:
        layer.restore()
    discarded, returned = layer.seen
    assert returned is client and discarded is not client
    assert discarded_closed  # closed inside its loop, at once
    assert answer == "echo: after"


def test_a_discarded_client_whose_close_fails_never_fails_the_construction(
    gizmo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    layer = Layer(gizmo.StubbornGizmo)
    clientdedupe.register("gizmo:StubbornGizmo")
    clientdedupe.install()
    try:
        with caplog.at_level(logging.DEBUG, logger="clientdedupe"):
            client = construct_while_uninstalling(layer, lambda: gizmo.StubbornGizmo())
    finally:
        layer.restore()
    discarded, returned = layer.seen
    assert returned is client and discarded is not client
    assert client.api_key == "sk-gizmo"
    failures = [
        r for r in caplog.records if r.getMessage() == "closing a discarded StubbornGizmo failed"
    ]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is ConnectionError


# -- an event loop closed without finalising its clients -----------------------------------


def test_a_client_of_a_loop_closed_without_finalising_is_dropped_and_closed(
    server: StubServer,
) -> None:
    import openai

    clientdedupe.install(async_mode="loop")
    loop = asyncio.new_event_loop()
    try:

        async def use() -> Any:
            client = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url)
            assert openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url) is client
            await client.close()
            await client.close()  # its last holder lets go: idle, kept for this loop
            return client

        client = loop.run_until_complete(use())
        assert clientdedupe.stats()["openai.AsyncOpenAI"]["live"] == 1
    finally:
        loop.close()  # without loop.shutdown_asyncgens(): nothing finalised the loop
    counts = clientdedupe.stats()["openai.AsyncOpenAI"]
    assert (counts["live"], counts["closed"]) == (0, 1)
    assert client.is_closed()
    clientdedupe.uninstall()


# -- a failing construction through another library's wrapper ------------------------------


def _our_frames_locals(error: BaseException) -> list[str]:
    """The locals of every clientdedupe frame the traceback holds, as an error tracker
    capturing locals would show them."""
    ours = os.path.dirname(clientdedupe.__file__)
    shown = []
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith(ours):
            shown.append(f"{frame.f_code.co_name}: {frame.f_locals!r}")
        tb = tb.tb_next
    return shown


def test_a_failing_construction_through_a_wrapt_wrapper_leaves_no_value_in_our_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import openai
    import wrapt

    monkeypatch.setenv("OPENAI_ORG_ID", "ORG-CANARY")
    seen: list[Any] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(instance)
        return wrapped(*args, **kwargs)

    sdk_init = vars(openai.OpenAI)["__init__"]
    wrapt.wrap_function_wrapper(openai.OpenAI, "__init__", wrapper)
    clientdedupe.install()
    try:
        # No API key anywhere: the SDK's own __init__ raises, through the wrapper.
        with pytest.raises(openai.OpenAIError) as caught:
            openai.OpenAI(base_url="http://127.0.0.1:9/v1", default_headers={"X": "ARG-CANARY"})
    finally:
        clientdedupe.uninstall()
        openai.OpenAI.__init__ = sdk_init  # type: ignore[method-assign]
    assert len(seen) == 1 and isinstance(seen[0], openai.OpenAI)  # the right instance
    shown = _our_frames_locals(caught.value)
    assert [line.split(":")[0] for line in shown][-2:] == ["build", "bound"]
    assert not [line for line in shown if "CANARY" in line]
