"""Who holds a shared client, and when it is really closed (SPEC §6).

Every client the cache hands out has a ``Shared`` record, kept for as long as the client
lives (after eviction, retirement or ``uninstall()`` too). Each construction that returns
the client adds a holder; each ``close()`` lets one go. A client is really closed only
when nothing uses its connection pool any more: no holder, no ``with_options()`` /
``copy()`` client still open, and not kept by the cache (an idle client is kept for the
next construction of its key, and closed at once when the cache drops it).

Records are keyed by ``id()`` and cleaned up by weak-reference callbacks, so that no
registry keeps a client alive. The callbacks never take the lock (the garbage collector
can run them anywhere, even while this thread holds it): they only mark.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._targets import Target


class Reentrant(Exception):
    """This thread is already inside clientdedupe's critical section further up its
    stack (a signal handler, a garbage-collector callback) or building the same key."""


class Guard:
    """The lock of the cache and of these records, one for the process.

    Re-entrant, so that a signal handler interrupting this thread inside the lock does
    not wait for itself forever; ``busy`` tells it that the section it interrupted is
    unfinished, and it must leave the records alone (``Reentrant``).
    """

    __slots__ = ("busy", "lock")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.busy = False

    def __enter__(self) -> None:
        self.lock.acquire()
        if self.busy:
            self.lock.release()
            raise Reentrant
        self.busy = True

    def __exit__(self, *exc_info: object) -> None:
        self.busy = False
        self.lock.release()


GUARD = Guard()


class Shared:
    """One client the cache shares, or has shared."""

    __slots__ = (
        "cache",
        "cached",
        "client",
        "client_id",
        "closed",
        "copies",
        "fingerprint",
        "holders",
        "is_async",
        "key",
        "loop",
        "owns_pool",
        "ref",
        "target",
        "weak",
    )

    def __init__(
        self,
        cache: Cache,
        key: Hashable,
        target: Target,
        client: object,
        *,
        loop: object,
        is_async: bool,
        weak: bool,
        owns_pool: bool,
    ) -> None:
        self.cache = cache
        self.key = key
        self.target = target
        #: The event loop the client is bound to (``async_mode="loop"``), or None.
        self.loop = loop
        self.is_async = is_async
        #: Held weakly by the cache: its key holds an object by identity (an
        #: ``http_client``, a callable key), so once its holders drop it no construction
        #: can ask for it again.
        self.weak = weak
        #: False when built on the caller's ``http_client``: closing the client closes
        #: that pool, whoever else uses it, as without clientdedupe; so its last holder
        #: closes it at once, rather than leave it idle.
        self.owns_pool = owns_pool
        #: The client itself while the cache holds it strongly (see ``hold``), else None.
        self.client: object | None = None
        self.client_id = id(client)
        self.ref = weakref.ref(client, self._died)
        self.holders = 1  # the construction that built it
        self.cached = False
        self.closed = False
        #: ids of the open with_options()/copy() clients sharing its pool
        self.copies: set[int] = set()
        self.fingerprint = ""

    def hold(self) -> None:
        """The cache keeps this client: strongly, unless ``weak``."""
        self.cached = True
        self.client = None if self.weak else self.ref()

    def let_go(self) -> None:
        """The cache no longer keeps this client: only its holders do."""
        self.cached = False
        self.client = None

    def get(self) -> object | None:
        """The client, unless it is gone or closed."""
        if self.closed:
            return None
        return self.client if self.client is not None else self.ref()

    def _died(self, _: object) -> None:
        # Garbage-collector callback: never take the lock here, only mark.
        if _records.get(self.client_id) is self:
            _records.pop(self.client_id, None)
        if self.cached:
            self.cache.dead.append(self)

    def __repr__(self) -> str:
        # Never the key: it holds argument values.
        return f"<shared {self.target.qualname} [{self.fingerprint}]>"


class Cache:
    """What a record needs of the cache that handed it out."""

    dead: list[Shared]

    def closing_locked(self, shared: Shared) -> None:
        """``shared`` is being closed for good: forget it if held, count it (lock held)."""
        raise NotImplementedError


#: id(client) → its record, for every client the cache has handed out and that lives.
_records: dict[int, Shared] = {}
#: id(copy) → (the copy, weakly; the record of the client whose pool it shares).
_copies: dict[int, tuple[weakref.ref[object], Shared]] = {}
#: id(pool) → (the pool, weakly; the record of the shared client that uses it).
_pools: dict[int, tuple[weakref.ref[object], Shared]] = {}


def register(shared: Shared) -> None:
    """Keep the record of a client the cache just built, and of its pool (the lock is
    held): any other client found using that pool (``copy.copy(client)`` shares it)
    never closes it under the shared client's users."""
    _records[shared.client_id] = shared
    client = shared.ref()
    pool = getattr(client, "__dict__", {}).get("_client")
    if pool is None:
        return
    pool_id = id(pool)

    def died(_: object) -> None:
        found = _pools.get(pool_id)
        if found is not None and found[0] is ref:
            _pools.pop(pool_id, None)

    try:
        ref = weakref.ref(pool, died)
    except TypeError:
        return
    _pools[pool_id] = (ref, shared)


def record_of(client: object) -> Shared | None:
    """The record of ``client`` if the cache has ever handed it out."""
    shared = _records.get(id(client))
    if shared is not None and shared.ref() is client:
        return shared
    return None


def owner_of(client: object) -> Shared | None:
    """The record of the shared client whose connection pool ``client`` uses: its own,
    or that of the client it is a ``with_options()``, ``copy()`` or ``copy.copy()`` of
    (a copy of a copy too), or None."""
    pool = getattr(client, "__dict__", {}).get("_client")
    found = _pools.get(id(pool)) if pool is not None else None
    if found is not None and found[0]() is pool:
        return found[1]
    return None


def add_copy(shared: Shared, copy: object) -> None:
    """``copy`` (from ``with_options()`` / ``copy()``) shares ``shared``'s pool."""
    copy_id = id(copy)

    def died(_: object) -> None:
        found = _copies.get(copy_id)
        if found is not None and found[0] is ref:
            _copies.pop(copy_id, None)
            shared.copies.discard(copy_id)

    try:
        ref = weakref.ref(copy, died)
    except TypeError:
        return
    try:
        with GUARD:
            _copies[copy_id] = (ref, shared)
            shared.copies.add(copy_id)
    except Reentrant:
        # A signal handler inside our own section: both are single, atomic operations,
        # and recording the copy matters more than the lock (unrecorded, its close()
        # would close the shared pool).
        _copies[copy_id] = (ref, shared)
        shared.copies.add(copy_id)


#: What ``release`` decides.
CLOSE = "close"  # nothing else uses the pool: close it
KEEP = "keep"  # others use it: leave it open
IDLE = "idle"  # its last holder let go: the cache keeps it for the next construction


def release(client: object) -> str:
    """``client.close()`` was called: one holder lets go (each call counts once).
    ``CLOSE`` if the client must really close now, ``KEEP`` if others still use its
    pool, ``IDLE`` if the cache keeps it, unused, for the next construction."""
    try:
        with GUARD:
            return _release_locked(client)
    except Reentrant:
        return KEEP  # inside our own critical section: keeping it open is always safe


def _release_locked(client: object) -> str:
    shared = record_of(client)
    if shared is not None:
        if shared.closed:
            return CLOSE  # closing again is the SDK's business (a no-op)
        if shared.holders:
            shared.holders -= 1
        if shared.holders or shared.copies:
            return KEEP
        if shared.cached and shared.owns_pool:
            return IDLE
        return _close_locked(shared)
    found = _copies.get(id(client))
    if found is not None and found[0]() is client:
        # Still recorded until it dies (its weakref callback): closed again after
        # uninstall(), or copied, it must still be known as a user of this pool.
        shared = found[1]
        shared.copies.discard(id(client))
    else:
        user_of = owner_of(client)
        if user_of is None:
            return CLOSE  # not ours: close as usual
        shared = user_of
    if shared.closed:
        return CLOSE
    if shared.holders or shared.copies or (shared.cached and shared.owns_pool):
        return KEEP
    # The last user of the pool: the client it was copied from is no longer held.
    return _close_locked(shared)


def _close_locked(shared: Shared) -> str:
    shared.cache.closing_locked(shared)
    shared.closed = True
    return CLOSE


def is_idle(client: object) -> bool:
    """Whether ``client`` is shared, open, and has no holder and no open copy."""
    shared = record_of(client)
    return shared is not None and not (shared.closed or shared.holders or shared.copies)


def drop_locked(shared: Shared) -> bool:
    """The cache lets go of ``shared`` (the lock is held). True if it is idle, and so
    must be closed now by the caller (outside the lock)."""
    shared.let_go()
    if shared.holders or shared.copies or shared.closed or shared.ref() is None:
        return False
    shared.closed = True
    return True


def records() -> list[Shared]:
    """Every record alive."""
    return list(_records.values())


def copies() -> list[object]:
    """Every copy alive (closed ones too)."""
    return [copy for copy in (ref() for ref, _ in list(_copies.values())) if copy is not None]


def after_fork_in_child() -> None:
    """Forget the parent's clients (their sockets are the parent's too), and the lock,
    which another thread of the parent may have held at the fork."""
    GUARD.lock = threading.RLock()
    GUARD.busy = False
    _records.clear()
    _copies.clear()
    _pools.clear()
