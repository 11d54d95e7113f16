"""One connection pool per running event loop behind a shared async client (SPEC §5, §6).

An async HTTP client's connection pool belongs to the event loop that opened its
connections (httpx: "don't share an AsyncClient across event loops"). So a shared async
client gets, in place of the pool its SDK built, a stand-in (``PerLoop``) that sends each
call to the pool of the event loop running it, made on first use in that loop with the
same settings (the SDKs build theirs with ``base_url`` and ``timeout`` only). The
stand-in is an instance of the SDK's own pool class, so that ``with_options()`` /
``copy()``, which pass it on as ``http_client``, accept it and share it, as they share
the pool without clientdedupe.

Each loop's pools are closed inside that loop before it closes: a ``Keeper`` async
generator, started in the loop, is finalised by the loop with its other async generators
(``loop.shutdown_asyncgens()``, as ``asyncio.run()``, pytest-asyncio and
``IsolatedAsyncioTestCase`` do; trio does the same at the end of ``trio.run``), and its
``finally`` closes them. A loop closed without that is swept lazily: its pools are then
only dropped. Only pools the SDK built are handled so; a caller's ``http_client`` is
never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import weakref
from asyncio import _get_running_loop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from typing import Any

    LoopHook = Callable[[object], Awaitable[None]]


def current_runner() -> object | None:
    """The running asyncio event loop, else the current trio run's token, else None."""
    loop = _get_running_loop()
    if loop is not None:
        return loop
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        return trio.lowlevel.current_trio_token()  # type: ignore[no-any-return]
    except (RuntimeError, AttributeError):
        return None


class Keeper:
    """What one event loop (or trio run) holds: a pool per shared async client used in
    it, and hooks to run as it ends. Made, and its generator started, inside the loop."""

    __slots__ = ("abandoned", "generator", "hooks", "orphans", "pools", "runner")

    def __init__(self, runner: object) -> None:
        self.runner = runner
        #: PoolsState → the pool made for it in this loop
        self.pools: dict[PoolsState, object] = {}
        self.hooks: list[LoopHook] = []
        #: Pools of clients closed while this loop was not running.
        self.orphans: list[object] = []
        #: Set when the loop closed without finalising its async generators.
        self.abandoned = False
        self.generator = _keep(self)
        self._start()

    def _start(self) -> None:
        if getattr(self.runner, "_asyncgens_shutdown_called", False):
            return  # too late for this loop: asyncio would warn; left to the sweep
        step: Any = self.generator.__anext__()  # the loop's firstiter hook registers it
        with contextlib.suppress(StopIteration):
            step.send(None)  # runs the generator to its yield, without awaiting anything

    async def finalise(self) -> None:
        """Close this loop's pools and run its hooks, inside the loop."""
        with _lock:
            if _keepers.get(self.runner) is self:
                del _keepers[self.runner]
            pools = [*self.pools.values(), *self.orphans]
            self.pools.clear()
            self.orphans.clear()
            hooks, self.hooks = self.hooks, []
        for hook in hooks:
            await _quietly(hook(self.runner))
        for pool in pools:
            await _quietly(pool.aclose())  # type: ignore[attr-defined]

    def abandon(self) -> None:
        """The loop is closed: finish the generator without touching its pools."""
        self.abandoned = True
        closing: Any = self.generator.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(StopIteration, RuntimeError):
            closing.send(None)


async def _keep(keeper: Keeper) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if not keeper.abandoned:
            await keeper.finalise()


async def _quietly(awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception:
        from ._log import logger

        logger().debug("closing a connection pool as its event loop ends failed", exc_info=True)


_lock = threading.Lock()
_keepers: dict[object, Keeper] = {}


def keeper() -> Keeper | None:
    """The keeper of the running loop, made if needed; None outside any loop."""
    runner = current_runner()
    if runner is None:
        return None
    found = _keepers.get(runner)
    if found is not None:
        return found
    with _lock:
        return _keeper_locked(runner)


def _keeper_locked(runner: object) -> Keeper:
    found = _keepers.get(runner)
    if found is None:
        _sweep_locked()
        found = _keepers[runner] = Keeper(runner)
    return found


def on_loop_end(hook: LoopHook) -> None:
    """Run ``hook(loop)`` inside the running loop as it ends (nothing outside a loop)."""
    found = keeper()
    if found is None:
        return
    with _lock:
        if hook not in found.hooks:
            found.hooks.append(hook)


def _sweep_locked() -> None:
    for runner, found in list(_keepers.items()):
        is_closed = getattr(runner, "is_closed", None)
        if is_closed is not None and is_closed():
            del _keepers[runner]
            found.abandon()


def open_pools() -> dict[int, int]:
    """id(PoolsState) → how many loop pools it has open now."""
    counts: dict[int, int] = {}
    with _lock:
        for found in _keepers.values():
            for state in found.pools:
                counts[id(state)] = counts.get(id(state), 0) + 1
    return counts


def after_fork_in_child() -> None:
    """The parent's loops and pools are not the child's: forget them, closing nothing."""
    global _lock
    _lock = threading.Lock()
    _keepers.clear()


class PoolsState:
    """The pools behind one shared async client's stand-in."""

    __slots__ = ("__weakref__", "closed", "home", "last", "make", "watch")

    def __init__(self, home: object) -> None:
        #: The pool the SDK built: used outside any loop, and as the settings to copy.
        self.home = home
        self.closed = False
        #: What calls reach once closed: a closed pool, so that they fail as the SDK's.
        self.last = home
        pool_class: Any = type(home)
        base_url, timeout = home.base_url, home.timeout  # type: ignore[attr-defined]
        self.make: Callable[[], object] = lambda: pool_class(base_url=base_url, timeout=timeout)
        self.watch: object = None

    def current(self) -> object:
        """The pool of the running loop (made now on first use), or ``home``."""
        runner = current_runner()
        if runner is None or self.closed:
            return self.last
        found = _keepers.get(runner)
        if found is not None:
            pool = found.pools.get(self)
            if pool is not None:
                return pool
        if _unused:
            close_unused()
        with _lock:
            found = _keeper_locked(runner)
            pool = found.pools.get(self)
            if pool is None:
                pool = found.pools[self] = self.make()
        return pool

    def adopt_home(self) -> None:
        """The SDK built ``home`` inside a running loop: it is that loop's pool."""
        runner = current_runner()
        if _unused:
            close_unused()
        if runner is not None:
            with _lock:
                _keeper_locked(runner).pools.setdefault(self, self.home)

    def take_here(self) -> object | None:
        """Take the running loop's pool out of its keeper (the next call in this loop
        makes a fresh one): its client has no holder left, and the pool must not stay
        open with this loop (which may be closed without finalising its keeper)."""
        runner = current_runner()
        if runner is None:
            return None
        with _lock:
            found = _keepers.get(runner)
            return None if found is None else found.pools.pop(self, None)

    def detach(self) -> list[tuple[object, object]]:
        """Take every loop pool out of its keeper: (runner, pool) pairs. The pool the
        SDK built comes with runner None if no loop holds it."""
        taken: list[tuple[object, object]] = []
        with _lock:
            for runner, found in _keepers.items():
                pool = found.pools.pop(self, None)
                if pool is not None:
                    taken.append((runner, pool))
        if not any(pool is self.home for _, pool in taken):
            taken.append((None, self.home))
        return taken


_OWN = frozenset({"_cd_state", "aclose", "is_closed", "close_soon", "__class__", "__dict__"})


class PerLoop:
    """Mixed into a subclass of the SDK's pool class: every attribute is the running
    loop's pool's. Made without running the pool class's ``__init__``."""

    def __getattribute__(self, name: str) -> object:
        if name in _OWN:
            return object.__getattribute__(self, name)
        state: PoolsState = object.__getattribute__(self, "_cd_state")
        return getattr(state.current(), name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(object.__getattribute__(self, "_cd_state").current(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, "_cd_state").current(), name)

    def __del__(self) -> None:
        # The SDK's pool wrapper closes itself when garbage; the pools behind this
        # stand-in are closed by their loops' keepers.
        pass

    def __repr__(self) -> str:
        return f"<clientdedupe per-loop {type(self).__mro__[2].__name__}>"

    @property
    def is_closed(self) -> bool:
        return object.__getattribute__(self, "_cd_state").closed  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the shared client's pools for good: this loop's now, the others' in
        their own loops (or at their end)."""
        state: PoolsState = object.__getattribute__(self, "_cd_state")
        here = current_runner()
        state.closed = True
        for runner, pool in state.detach():
            if runner is here or runner is None:
                await _quietly(pool.aclose())  # type: ignore[attr-defined]
                state.last = pool
            else:
                close_soon(runner, pool)

    def close_soon(self) -> None:
        """Close the pools from code that cannot await (the cache dropping an idle
        client): each in its own loop, as soon as it can."""
        state: PoolsState = object.__getattribute__(self, "_cd_state")
        state.closed = True
        for runner, pool in state.detach():
            if runner is None:
                _close_home(pool)
            else:
                close_soon(runner, pool)


def _close_home(home: object) -> None:
    """Close ``home``, the pool the SDK built, which no running loop holds (built
    outside any loop, it was never used; or its loop was closed without finalising).
    Calls after ``close()`` reach it: they must fail as on the SDK's closed client, not
    open a connection that no loop would close. It is closed in an event loop of its
    own, in a thread, since this thread may be running a loop."""
    if getattr(home, "is_closed", True):
        return
    closer = threading.Thread(target=_close_in_a_new_loop, args=(home,), name="clientdedupe")
    closer.start()
    closer.join()


def _close_in_a_new_loop(pool: Any) -> None:
    with contextlib.suppress(Exception):  # the close itself is logged by _quietly
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(_quietly(pool.aclose()))
        finally:
            loop.close()


_per_loop_classes: dict[type, type] = {}


def per_loop(home: object) -> object:
    """A stand-in for the SDK-built pool ``home`` sending each call to its loop's pool."""
    base = type(home)
    cls = _per_loop_classes.get(base)
    if cls is None:
        cls = _per_loop_classes[base] = type(f"PerLoop{base.__name__}", (PerLoop, base), {})
    stand_in: object = object.__new__(cls)
    state = PoolsState(home)
    object.__setattr__(stand_in, "_cd_state", state)
    # Once no client uses the stand-in any more, nothing can use its pools: close them,
    # as the SDK's own pool closes itself when garbage (keepers hold these ones).
    state.watch = weakref.ref(stand_in, lambda _: _became_unused(state))
    state.adopt_home()
    return stand_in


#: States whose stand-in is garbage, left for later by the garbage collector's callback.
_unused: list[PoolsState] = []


def _became_unused(state: PoolsState) -> None:
    # A garbage-collector callback: it may run anywhere, even while this thread holds
    # the lock, so it only tries it (closing then as the SDK's own pool's __del__ does).
    _unused.append(state)
    if _lock.acquire(blocking=False):
        _lock.release()
        with contextlib.suppress(Exception):
            close_unused()


def close_unused() -> None:
    """Close the pools of stand-ins no client uses any more, each in its own loop."""
    while _unused:
        try:
            state = _unused.pop()
        except IndexError:  # another thread took the last one
            return
        state.closed = True
        for runner, pool in state.detach():
            close_soon(runner, pool)


def state_of(pool: object) -> PoolsState | None:
    """The ``PoolsState`` of a stand-in, or None for any other object."""
    if isinstance(pool, PerLoop):
        return object.__getattribute__(pool, "_cd_state")  # type: ignore[no-any-return]
    return None


_closing: set[object] = set()  # tasks closing pools: kept until done


def close_soon(runner: object | None, pool: object) -> None:
    """Close an async ``pool`` of ``runner`` from anywhere: at once if ``runner`` is
    this thread's running loop, through ``call_soon_threadsafe`` if it runs elsewhere.
    A pool of no loop (never used for a request) or of a closed loop is only dropped;
    one of a loop that is not running is left to that loop's keeper."""
    if runner is None:
        return
    if not hasattr(runner, "call_soon_threadsafe"):
        run_sync_soon = getattr(runner, "run_sync_soon", None)  # a trio run's token
        if run_sync_soon is not None:
            with contextlib.suppress(Exception):  # that run is over: nothing is open
                run_sync_soon(_spawn_in_trio, pool)
        return
    if runner.is_closed():  # type: ignore[attr-defined]
        return
    if runner is _get_running_loop():
        _spawn(runner, pool)
    elif runner.is_running():  # type: ignore[attr-defined]
        with contextlib.suppress(RuntimeError):  # closed in the meantime
            runner.call_soon_threadsafe(_spawn, runner, pool)
    else:
        with _lock:
            found = _keepers.get(runner)
            if found is not None:
                found.orphans.append(pool)


def _spawn_in_trio(pool: object) -> None:
    trio = sys.modules["trio"]
    trio.lowlevel.spawn_system_task(_quietly, pool.aclose())  # type: ignore[attr-defined]


def _spawn(loop: object, pool: object) -> None:
    task = loop.create_task(_quietly(pool.aclose()))  # type: ignore[attr-defined]
    _closing.add(task)
    task.add_done_callback(_closing.discard)
