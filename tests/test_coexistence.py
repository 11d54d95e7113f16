"""SPEC §9: living with other code — mocks of the environment and of constructors, other
wrappers of ``__init__``, concurrent install/uninstall, constructions with no Python
caller, secrets in frame locals."""

from __future__ import annotations

import functools
import os
import threading
from typing import Any
from unittest import mock

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import CASES, Case
from .processes import run_python

SEEDS = [c for c in CASES if c.module in ("openai", "groq", "cerebras.cloud.sdk")]


# -- a replaced os.environ ----------------------------------------------------------------


@pytest.mark.usefixtures("installed")
def test_two_mocked_environments_never_share_and_each_sends_its_own_key(
    server: StubServer,
) -> None:
    import openai

    base = {"NO_PROXY": "127.0.0.1", "OPENAI_BASE_URL": server.openai_base_url}
    with mock.patch("os.environ", {**base, "OPENAI_API_KEY": "sk-A"}):
        a = openai.OpenAI()
        Case.ask(a)
    with mock.patch("os.environ", {**base, "OPENAI_API_KEY": "sk-B"}):
        b = openai.OpenAI()
        Case.ask(b)
    assert a is not b
    sent = [r.headers["authorization"] for r in server.requests]
    assert sent == ["Bearer sk-A", "Bearer sk-B"]


@pytest.mark.usefixtures("installed")
def test_monkeypatched_environment_object_and_patch_dict_are_read_at_each_construction(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    url = server.openai_base_url
    with monkeypatch.context() as patched:
        patched.setattr(os, "environ", {"OPENAI_API_KEY": "sk-A", "NO_PROXY": "127.0.0.1"})
        a = openai.OpenAI(base_url=url)
        assert openai.OpenAI(base_url=url) is a
    with mock.patch.dict(os.environ, {"OPENAI_API_KEY": "sk-B"}):
        b = openai.OpenAI(base_url=url)
    with mock.patch.dict(os.environ, {"OPENAI_API_KEY": "sk-C"}):
        c = openai.OpenAI(base_url=url)
    assert len({id(a), id(b), id(c)}) == 3
    assert (a.api_key, b.api_key, c.api_key) == ("sk-A", "sk-B", "sk-C")


def test_an_sdk_first_imported_under_a_mocked_environment_still_follows_the_real_one() -> None:
    result = run_python(
        """
        import os
        from unittest import mock
        import clientdedupe
        clientdedupe.install()
        with mock.patch("os.environ", {"OPENAI_API_KEY": "sk-mocked"}):
            import openai
            mocked = openai.OpenAI(base_url="http://127.0.0.1:9/v1")
        os.environ["OPENAI_API_KEY"] = "sk-real-1"
        one = openai.OpenAI(base_url="http://127.0.0.1:9/v1")
        os.environ["OPENAI_API_KEY"] = "sk-real-2"
        two = openai.OpenAI(base_url="http://127.0.0.1:9/v1")
        print(mocked.api_key, one.api_key, two.api_key, len({id(mocked), id(one), id(two)}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sk-mocked", "sk-real-1", "sk-real-2", "3"]


# -- whatever others do to __init__ --------------------------------------------------------


def test_a_mocked_init_under_pytest_clientdedupe_behaves_as_plain(
    pytester: pytest.Pytester,
) -> None:
    rows = [(c.module, c.name) for c in SEEDS]
    pytester.makepyfile(
        test_mocked=f"""
        import importlib
        from unittest import mock
        import pytest

        @pytest.mark.parametrize("module,name", {rows!r})
        def test_mocked_init(module, name):
            cls = getattr(importlib.import_module(module), name)
            with mock.patch.object(cls, "__init__", return_value=None) as init:
                first = cls(api_key="k", base_url="http://127.0.0.1:9")
                second = cls(api_key="k", base_url="http://127.0.0.1:9")
            assert type(first) is cls and first is not second
            assert vars(first) == {{}}  # the real constructor never ran
            assert init.call_count == 2
            init.assert_called_with(api_key="k", base_url="http://127.0.0.1:9")
        """
    )
    for options in ([], ["--clientdedupe"]):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *options)
        result.assert_outcomes(passed=len(rows))


def test_a_wrapt_wrapper_on_init_before_install_sees_the_instance_once_per_client_built(
    server: StubServer,
) -> None:
    import openai
    import wrapt

    seen: list[Any] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        assert instance is not None and isinstance(instance, openai.OpenAI)
        seen.append(instance)
        return wrapped(*args, **kwargs)

    sdk_init = vars(openai.OpenAI)["__init__"]
    wrapt.wrap_function_wrapper(openai.OpenAI, "__init__", wrapper)
    clientdedupe.install()
    try:
        first = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
        second = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
        other = openai.OpenAI(api_key="other", base_url=server.openai_base_url)
        assert first is second and first is not other
        assert seen == [first, other]  # once per client built, never on a hand-out
        assert Case.ask(first) == "echo: hi"
    finally:
        clientdedupe.uninstall()
        openai.OpenAI.__init__ = sdk_init  # type: ignore[method-assign]


def test_a_wrapt_wrapper_on_init_after_install_runs_once_per_client_built(
    server: StubServer,
) -> None:
    import openai
    import wrapt

    seen: list[Any] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(instance)
        return wrapped(*args, **kwargs)

    clientdedupe.install()
    ours = vars(openai.OpenAI)["__init__"]
    wrapt.wrap_function_wrapper(openai.OpenAI, "__init__", wrapper)
    try:
        clients = [openai.OpenAI(api_key="k", base_url=server.openai_base_url) for _ in range(3)]
        # Another layer runs above ours: a shared instance would be initialised again
        # by it, so each construction is left to the class, unshared.
        assert len({id(c) for c in clients}) == 3
        assert seen == clients
        assert all(Case.ask(c) == "echo: hi" for c in clients)
        reasons = clientdedupe.stats()["openai.OpenAI"]["bypass_reasons"]
        assert reasons == {"__init__ replaced by other code": 3}
    finally:
        openai.OpenAI.__init__ = ours  # type: ignore[method-assign]
        clientdedupe.uninstall()


def test_restoring_a_saved_init_after_install_never_reinitialises_a_shared_client(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    cls, twice = counted_init
    from clientdedupe import _constructor

    saved = vars(cls)["__init__"]  # an instrumentation saves it...
    clientdedupe.install()
    shared = cls(api_key="k", base_url=server.openai_base_url)
    assert cls(api_key="k", base_url=server.openai_base_url) is shared
    pool = shared._client
    cls.__init__ = saved  # ...and restores it after clientdedupe patched the class
    later = [cls(api_key="k", base_url=server.openai_base_url) for _ in range(5)]
    assert all(client is not shared for client in later)
    assert len({id(c) for c in later}) == 5
    assert twice == []  # every object initialised exactly once
    assert _constructor._handed.stack == []  # no hand-off left behind
    assert shared._client is pool  # its pool was never replaced under its holder
    assert Case.ask(shared, "mine") == "echo: mine"


@pytest.mark.slow
def test_install_uninstall_and_cache_clear_while_64_threads_construct(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    cls, twice = counted_init
    counting_init = vars(cls)["__init__"]
    url = server.openai_base_url
    errors: list[BaseException] = []
    stop = threading.Event()
    shared_again: list[int] = []
    shared_in_cycle = threading.Event()

    def construct(n: int) -> None:
        try:
            while not stop.is_set():
                client = cls(api_key=f"key-{n % 4}", base_url=url)
                assert client.api_key == f"key-{n % 4}"
                handed = vars(client)  # not setattr: that is a holder's change
                if handed.setdefault("_test_handed_out", n) != n:
                    shared_again.append(n)  # another thread got this very object
                    shared_in_cycle.set()
        except BaseException as error:
            errors.append(error)

    def churn() -> None:
        try:
            while not stop.is_set():
                clientdedupe.install()
                # However loaded the machine (64 busy threads starve this one of the
                # GIL), let each installation share something before it goes.
                shared_in_cycle.clear()
                shared_in_cycle.wait(30)
                clientdedupe.cache_clear()
                clientdedupe.uninstall()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=construct, args=(n,)) for n in range(64)]
    threads.append(threading.Thread(target=churn))
    for thread in threads:
        thread.start()
    stop.wait(10)  # how long the threads hammer, not a synchronisation
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert shared_again  # clients were shared during the churn...
    assert twice == []  # ...and none was ever initialised twice
    # The final state is consistent: uninstalled, the class as it was; install works again.
    assert not clientdedupe.is_installed()
    assert vars(cls)["__init__"] is counting_init
    clientdedupe.install()
    first = cls(api_key="k", base_url=url)
    assert cls(api_key="k", base_url=url) is first, clientdedupe.stats()["openai.OpenAI"]


# -- constructions with no Python caller, or from a signal handler ---------------------------


def test_constructions_from_atexit_and_a_bare_thread_work() -> None:
    result = run_python(
        """
        import _thread, atexit, collections, operator, threading
        import clientdedupe
        clientdedupe.install()
        import openai

        done = threading.Event()
        # No Python frame above the construction: the thread runs C code only
        # (deque.extend consuming a map of methodcaller), as a C callback would.
        calls = map(operator.methodcaller("__call__"), [openai.OpenAI, done.set])
        _thread.start_new_thread(collections.deque(maxlen=0).extend, (calls,))
        assert done.wait(30)
        # atexit calls its functions from C too, last registered first.
        atexit.register(lambda: print(clientdedupe.stats()["openai.OpenAI"]["reused"]))
        atexit.register(openai.OpenAI)
        """,
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == "1"  # the one from atexit got the thread's client


def test_constructions_from_a_signal_handler_never_deadlock() -> None:
    result = run_python(
        """
        import signal
        import clientdedupe
        clientdedupe.install()
        import openai

        from_handler = []
        inside = []

        def handler(signum, frame):
            if inside:  # the timer is faster than a construction: no nesting
                return
            inside.append(True)
            try:
                from_handler.append(openai.OpenAI(api_key="from-the-handler"))
            finally:
                inside.clear()

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        for i in range(3000):
            openai.OpenAI(api_key=f"main-{i % 3}")
            clientdedupe.cache_clear() if i % 500 == 0 else None
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        assert from_handler and all(c.api_key == "from-the-handler" for c in from_handler)
        print(len(from_handler) > 0)
        """,
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


# -- secrets in frame locals ---------------------------------------------------------------


def test_a_failing_construction_shows_no_environment_secret_in_showlocals(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "sk-CANARY-7f3a9d"
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", canary)
    monkeypatch.setenv("OPENAI_ORG_ID", canary + "-org")
    pytester.makepyfile(
        test_failing="""
        import openai

        def test_no_key():
            openai.OpenAI(base_url="http://127.0.0.1:9/v1")
        """
    )
    for options in ([], ["--clientdedupe"]):
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--showlocals", "--tb=long", *options
        )
        result.assert_outcomes(failed=1)
        output = result.stdout.str() + result.stderr.str()
        assert "OpenAIError" in output
        assert canary not in output, options


def test_uninstall_while_a_client_is_being_built_discards_it_and_builds_normally(
    counted_init: tuple[type, list[Any]], server: StubServer
) -> None:
    """A build finishing after uninstall() is never handed out (the SDK's __init__ is
    back, and would run on it again): the construction is left to the class."""
    cls, twice = counted_init
    counting_init = vars(cls)["__init__"]
    entered, release = threading.Event(), threading.Event()

    @functools.wraps(counting_init)
    def slow_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("api_key") == "slow" and not release.is_set():
            entered.set()
            release.wait(30)
        counting_init(self, *args, **kwargs)

    cls.__init__ = slow_init  # type: ignore[method-assign]
    clientdedupe.install()
    result: list[Any] = []
    thread = threading.Thread(
        target=lambda: result.append(cls(api_key="slow", base_url=server.openai_base_url))
    )
    thread.start()
    assert entered.wait(30)
    clientdedupe.uninstall()  # while the build is under way
    release.set()
    thread.join(30)
    assert vars(cls)["__init__"] is slow_init
    (client,) = result
    assert twice == []
    assert Case.ask(client, "after") == "echo: after"


def test_uninstall_waits_for_a_construction_between_its_new_and_its_init(
    counted_init: tuple[type, list[Any]], server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between a hit's ``__new__`` and the ``__init__`` that skips it is
    widened here by a trace function: uninstall() must not put the SDK's ``__init__``
    back while a shared instance is in it, or that ``__init__`` would run on it."""
    import sys

    from clientdedupe import _runtime

    cls, twice = counted_init
    clientdedupe.install()
    url = server.openai_base_url
    shared = cls(api_key="k", base_url=url)
    our_new = vars(cls)["__new__"].__func__.__code__
    in_window, uninstall_waits = threading.Event(), threading.Event()
    pending = _runtime.hand_offs_pending

    def watched_pending() -> bool:
        found = pending()
        if found:
            uninstall_waits.set()
        return found

    monkeypatch.setattr(_runtime, "hand_offs_pending", watched_pending)

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not our_new:
            return None

        def on_return(frame: Any, event: str, arg: Any) -> Any:
            if event == "return" and arg is shared:
                in_window.set()
                uninstall_waits.wait(5)  # released as soon as uninstall() sees the hand-off
            return on_return

        return on_return

    got: list[Any] = []

    def construct() -> None:
        sys.settrace(tracer)
        try:
            got.append(cls(api_key="k", base_url=url))
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=construct)
    thread.start()
    assert in_window.wait(30)
    clientdedupe.uninstall()
    thread.join(30)
    assert got == [shared]
    assert twice == []
