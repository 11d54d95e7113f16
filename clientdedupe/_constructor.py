"""The interception of one client class's construction: its ``__new__`` and ``__init__``.

``Cls(**kwargs)`` runs ``Cls.__new__`` then, on what it returned, ``Cls.__init__``. The
patched ``__new__`` hands back the shared instance (building it on a miss, with the
original ``__init__``); the patched ``__init__`` then skips re-initialising it. Patching
the class itself, rather than replacing the module attribute, keeps every name bound
before ``install()`` (``from openai import OpenAI``, ``openai.Client``) working, and
``type(client) is Cls`` true.

This is the hot path of every construction: a cache hit must cost microseconds.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading

from ._cache import Reentrant
from ._context import BYPASS
from ._key import KeyBuilder, Unkeyable, detach
from ._lifetime import COPYING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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


class _Handed(threading.local):
    """Instances ``__new__`` handed out already initialised, per thread."""

    def __init__(self) -> None:
        self.stack: list[object] = []


_handed = _Handed()


def make_init(original: Callable[..., object]) -> Callable[..., None]:
    """The ``__init__`` that skips the instance ``__new__`` just handed out built.

    A plain function rather than a wrapt wrapper: it is on the hot path, and a wrapt
    ``FunctionWrapper`` binds a new wrapper object on every call (measured: 0.6 µs of a
    cache hit). It carries the original's signature, name and ``__wrapped__``, so
    ``inspect.signature`` and ``inspect.getfullargspec`` see the SDK's.
    """
    handed = _handed

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        stack = handed.stack
        if stack and stack[-1] is self:
            stack.pop()
            return
        original(self, *args, **kwargs)

    functools.update_wrapper(__init__, original)
    __init__.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
    return __init__


def make_new(
    target: Target,
    cls: type,
    original_init: Callable[..., object],
    cache: ClientCache,
    settings: Settings,
    *,
    is_async: bool,
) -> Callable[..., object]:
    """The ``__new__`` that deduplicates the constructions of exactly ``cls``."""
    build_key = KeyBuilder(target, original_init).build
    counters = cache.counters_for(target)
    get_or_build = cache.get_or_build
    object_new = object.__new__
    bypass_reason = BYPASS.get
    handed = _handed
    running_loop: Callable[[], object] = lambda: None  # noqa: E731
    if is_async:
        import asyncio

        running_loop = asyncio._get_running_loop

    def build(klass: type, kwargs: dict[str, object]) -> object:
        client: object = object_new(klass)
        original_init(client, **{name: detach(value) for name, value in kwargs.items()})
        return client

    def __new__(klass: type, *args: object, **kwargs: object) -> object:
        if klass is not cls or not settings.active:
            # Subclasses are constructed untouched, and so is everything after uninstall().
            return object_new(klass)
        reason = bypass_reason()
        loop = None
        if reason is None:
            if (
                not args
                and not kwargs
                and sys._getframe(1).f_globals.get("__name__") in _COPY_MODULES
            ):
                return object_new(klass)
            try:
                key = build_key(args, kwargs)
                if is_async:
                    mode = settings.async_mode
                    if mode == "off":
                        raise Unkeyable("async sharing is off")
                    loop = running_loop()
                    if loop is None and mode == "loop":
                        raise Unkeyable("async, no running event loop")
            except Unkeyable as why:
                reason = str(why)
            except Exception:
                reason = "the key could not be built"
        if reason is not None:
            if reason is not COPYING:
                cache.count_bypass(counters, reason)
            return object_new(klass)

        try:
            client = get_or_build((target, loop, key), target, counters, loop, build, klass, kwargs)
        except Reentrant:
            cache.count_bypass(counters, "nested construction of the same client")
            return object_new(klass)
        handed.stack.append(client)
        return client

    __new__.__qualname__ = f"{cls.__qualname__}.__new__"
    # Libraries read the constructor's signature to decide which arguments to pass
    # (``inspect.signature(cls)`` looks at ``__new__`` first): keep the SDK's.
    __new__.__signature__ = inspect.signature(original_init)  # type: ignore[attr-defined]
    __new__.__clientdedupe__ = True  # type: ignore[attr-defined]
    return __new__


def is_ours(value: object) -> bool:
    """Whether a class attribute is a ``__new__`` made by ``make_new``."""
    function = getattr(value, "__func__", value)
    return getattr(function, "__clientdedupe__", False) is True
