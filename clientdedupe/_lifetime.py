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

import inspect
import sys
import weakref

from . import _ownership
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


def _pool(client: object) -> object:
    return getattr(client, "__dict__", {}).get("_client", client)


def _kept_open() -> None:
    return None


async def _kept_open_async() -> None:
    return None


def guarded_close(is_async: bool) -> Wrapper:
    """The wrapper of a client class's ``close()``: one holder letting go. The SDK's
    ``close()`` runs only when nothing else uses the pool (for an async client, the
    holder still gets an awaitable, so that ``await client.close()`` works)."""
    kept_open = _kept_open_async if is_async else _kept_open

    def close(
        wrapped: Callable[..., object],
        instance: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> object:
        if instance is None or _ownership.release(instance):
            return wrapped(*args, **kwargs)
        _log_kept_open(instance)
        return kept_open()

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


def _instance_close(client: object, *, is_async: bool) -> Callable[[], object]:
    ref = weakref.ref(client)  # the client's own attribute: no reference cycle

    def close() -> object:
        this = ref()
        if this is not None and _ownership.release(this):
            return type(this).close(this)  # type: ignore[attr-defined]
        return None

    async def aclose() -> None:
        this = ref()
        if this is not None and _ownership.release(this):
            await type(this).close(this)  # type: ignore[attr-defined]

    return aclose if is_async else close


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
    if instance is not None and _pool(derived) is _pool(instance):
        owner = _ownership.owner_of(instance)
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
