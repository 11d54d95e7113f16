"""What happens on close, copy and mutation of a shared client (SPEC §6).

- ``close()`` (and so the end of ``with`` / ``async with``) lets one holder go; the
  connection pool is really closed only once nothing else uses it (``_ownership``).
- ``with_options()`` / ``copy()`` return a new client on every call, as without
  clientdedupe; the copy shares its parent's pool, and counts as one more user of it.
- A holder that assigns an attribute on a shared client, or on one of its resource
  objects (``client.chat.completions.create = wrapper``), retires that client from
  sharing: it stays with those who have it; the next construction builds a fresh one.

The class-level functions here are wrapt wrappers: ``(wrapped, instance, args, kwargs)``.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import weakref

from . import _ownership, _pools
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


async def _close_quietly(pool: object) -> None:
    if pool is not None:
        with contextlib.suppress(Exception):
            await pool.aclose()  # type: ignore[attr-defined]


def _let_go(client: object, *, is_async: bool) -> object:
    """What a holder's ``close()`` does instead of the SDK's when others use the pool
    (None; for an async client an awaitable, so that ``await client.close()`` works).
    An async client left with no holder closes its pool of the running loop at once,
    as the holder's own client would have closed without clientdedupe: that loop may
    end without finalising anything (a loop closed by hand), and a response its holder
    abandoned must not keep a connection. The next use in the loop makes a fresh one."""
    if not is_async:
        return None
    pool = None
    if _ownership.is_idle(client):
        state = _pools.state_of(getattr(client, "__dict__", {}).get("_client"))
        if state is not None:
            pool = state.take_here()  # now, before any other task of this loop runs
    return _close_quietly(pool)


def guarded_close(is_async: bool) -> Wrapper:
    """The wrapper of a client class's ``close()``: one holder letting go. The SDK's
    ``close()`` runs only when nothing else uses the pool."""

    def close(
        wrapped: Callable[..., object],
        instance: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> object:
        if instance is None or _ownership.release(instance) == _ownership.CLOSE:
            return wrapped(*args, **kwargs)
        _log_kept_open(instance)
        return _let_go(instance, is_async=is_async)

    return close


def _log_kept_open(instance: object) -> None:
    from ._log import logger

    logger().debug("close() on a shared %s: kept open for its other users", type(instance).__name__)


def keep_guarding() -> None:
    """Before the class patches go (``uninstall()``): give every client handed out, and
    every copy sharing its pool, a ``close()`` of its own that keeps counting holders,
    since the class's ``close`` is about to be the SDK's again."""
    for client in [*(s.ref() for s in _ownership.records()), *_ownership.copies()]:
        attributes = getattr(client, "__dict__", None)
        if attributes is None or "close" in attributes:
            continue
        is_async = inspect.iscoroutinefunction(getattr(type(client), "close", None))
        attributes["close"] = _instance_close(client, is_async=is_async)
        for name in ("copy", "with_options"):
            if callable(getattr(type(client), name, None)) and name not in attributes:
                attributes[name] = _instance_copy(client, name)


def _instance_close(client: object, *, is_async: bool) -> Callable[[], object]:
    ref = weakref.ref(client)  # the client's own attribute: no reference cycle

    def close() -> object:
        this = ref()
        if this is None:
            return _let_go(None, is_async=is_async)
        if _ownership.release(this) == _ownership.CLOSE:
            return type(this).close(this)  # type: ignore[attr-defined]
        return _let_go(this, is_async=is_async)

    return close


def _instance_copy(client: object, name: str) -> Callable[..., object]:
    """After ``uninstall()``: ``client.copy()`` / ``with_options()`` that keeps the copy
    from closing the pool it shares with the client's other users."""
    ref = weakref.ref(client)

    def copy(*args: object, **kwargs: object) -> object:
        this = ref()
        derived = getattr(type(this), name)(this, *args, **kwargs)
        owner = _ownership.owner_of(derived)
        if owner is not None:
            _ownership.add_copy(owner, derived)
            is_async = inspect.iscoroutinefunction(getattr(type(derived), "close", None))
            attributes = vars(derived)
            attributes.setdefault("close", _instance_close(derived, is_async=is_async))
            for alias in ("copy", "with_options"):
                attributes.setdefault(alias, _instance_copy(derived, alias))
        return derived

    return copy


def copy(
    wrapped: Callable[..., object],
    instance: object,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> object:
    """``with_options()`` / ``copy()``: the SDK builds the new client with the usual
    constructor, which must not hand back a shared one; a copy sharing a shared
    client's pool is one more user of it."""
    token = BYPASS.set(COPYING)
    try:
        derived = wrapped(*args, **kwargs)
    finally:
        BYPASS.reset(token)
    owner = _ownership.owner_of(derived)  # the shared client whose pool it shares
    if owner is not None:
        _ownership.add_copy(owner, derived)
    return derived


def _assigned_by(package: str) -> bool:
    """Whether the attribute assignment being hooked was made by ``package``'s own code
    (the SDK caching or refreshing its own state), rather than by a holder."""
    # Two frames up: the wrapper's caller (None when called from C, with no Python frame).
    frame: FrameType | None = sys._getframe()
    for _ in range(2):
        frame = frame.f_back if frame is not None else None
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
    shared = cache.retire(client)
    if shared is not None:
        from ._log import logger

        attribute = args[0] if args and isinstance(args[0], str) else "?"
        logger().info(
            "a holder changed %r on a shared %s [%s]: retired from sharing",
            attribute,
            shared.target.qualname,
            shared.fingerprint,
        )
