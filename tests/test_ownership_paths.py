"""SPEC §6 and §9: who uses a shared pool, on the less travelled paths — copies of
copies, a close or a copy made from code that interrupts clientdedupe's own critical
section (a signal handler, a debugger, a profiler), a client closed twice over, and
registered classes whose objects take no weak reference."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import clientdedupe
from clientdedupe import _ownership
from clientdedupe._tools.stub_server import StubServer

from .cases import Case
from .throwaway import throwaway_sdk

KEPT_OPEN = "kept open for its other users"


# -- code running inside clientdedupe's critical section ----------------------------------


class Interruption:
    """What ran while a construction was inside clientdedupe's critical section."""

    def __init__(self) -> None:
        self.runs = 0
        self.errors: list[BaseException] = []


def _interrupting(action: Callable[[], object]) -> Callable[[Callable[[], object]], Interruption]:
    """``run(construct)``: calls ``construct()`` and, once, ``action()`` in the middle of
    it, at the moment the new client is registered, with clientdedupe's lock held: as a
    signal handler or a debugger stopped there would. The moment is picked by a layer
    around ``_ownership.register`` (then removed); everything it calls is the real code,
    run as any code is (a profile hook would hide it from tracers and coverage)."""

    def run(construct: Callable[[], object]) -> Interruption:
        seen = Interruption()
        register = _ownership.register

        def interrupted(shared: Any) -> None:
            if seen.runs == 0:
                seen.runs += 1
                try:
                    action()
                except BaseException as error:  # reported to the test, never swallowed
                    seen.errors.append(error)
            register(shared)

        _ownership.register = interrupted  # type: ignore[assignment]
        try:
            construct()
        finally:
            _ownership.register = register  # type: ignore[assignment]
        return seen

    return run


@pytest.mark.usefixtures("installed")
def test_a_close_from_code_interrupting_the_critical_section_keeps_the_pool_open(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    mine = openai.OpenAI(api_key="k", base_url=url)
    theirs = openai.OpenAI(api_key="k", base_url=url)
    assert mine is theirs
    seen = _interrupting(mine.close)(lambda: openai.OpenAI(api_key="another", base_url=url))
    assert seen.runs == 1
    assert seen.errors == []  # close() never raises, wherever it is called from
    assert not theirs.is_closed()
    assert Case.ask(theirs, "still open") == "echo: still open"


@pytest.mark.usefixtures("installed")
def test_a_construction_from_code_interrupting_the_critical_section_is_built_plain(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    built: list[Any] = []
    seen = _interrupting(lambda: built.append(openai.OpenAI(api_key="inner", base_url=url)))(
        lambda: openai.OpenAI(api_key="outer", base_url=url)
    )
    assert (seen.runs, seen.errors) == (1, [])
    [inner] = built
    assert Case.ask(inner, "plain") == "echo: plain"
    # Built as without clientdedupe, never cached: the cache was mid-update under it.
    assert openai.OpenAI(api_key="inner", base_url=url) is not inner
    # And the lock was left as it was found: another thread constructs at once.
    other: list[Any] = []
    thread = threading.Thread(
        target=lambda: other.append(openai.OpenAI(base_url=url, api_key="outer")), daemon=True
    )
    thread.start()
    thread.join(60)
    assert other == [openai.OpenAI(api_key="outer", base_url=url)]


@pytest.mark.usefixtures("installed")
def test_a_copy_made_from_code_interrupting_the_critical_section_still_counts_as_a_user(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    copies: list[Any] = []
    seen = _interrupting(lambda: copies.append(shared.with_options(timeout=5)))(
        lambda: openai.OpenAI(api_key="another", base_url=url)
    )
    assert (seen.runs, seen.errors) == (1, [])
    [derived] = copies
    clientdedupe.cache_clear()  # only its holder and the copy use the pool now
    shared.close()  # the last holder: the copy still uses the pool
    assert Case.ask(derived, "copy") == "echo: copy"
    derived.close()  # the last user of the pool: really closed
    assert shared.is_closed()
    assert server.settled_open_connections() == 0


# -- copies of copies, and copies of a closed client --------------------------------------


@pytest.mark.usefixtures("installed")
def test_a_copy_of_a_copy_counts_as_a_user_of_the_shared_pool(server: StubServer) -> None:
    import openai

    shared = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    derived = shared.with_options(timeout=5)
    grandchild = derived.with_options(max_retries=1)
    assert grandchild._client is shared._client
    clientdedupe.cache_clear()
    shared.close()
    derived.close()
    assert Case.ask(grandchild, "last user") == "echo: last user"
    grandchild.close()
    assert shared.is_closed()


@pytest.mark.usefixtures("installed")
def test_closing_a_copy_of_a_closed_client_reaches_the_callers_http_client_as_plain_does(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    import openai

    class CountingClient(openai.DefaultHttpxClient):
        """A caller's own ``http_client`` that counts the ``close()`` calls reaching it."""

        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    caplog.set_level(logging.DEBUG, logger="clientdedupe")
    pool = CountingClient()
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, http_client=pool)
    assert Case.ask(client) == "echo: hi"
    client.close()  # its only holder, on the caller's http_client: closed at once
    assert (client.is_closed(), pool.closes) == (True, 1)
    derived = client.with_options(timeout=5)
    assert derived._client is pool
    derived.close()
    # Without clientdedupe each close() reaches the pool; nothing was kept open.
    assert pool.closes == 2
    assert not [r for r in caplog.records if KEPT_OPEN in r.getMessage()]


# -- registered classes whose objects take no weak reference ------------------------------

SLIM = """
    class Connection:
        # A connection object without weak-reference support: __slots__, no __weakref__.
        __slots__ = ("open",)

        def __init__(self):
            self.open = True


    class View:
        # What Slim.copy() returns: a light object on the same connection, with a
        # __dict__ but no __weakref__.
        __slots__ = ("__dict__",)

        def __init__(self, connection):
            self._client = connection


    class Slim:
        def __init__(self, *, api_key="k", region="eu"):
            self.api_key = api_key
            self.region = region
            self._client = Connection()

        def copy(self, **changes):
            return View(self._client)

        def close(self):
            self._client.open = False
"""


@pytest.fixture
def slim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A throwaway SDK, registered and installed; forgotten after the test."""
    with throwaway_sdk(tmp_path, monkeypatch, "slim_sdk", {"slim_sdk.py": SLIM}) as slim_sdk:
        clientdedupe.register("slim_sdk:Slim", env={"api_key": "SLIM_API_KEY"})
        clientdedupe.install()
        yield slim_sdk


def test_a_registered_client_whose_connection_takes_no_weak_reference_is_shared(
    slim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clientdedupe")
    first = slim.Slim(region="us")
    second = slim.Slim(region="us")
    assert second is first
    assert clientdedupe.stats()["slim_sdk.Slim"]["built"] == 1
    first.close()
    assert first._client.open  # another holder
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_copy_that_takes_no_weak_reference_is_returned_as_without_clientdedupe(
    slim: Any,
) -> None:
    shared = slim.Slim()
    view = shared.copy(region="us")
    assert type(view) is slim.View
    assert view._client is shared._client
    assert slim.Slim() is shared


@pytest.mark.usefixtures("installed")
def test_the_last_close_of_a_copy_of_a_client_on_a_callers_http_client_closes_it(
    server: StubServer,
) -> None:
    import openai

    own = openai.DefaultHttpxClient()
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, http_client=own)
    copy = client.with_options(timeout=5)
    client.close()
    assert not own.is_closed  # its copy still uses it
    copy.close()
    assert own.is_closed  # the last use of the caller's pool: closed, as plain closes it
    assert clientdedupe.stats()["openai.OpenAI"]["live"] == 0
