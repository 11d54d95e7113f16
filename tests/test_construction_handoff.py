"""SPEC §9: the hand-off between the patched ``__new__`` and ``__init__``.

A construction that got a shared instance from ``__new__`` must meet our ``__init__``
and nothing else: not the SDK's put back by ``uninstall()`` from another thread, not a
layer wrapped around ``__init__`` meanwhile, not the ``__init__`` of another
construction made in between (a debugger or signal handler). Each test stops one
construction at that exact moment with a trace hook (the only way to pick it; all the
code it runs is the real code) and counts how many times the SDK's ``__init__`` ran on
each instance.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import Case
from .processes import in_forked_child

Tracer = Callable[[FrameType, str, Any], Any]


def _in_new(cls: type, local: Tracer) -> Tracer:
    """A trace hook that traces each run of ``cls.__new__`` with ``local``."""
    new_code = cls.__new__.__code__

    def hook(frame: FrameType, event: str, arg: Any) -> Any:
        return local if event == "call" and frame.f_code is new_code else None

    return hook


def _on_new_returning(cls: type, action: Callable[[], object]) -> Tracer:
    """A trace hook that runs ``action()`` once, when ``cls.__new__`` returns: after it
    handed out its instance, before Python calls ``__init__`` on it."""
    runs: list[object] = []

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return" and not runs:
            runs.append(arg)
            action()
        return local

    return _in_new(cls, local)


def _both(first: Tracer | None, second: Tracer | None) -> Tracer | None:
    """A trace function calling ``first`` then ``second`` (None: nothing to trace)."""
    if first is None or second is None:
        return first or second

    def both(frame: FrameType, event: str, arg: Any) -> Any:
        return _both(first(frame, event, arg), second(frame, event, arg))

    return both


def _traced(hook: Tracer, construct: Callable[[], Any]) -> Any:
    """``construct()``, run with ``hook`` as this thread's trace function, beside the
    one already set (a debugger, or the mutation run's coverage, which must see what
    the construction runs)."""
    previous = sys.gettrace()
    sys.settrace(_both(hook, previous))
    try:
        return construct()
    finally:
        sys.settrace(previous)


def _uninstall_from_another_thread_meanwhile() -> Callable[[], None]:
    """An action that starts ``uninstall()`` in another thread and returns once that
    thread either has seen this construction pending (and waits for it) or is done."""
    from clientdedupe import _constructor

    pending_code = _constructor.hand_offs_pending.__code__

    def action() -> None:
        seen = threading.Event()

        def watch(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "call" and frame.f_code is pending_code:
                return watch
            if event == "return" and frame.f_code is pending_code and arg is True:
                seen.set()
            return None

        def run() -> None:
            try:
                _traced(watch, clientdedupe.uninstall)
            finally:
                seen.set()

        uninstaller = threading.Thread(target=run)
        uninstaller.start()
        seen.wait()
        threads.append(uninstaller)

    threads: list[threading.Thread] = []
    action.threads = threads  # type: ignore[attr-defined]
    return action


def _hand_off_survives_a_concurrent_uninstall(cls: type, url: str, twice: list[Any]) -> str:
    """Builds a shared client, then constructs it again while another thread
    uninstalls between that construction's ``__new__`` and ``__init__``."""
    first = cls(api_key="k", base_url=url)
    pool = vars(first)["_client"]
    action = _uninstall_from_another_thread_meanwhile()
    second = _traced(_on_new_returning(cls, action), lambda: cls(api_key="k", base_url=url))
    for thread in action.threads:  # type: ignore[attr-defined]
        thread.join()
    return (
        f"same={second is first} pool_kept={vars(first)['_client'] is pool} "
        f"twice={len(twice)} uninstalled={not clientdedupe.stats()}"
    )


def test_uninstall_from_another_thread_waits_for_a_construction_handed_its_shared_client(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    cls, twice = counted_init
    clientdedupe.install()
    verdict = _hand_off_survives_a_concurrent_uninstall(cls, server.openai_base_url, twice)
    # The construction met our __init__: the shared client was not initialised again.
    assert verdict == "same=True pool_kept=True twice=0 uninstalled=True"
    assert twice == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
def test_in_a_fork_child_uninstall_waits_for_the_forking_threads_construction(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    cls, twice = counted_init
    clientdedupe.install()
    url = server.openai_base_url
    cls(api_key="k", base_url=url)  # the parent's, never handed out in the child
    verdict = in_forked_child(lambda: _hand_off_survives_a_concurrent_uninstall(cls, url, twice))
    assert verdict == "same=True pool_kept=True twice=0 uninstalled=True"


def test_a_client_built_by_a_hook_between_another_constructions_new_and_init_is_initialised_once(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    cls, twice = counted_init
    clientdedupe.install()
    url = server.openai_base_url
    first = cls(api_key="k", base_url=url)
    other = cls(api_key="other", base_url=url)
    built_in_hook: list[Any] = []

    def hook_construction() -> None:  # a debugger or signal handler, say
        built_in_hook.append(cls(api_key="other", base_url=url))

    second = _traced(
        _on_new_returning(cls, hook_construction), lambda: cls(api_key="k", base_url=url)
    )
    assert second is first and built_in_hook == [other]
    assert twice == []  # neither shared client initialised again
    # And the hand-offs all completed: the next constructions are plain hits.
    assert cls(api_key="other", base_url=url) is other
    assert cls(api_key="k", base_url=url) is first
    assert twice == []
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["built"], counts["reused"], counts["bypassed"]) == (2, 4, 0)


def test_a_layer_wrapped_around_init_during_a_construction_leaves_that_one_unshared(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    import wrapt

    cls, twice = counted_init
    clientdedupe.install()
    url = server.openai_base_url
    first = cls(api_key="k", base_url=url)
    ours = vars(cls)["__init__"]
    wrapped_on: list[Any] = []

    def layer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        wrapped_on.append(instance)
        return wrapped(*args, **kwargs)

    # Another instrumentation installs itself while the construction is under way (in
    # another thread, say): here, as our __new__ makes its first call (the key).
    new_code = cls.__new__.__code__

    def hook(frame: FrameType, event: str, arg: Any) -> Any:
        caller = frame.f_back
        if (
            event == "call"
            and caller is not None
            and caller.f_code is new_code
            and vars(cls)["__init__"] is ours
        ):
            wrapt.wrap_function_wrapper(cls, "__init__", layer)
        return None

    try:
        second = _traced(hook, lambda: cls(api_key="k", base_url=url))
        # The new layer runs on what __new__ returned: a shared instance would have been
        # initialised again by it, so this construction was left to the class.
        assert second is not first and wrapped_on == [second]
        assert twice == []
        assert vars(second)["_test_initialised"] is True
        reasons = clientdedupe.stats()["openai.OpenAI"]["bypass_reasons"]
        assert reasons == {"uninstalled, or __init__ replaced, during the construction": 1}
    finally:
        cls.__init__ = ours  # type: ignore[misc]


def test_the_patched_constructor_reads_as_the_class_own(installed: None) -> None:
    import openai

    sdk_parameters = list(inspect.signature(openai.OpenAI.__init__).parameters)
    assert "api_key" in sdk_parameters
    # What libraries read to decide which arguments to pass, and what repr/help show.
    assert list(inspect.signature(openai.OpenAI).parameters) == sdk_parameters[1:]
    assert openai.OpenAI.__new__.__qualname__ == "OpenAI.__new__"


def test_copies_and_bypass_blocks_are_counted_under_their_own_reason(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    clientdedupe.install(async_mode="off")
    try:
        unshared = openai.AsyncOpenAI(api_key="k", base_url=url)
        # The SDK's own copies are not constructions of the caller's: never counted,
        # even of a client that could not be shared.
        unshared.with_options(timeout=5)
        unshared.copy(max_retries=1)
        shared = openai.OpenAI(api_key="k", base_url=url)
        shared.with_options(timeout=5)
        with clientdedupe.bypass("a test's own"):
            openai.AsyncOpenAI(api_key="k", base_url=url)
        stats = clientdedupe.stats()
        assert stats["openai.AsyncOpenAI"]["bypass_reasons"] == {
            "async sharing is off": 1,
            "a test's own": 1,
        }
        assert stats["openai.OpenAI"]["bypassed"] == 0
    finally:
        clientdedupe.uninstall()


def test_in_loop_mode_each_event_loop_gets_its_own_async_client(server: StubServer) -> None:
    import asyncio

    import openai

    url = server.openai_base_url

    async def two() -> tuple[Any, Any]:
        return openai.AsyncOpenAI(api_key="k", base_url=url), openai.AsyncOpenAI(
            api_key="k", base_url=url
        )

    clientdedupe.install(async_mode="loop")
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]  # both open at once
    try:
        first, again = loops[0].run_until_complete(two())
        second, _ = loops[1].run_until_complete(two())
        assert first is again and second is not first
        outside = [openai.AsyncOpenAI(api_key="k", base_url=url) for _ in range(2)]
        assert outside[0] is not outside[1]
        counts = clientdedupe.stats()["openai.AsyncOpenAI"]
        assert counts["bypass_reasons"] == {"async, no running event loop": 2}
        assert (counts["built"], counts["reused"]) == (2, 2)
    finally:
        for loop in loops:
            loop.close()
        clientdedupe.uninstall()


@pytest.mark.usefixtures("installed")
def test_a_client_given_the_same_http_client_after_the_shared_one_died_is_a_new_one(
    server: StubServer,
) -> None:
    import gc

    import openai

    url = server.openai_base_url
    http_client = openai.DefaultHttpxClient()
    first = openai.OpenAI(api_key="k", base_url=url, http_client=http_client)
    assert openai.OpenAI(api_key="k", base_url=url, http_client=http_client) is first
    del first
    gc.collect()
    # Its entry is only marked dead by the collector: the next construction with the
    # same http_client must build a working client, not hand out what is gone.
    again = openai.OpenAI(api_key="k", base_url=url, http_client=http_client)
    assert isinstance(again, openai.OpenAI) and again.api_key == "k"
    assert openai.OpenAI(api_key="k", base_url=url, http_client=http_client) is again
    assert Case.ask(again) == "echo: hi"
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["built"], counts["reused"], counts["bypassed"]) == (2, 2, 0)
    http_client.close()


@pytest.mark.usefixtures("installed")
def test_a_construction_interrupting_the_cache_lookup_builds_its_own_client(
    server: StubServer,
) -> None:
    import openai

    from clientdedupe._ownership import GUARD

    url = server.openai_base_url
    first = openai.OpenAI(api_key="k", base_url=url)
    interrupting: list[Any] = []

    # A signal handler (or a debugger) constructing a client while the interrupted
    # construction is inside clientdedupe's critical section: it must leave the
    # records alone, so it builds a client of its own.
    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and GUARD.busy and not interrupting:
            interrupting.append(openai.OpenAI(api_key="k", base_url=url))
        return local

    second = _traced(
        _in_new(openai.OpenAI, local), lambda: openai.OpenAI(api_key="k", base_url=url)
    )
    assert second is first
    assert len(interrupting) == 1 and interrupting[0] is not first
    assert Case.ask(interrupting[0]) == "echo: hi"
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert (counts["built"], counts["reused"]) == (1, 1)  # the interrupting one took none


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
@pytest.mark.usefixtures("installed")
def test_a_fork_while_a_thread_makes_its_first_construction_leaves_the_child_working(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    registering = threading.Event()
    forked = threading.Event()

    # The fork lands while another thread registers its hand-off state (its first
    # construction), as it may in any program forking with threads around.
    def hook(frame: FrameType, event: str, arg: Any) -> Any:
        caller = frame.f_back
        if (
            event == "call"
            and not registering.is_set()
            and frame.f_code.co_name == "add"
            and caller is not None
            and caller.f_globals.get("__name__") == "clientdedupe._constructor"
        ):
            registering.set()
            forked.wait()
        return None

    built: list[Any] = []

    def construct() -> None:
        built.append(_traced(hook, lambda: openai.OpenAI(api_key="k", base_url=url)))

    thread = threading.Thread(target=construct)
    thread.start()
    registering.wait()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            results: list[Any] = []
            worker = threading.Thread(
                target=lambda: results.append(openai.OpenAI(api_key="k", base_url=url)),
                daemon=True,
            )
            worker.start()
            worker.join(timeout=30)
            verdict = "deadlocked" if worker.is_alive() else f"built={len(results)}"
            os.write(write_end, verdict.encode())
        finally:
            os._exit(0)
    forked.set()
    thread.join()
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        verdict = pipe.read()
    os.waitpid(pid, 0)
    assert verdict == "built=1"
    assert len(built) == 1 and openai.OpenAI(api_key="k", base_url=url) is built[0]
