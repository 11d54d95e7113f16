"""The interception of one client class's construction: its ``__new__`` and ``__init__``.

``Cls(**kwargs)`` runs ``Cls.__new__`` then, on what it returned, whatever ``__init__``
the class has *now*. The patched ``__new__`` hands back the shared instance (building
it on a miss by running the ``__init__`` chain below ours, bound to the new instance as
Python would bind it); the patched ``__init__`` then recognises that instance and skips
it. Patching the class itself, rather than replacing the module attribute, keeps every
name bound before ``install()`` (``from openai import OpenAI``, ``openai.Client``)
working, and ``type(client) is Cls`` true.

Other code may wrap, replace, mock or restore ``__init__`` at any time (SPEC §9). Only
while the class's ``__init__`` is ours can a shared instance be handed out without
another layer running on it again; otherwise the construction is left entirely to the
class, unshared. The hand-off (``__new__`` pushes the instance, our ``__init__`` pops
it) is made under the cache's lock together with that check, so that ``uninstall()``,
which waits under the same lock for no hand-off to be pending, never puts the SDK's
``__init__`` back between the two.

This is the hot path of every construction: a cache hit must cost microseconds.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
import weakref

from . import _pools
from ._cache import Built, Stale
from ._context import BYPASS
from ._key import KeyBuilder, Unkeyable, detach, holds_identity, holds_loop_state
from ._lifetime import COPYING
from ._ownership import GUARD, Reentrant

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from ._cache import ClientCache
    from ._targets import Target

# ``copy.copy(client)`` and ``copy.deepcopy`` call ``cls.__new__(cls)`` with no arguments,
# through copyreg: that is not a construction (no ``__init__`` follows).
_COPY_MODULES = frozenset({"copyreg", "copy", "pickle"})


class Settings:
    """What an installation decided; read by the hot path on every construction."""

    __slots__ = ("active", "async_mode")

    def __init__(self, async_mode: str) -> None:
        #: False once uninstalled: a ``__new__`` left behind then passes through.
        self.active = True
        self.async_mode = async_mode


class _Stack:
    """One thread's instances handed out by ``__new__`` and not yet seen by
    ``__init__`` (an object, so that the registry below can hold it weakly)."""

    __slots__ = ("__weakref__", "items")

    def __init__(self) -> None:
        self.items: list[object] = []


_stacks: weakref.WeakSet[_Stack] = weakref.WeakSet()
_stacks_lock = threading.Lock()


class _HandOff(threading.local):
    def __init__(self) -> None:
        self.owner = _Stack()
        #: The list itself, for the hot path.
        self.stack = self.owner.items
        with _stacks_lock:
            _stacks.add(self.owner)


_handed = _HandOff()


def hand_offs_pending() -> bool:
    """Whether another thread is between a ``__new__`` that handed out a shared
    instance and the ``__init__`` that will skip it (read with the cache's lock held).
    This thread's own are left out: it cannot wait for itself (a signal handler or a
    trace function calling ``uninstall()`` in that very moment)."""
    mine = _handed.owner
    with _stacks_lock:
        return any(stack.items for stack in _stacks if stack is not mine)


def after_fork_in_child() -> None:
    """Only this thread survives a fork: the others' hand-offs never complete."""
    global _stacks_lock
    _stacks_lock = threading.Lock()
    mine = _handed.owner
    _stacks.clear()
    _stacks.add(mine)


def _caller(inner: Callable[..., object]) -> Callable[..., object]:
    """Call ``inner`` on an instance as ``type.__call__`` would: bound to it. A plain
    function is called directly (the common, fast case); anything else (a wrapt
    wrapper, a mock with ``__get__``) is bound first, so that a wrapper installed
    before ours sees the right ``instance``."""
    if type(inner) is types.FunctionType:
        return inner
    get = getattr(type(inner), "__get__", None)
    if get is None:
        return inner

    def bound(self: object, *args: object, **kwargs: object) -> object:
        try:
            return get(inner, self, type(self))(*args, **kwargs)
        except BaseException:
            del args, kwargs  # never in the traceback's locals (SPEC §7)
            raise

    return bound


def make_init(inner: Callable[..., object]) -> Callable[..., None]:
    """The ``__init__`` that skips the instance ``__new__`` just handed out, and runs
    ``inner`` (the chain below it) otherwise.

    A plain function rather than a wrapt wrapper: it is on the hot path, and a wrapt
    ``FunctionWrapper`` binds a new wrapper object on every call. It carries the
    original's signature, name and ``__wrapped__``, so ``inspect.signature`` and
    ``inspect.getfullargspec`` see the SDK's.
    """
    handed = _handed
    call_inner = _caller(inner)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        stack = handed.stack
        if stack and stack[-1] is self:
            stack.pop()
            return
        try:
            call_inner(self, *args, **kwargs)
        except BaseException:
            del args, kwargs  # never in the traceback's locals (SPEC §7)
            raise

    functools.update_wrapper(__init__, inner)
    __init__.__signature__ = inspect.signature(inner)  # type: ignore[attr-defined]
    return __init__


def make_new(
    target: Target,
    cls: type,
    inner_init: Callable[..., object],
    our_init: Callable[..., None],
    cache: ClientCache,
    settings: Settings,
    *,
    is_async: bool,
    pool_classes: tuple[type, ...],
) -> Callable[..., object]:
    """The ``__new__`` that deduplicates the constructions of exactly ``cls``.

    ``pool_classes``: for an async class, the SDK's own connection pool classes of
    which a shared client can get one pool per event loop (``_pools``); none ties each
    shared async client to the loop it was built in, as ``async_mode="loop"`` does.
    """
    build_key = KeyBuilder(target, inner_init).build
    counters = cache.counters_for(target)
    get_or_build = cache.get_or_build
    object_new = object.__new__
    bypass_reason = BYPASS.get
    handed = _handed
    call_inner = _caller(inner_init)
    guard = GUARD
    # The cache's dict is never replaced (only cleared), so its methods can be kept.
    find, move_to_end = cache.by_key.get, cache.by_key.move_to_end
    mode = settings.async_mode if is_async else "sync"
    loop_bound = mode == "loop" or (mode == "shared" and not pool_classes)
    running_loop: Callable[[], object] = _pools.current_runner

    def hand_off_ok() -> bool:
        # Under the cache's lock. Only while the class's __init__ is ours will the
        # instance be skipped by __init__ rather than initialised again.
        return settings.active and cls.__init__ is our_init  # type: ignore[misc]

    def hand_off(client: object) -> bool:
        if hand_off_ok():
            handed.stack.append(client)
            return True
        return False

    def build(klass: type, kwargs: dict[str, object], key: object) -> Built:
        client: object = object_new(klass)
        arguments = {name: detach(value) for name, value in kwargs.items()}
        try:
            call_inner(client, **arguments)
        except BaseException:
            del arguments, kwargs, key  # never in the traceback's locals (SPEC §7)
            raise
        owns_pool = arguments.get("http_client") is None
        built = Built(client, is_async=is_async, weak=holds_identity(key), owns_pool=owns_pool)
        if is_async and pool_classes and owns_pool:
            pool = vars(client).get("_client")
            if type(pool) in pool_classes:
                # Bypass __setattr__: this is not a holder's change.
                vars(client)["_client"] = _pools.per_loop(pool)
            elif not loop_bound:
                # Not a pool this SDK version was seen to build: sharing it across
                # event loops would break the second loop.
                built.unshared = "its connection pool cannot be made one per event loop"
        return built

    def __new__(klass: type, *args: object, **kwargs: object) -> object:
        if klass is not cls or not settings.active:
            # Subclasses are constructed untouched, and so is everything after uninstall().
            return object_new(klass)
        reason = bypass_reason()
        loop = None
        if reason is None:
            if not args and not kwargs and _called_by_copy(sys._getframe()):
                return object_new(klass)
            try:
                if cls.__init__ is not our_init:  # type: ignore[misc]
                    raise Unkeyable("__init__ replaced by other code")
                key = build_key(args, kwargs)
                if is_async:
                    if mode == "off":
                        raise Unkeyable("async sharing is off")
                    # An object given by identity (a token provider, credentials, a
                    # callable key) can hold state tied to one event loop (anthropic's
                    # token cache, openai's workload identity): such a client is shared
                    # within its loop only. A caller's http_client is shared as given.
                    if loop_bound or holds_loop_state(key):
                        loop = running_loop()
                        if loop is None:
                            raise Unkeyable("async, no running event loop")
                        key = (loop, key)
            except Unkeyable as why:
                reason = str(why)
            except Exception:
                reason = "the key could not be built"
        if reason is not None:
            if reason is not COPYING:
                cache.count_bypass(counters, reason)
            return object_new(klass)
        # A hit, inline (the hot path): what get_or_build does first, without its call.
        with guard.lock:
            if not guard.busy:
                guard.busy = True
                try:
                    entry = find(key)
                    if (
                        entry is not None
                        and not entry.closed
                        and settings.active
                        and cls.__init__ is our_init  # type: ignore[misc]
                    ):
                        client = entry.client
                        if client is None:
                            client = entry.ref()
                        if client is not None:
                            entry.holders += 1
                            move_to_end(key)
                            counters.reused += 1
                            handed.stack.append(client)
                            return client
                finally:
                    guard.busy = False
        try:
            client = get_or_build(key, target, counters, loop, hand_off, build, klass, kwargs, key)
        except Reentrant:
            client = None
            reason = "built inside another construction of the same client"
        except Stale as stale:
            if kwargs.get("http_client") is None:  # a caller's is never closed (SPEC §6)
                discard(stale.client)
            client = None
            reason = "uninstalled during the construction"
        except BaseException:
            del args, kwargs, key  # never in the traceback's locals (SPEC §7)
            raise
        if client is None:
            reason = reason or "uninstalled, or __init__ replaced, during the construction"
            cache.count_bypass(counters, reason)
            return object_new(klass)
        return client

    __new__.__qualname__ = f"{cls.__qualname__}.__new__"
    # Libraries read the constructor's signature to decide which arguments to pass
    # (``inspect.signature(cls)`` looks at ``__new__`` first): keep the SDK's.
    __new__.__signature__ = inspect.signature(inner_init)  # type: ignore[attr-defined]
    __new__.__clientdedupe__ = True  # type: ignore[attr-defined]
    return __new__


def _called_by_copy(frame: FrameType) -> bool:
    """Whether the ``__new__`` running in ``frame`` was called by ``copy`` / ``copyreg``
    (its caller is None when called from C: a callback, ``atexit``, a bare thread)."""
    caller = frame.f_back
    return caller is not None and caller.f_globals.get("__name__") in _COPY_MODULES


def discard(client: object) -> None:
    """Close a client built for sharing that can no longer be handed out."""
    try:
        pool = vars(client).get("_client")
        stand_in = _pools.state_of(pool)
        if stand_in is not None:
            pool.close_soon()  # type: ignore[union-attr]
        elif inspect.iscoroutinefunction(getattr(type(client), "close", None)):
            _pools.close_soon(_pools.current_runner(), pool)
        else:
            client.close()  # type: ignore[attr-defined]
    except Exception:
        from ._log import logger

        logger().debug("closing a discarded %s failed", type(client).__qualname__, exc_info=True)


def is_ours(value: object) -> bool:
    """Whether a class attribute is a ``__new__`` made by ``make_new``."""
    function = getattr(value, "__func__", value)
    return getattr(function, "__clientdedupe__", False) is True
