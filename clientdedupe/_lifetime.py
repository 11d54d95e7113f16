"""What happens on close, copy and mutation of a shared client (SPEC §6).

- ``close()`` (and so ``with`` / ``async with``) on a client the cache has ever held does
  not close its connection pool: other holders may be using it. The same goes for the
  clients made from it by ``with_options()`` / ``copy()``, which share that pool. The pool
  is closed by the SDK's own finaliser once nobody holds it.
- ``with_options()`` / ``copy()`` return a new client on every call, as without
  clientdedupe.
- A holder that assigns an attribute on a shared client, or on one of its resource
  objects (``client.chat.completions.create = wrapper``), retires that client from
  sharing: it stays with those who have it; the next construction builds a fresh one.

Every function here is a wrapt wrapper: ``(wrapped, instance, args, kwargs)``.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import weakref

from ._context import BYPASS

#: The bypass reason while an SDK's copy()/with_options() builds its new client: not a
#: construction of the user's, so not counted either.
COPYING = "with_options()/copy()"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from ._cache import ClientCache

    Wrapper = Callable[
        [Callable[..., object], object, tuple[object, ...], dict[str, object]], object
    ]

# The connection pools (the SDK's ``_client`` attribute) of every client the cache has
# held, even if since evicted or retired: closing any client that uses one is a no-op.
# Never cleared, because a retired client may still have several holders.
_guarded: weakref.WeakSet[object] = weakref.WeakSet()
# The same, by id, for objects that cannot be weakly referenced or hashed (not the
# SDKs'): an id reused later only ever makes a close() a no-op, never a wrong close.
_guarded_ids: set[int] = set()


# The clients themselves (and the with_options() copies sharing their pools), so that
# uninstall() can keep guarding them once the class patches are gone (SPEC §3.2, §6).
_held: weakref.WeakSet[object] = weakref.WeakSet()


def _pool(client: object) -> object:
    return getattr(client, "__dict__", {}).get("_client", client)


def guard(client: object) -> None:
    """Protect ``client``'s connection pool from ``close()`` calls of its holders."""
    pool = _pool(client)
    try:
        _guarded.add(pool)
    except TypeError:
        _guarded_ids.add(id(pool))
    with contextlib.suppress(TypeError):
        _held.add(client)


def keep_guarding() -> None:
    """Before the class patches go: give every client that was shared, and still
    exists, a ``close()`` of its own that keeps its pool open for its other holders."""
    for client in list(_held):
        attributes = getattr(client, "__dict__", None)
        if attributes is None or "close" in attributes:
            continue
        is_async = inspect.iscoroutinefunction(type(client).close)  # type: ignore[attr-defined]
        attributes["close"] = _already_closed if is_async else _closed


def is_guarded(client: object) -> bool:
    """Whether closing ``client`` would close a pool the cache has shared."""
    pool = _pool(client)
    try:
        return pool in _guarded
    except TypeError:
        return id(pool) in _guarded_ids


def _closed() -> None:
    return None


async def _already_closed() -> None:
    return None


def guarded_close(is_async: bool) -> Wrapper:
    """The wrapper of a client class's ``close()``: a no-op on a guarded client (for an
    async client, an awaitable no-op, so that ``await client.close()`` still works)."""
    kept_open = _already_closed if is_async else _closed

    def close(
        wrapped: Callable[..., object],
        instance: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> object:
        if instance is not None and is_guarded(instance):
            _log_kept_open(instance)
            return kept_open()
        return wrapped(*args, **kwargs)

    return close


def _log_kept_open(instance: object) -> None:
    from ._log import logger

    logger().debug(
        "close() on a shared %s: kept open for its other holders", type(instance).__name__
    )


def copy(
    wrapped: Callable[..., object],
    instance: object,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> object:
    """``with_options()`` / ``copy()``: the SDK builds the new client with the usual
    constructor, which must not hand back a shared one."""
    token = BYPASS.set(COPYING)
    try:
        derived = wrapped(*args, **kwargs)
    finally:
        BYPASS.reset(token)
    if instance is not None and _pool(derived) is _pool(instance) and is_guarded(instance):
        with contextlib.suppress(TypeError):
            _held.add(derived)
    return derived


def _assigned_by(package: str) -> bool:
    """Whether the attribute assignment being hooked was made by ``package``'s own code
    (the SDK caching or refreshing its own state), rather than by a holder."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not (module.startswith("wrapt") or module.startswith("clientdedupe.")):
            return module == package or module.startswith(package + ".")
        frame = frame.f_back
    return False


def retire_on_change(cache: ClientCache, package: str, *, on_resource: bool) -> Wrapper:
    """``__setattr__`` / ``__delattr__`` of a client class, or of the SDK's resource base
    classes (``on_resource``): a holder's change on a shared client, or on one of its
    resources (``client.chat.completions.create = ...``, as ``instructor.patch`` does),
    retires the client."""

    def on_change(
        wrapped: Callable[..., object],
        instance: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> object:
        result = wrapped(*args, **kwargs)
        client = getattr(instance, "__dict__", {}).get("_client") if on_resource else instance
        if client is not None and cache.is_shared(client) and not _assigned_by(package):
            _retire(cache, client, args)
        return result

    return on_change


def _retire(cache: ClientCache, client: object, args: tuple[object, ...]) -> None:
    entry = cache.retire(client)
    if entry is not None:
        from ._log import logger

        attribute = args[0] if args and isinstance(args[0], str) else "?"
        logger().info(
            "a holder changed %r on a shared %s [%s]: retired from sharing",
            attribute,
            entry.target.qualname,
            entry.fingerprint,
        )
