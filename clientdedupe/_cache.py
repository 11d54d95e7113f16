"""The cache of shared clients: LRU-bounded, single-flight, fork-aware (SPEC §6).

It hands out one client per key and counts its holders (``_ownership``). When it drops a
client (eviction, retirement, ``cache_clear()``, ``uninstall()``, the end of its event
loop) that no holder still has, it closes it at once; one still held is closed later by
its last holder's ``close()``, or by the SDK's finaliser. Entries whose key holds an
object by identity are held weakly: nothing keeps such a client alive for a
construction that can never come once its holders are gone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from . import _ownership, _pools
from ._ownership import GUARD, Reentrant, Shared

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from ._targets import Target


class Counters:
    """What happened to the constructions of one class."""

    __slots__ = ("built", "bypassed", "closed", "evicted", "failed", "retired", "reused")

    def __init__(self) -> None:
        self.built = 0
        self.reused = 0
        self.failed = 0
        self.evicted = 0
        self.retired = 0
        #: shared clients really closed: by their last holder, or dropped while idle
        self.closed = 0
        #: reason → count
        self.bypassed: dict[str, int] = {}

    def bypass(self, reason: str) -> None:
        """Count one construction that was not deduplicated, and why."""
        self.bypassed[reason] = self.bypassed.get(reason, 0) + 1


class Built:
    """What ``build`` made: the client, and how the cache may hold it."""

    __slots__ = ("client", "is_async", "owns_pool", "unshared", "weak")

    def __init__(self, client: object, *, is_async: bool, weak: bool, owns_pool: bool) -> None:
        self.client = client
        self.is_async = is_async
        #: Held weakly: its key holds an object by identity.
        self.weak = weak
        #: False when built on the caller's ``http_client`` (see ``Shared.owns_pool``).
        self.owns_pool = owns_pool
        #: Why it must not be shared after all, or None.
        self.unshared: str | None = None


class Stale(Exception):
    """The client was built, but may no longer be handed out: clientdedupe was
    uninstalled (or the class's ``__init__`` replaced) while it was being built."""

    def __init__(self, client: object) -> None:
        super().__init__("built while clientdedupe was being uninstalled")
        self.client = client


class _Flight:
    __slots__ = ("done", "owner")

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.done = threading.Event()


class ClientCache(_ownership.Cache):
    """Shared clients by key, least recently used dropped beyond ``max_clients``."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self.counters: dict[str, Counters] = {}
        self.by_key: OrderedDict[Hashable, Shared] = OrderedDict()
        #: Bumped by clear() and after a fork: a build that started before is not cached.
        self._generation = 0
        self._reset()

    def _reset(self) -> None:
        #: The shared clients, least recently used first. Read and changed only with
        #: ``GUARD`` held (the constructor reads it directly on the hot path, and keeps
        #: its methods: it is cleared, never replaced).
        self.by_key.clear()
        self._flights: dict[Hashable, _Flight] = {}
        #: Records of weakly held clients that died: dropped at the next miss.
        self.dead: list[Shared] = []
        # A build split by a fork goes on in the child: its client began in the parent.
        self._generation += 1

    def counters_for(self, target: Target) -> Counters:
        """The counters of ``target``, created on first use."""
        return self.counters.setdefault(target.qualname, Counters())

    def get_or_build(
        self,
        key: Hashable,
        target: Target,
        counters: Counters,
        loop: object,
        hand_off: Callable[[object], bool],
        build: Callable[..., Built],
        *build_args: object,
    ) -> object:
        """The client for ``key``: the shared one, or one built now by
        ``build(*build_args)`` (arguments rather than a closure: no allocation on a hit).
        Either way one more holder. A build that turns out ``unshared`` is handed to
        this construction alone, counted as bypassed.

        ``hand_off(client)``, called under the lock, returns False if the client may
        no longer be handed out (then ``Stale`` for a client built here, None for a
        shared one). Concurrent first constructions of one key build once: the others
        wait. If the build raises, nothing is cached, the exception propagates
        unchanged, and each waiter tries its own build. ``Reentrant`` if this thread
        is building the same key further up its stack, or is inside the lock.
        """
        guard = GUARD
        while True:
            with guard:
                entry = self.by_key.get(key)
                if entry is not None:
                    client = entry.get()
                    if client is not None:
                        if not hand_off(client):
                            return None
                        entry.holders += 1
                        self.by_key.move_to_end(key)
                        counters.reused += 1
                        return client
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight()
                    generation = self._generation
                    break
                if flight.owner == threading.get_ident():
                    raise Reentrant
            flight.done.wait()
        try:
            built = build(*build_args)
        except BaseException:
            with guard:
                self._flights.pop(key, None)
                counters.failed += 1
            flight.done.set()
            del key, build_args  # never in the traceback's locals (SPEC §7)
            raise
        try:
            return self._share(built, key, target, counters, loop, hand_off, generation)
        finally:
            # Whatever happened, the waiters must not wait forever. Only this thread
            # ever removes its own flight: no lock is needed for that one operation.
            self._flights.pop(key, None)
            flight.done.set()

    def _share(
        self,
        built: Built,
        key: Hashable,
        target: Target,
        counters: Counters,
        loop: object,
        hand_off: Callable[[object], bool],
        generation: int,
    ) -> object:
        """Keep a client just built and hand it to its first holder. Never fails a
        construction that succeeded: if the bookkeeping fails before the hand-off,
        ``Stale`` (the caller constructs normally), after it, the client is returned."""
        client = built.client
        victims: list[Shared] = []
        handed = False
        try:
            with GUARD:
                handed = hand_off(client)
                if not handed:
                    raise Stale(client)
                if built.unshared is not None:
                    counters.bypass(built.unshared)
                    return client
                shared = Shared(
                    self,
                    key,
                    target,
                    client,
                    loop=loop,
                    is_async=built.is_async,
                    weak=built.weak,
                    owns_pool=built.owns_pool,
                )
                counters.built += 1
                _ownership.register(shared)
                if generation == self._generation:
                    # Not after a cache_clear() that came during the build: its holder
                    # has it, and closes it for good.
                    victims = self._keep_locked(shared)
            _describe(shared)
            if loop is not None:
                _pools.on_loop_end(self.finalise_loop)
        except Stale:
            raise
        except Exception:
            from ._log import logger

            logger().warning("could not share a %s", target.qualname, exc_info=True)
            if not handed:
                raise Stale(client) from None
        close_all(victims)
        return client

    def _keep_locked(self, shared: Shared) -> list[Shared]:
        """Insert ``shared``; return the clients to close after the lock is released."""
        shared.hold()
        previous = self.by_key.get(shared.key)
        victims = self._collect_locked()
        if previous is not None and previous is not shared:
            self._drop_locked(previous, victims)
        self.by_key[shared.key] = shared
        while len(self.by_key) > self.max_clients:
            _, oldest = self.by_key.popitem(last=False)
            self.counters_for(oldest.target).evicted += 1
            self._drop_locked(oldest, victims)
        return victims

    def _drop_locked(self, shared: Shared, victims: list[Shared]) -> None:
        if self.by_key.get(shared.key) is shared:
            del self.by_key[shared.key]
        if _ownership.drop_locked(shared):
            self.counters_for(shared.target).closed += 1
            victims.append(shared)

    def _collect_locked(self) -> list[Shared]:
        """Drop the dead weak entries and those of closed event loops."""
        victims: list[Shared] = []
        while self.dead:
            dead = self.dead.pop()
            if self.by_key.get(dead.key) is dead:
                del self.by_key[dead.key]
            dead.let_go()
        closed = [
            shared
            for shared in self.by_key.values()
            if getattr(
                shared.loop, "is_closed", bool
            )()  # trio runs say nothing: their keeper drops them
        ]
        for shared in closed:
            self._drop_locked(shared, victims)
        return victims

    def closing_locked(self, shared: Shared) -> None:
        """``shared`` is being closed for good (lock held): forget it, count it."""
        if self.by_key.get(shared.key) is shared:
            del self.by_key[shared.key]
        shared.let_go()
        self.counters_for(shared.target).closed += 1

    def count_bypass(self, counters: Counters, reason: str) -> None:
        """Count one construction that was built normally, and why."""
        try:
            with GUARD:
                counters.bypass(reason)
        except Reentrant:
            pass

    def is_shared(self, client: object) -> bool:
        """Whether ``client`` is handed out by this cache now."""
        shared = _ownership.record_of(client)
        return shared is not None and shared.cached and shared.cache is self

    def retire(self, client: object) -> Shared | None:
        """Stop sharing ``client``: later constructions build a fresh one."""
        victims: list[Shared] = []
        with GUARD:
            shared = _ownership.record_of(client)
            if shared is None or not shared.cached or shared.cache is not self:
                return None
            self.counters_for(shared.target).retired += 1
            self._drop_locked(shared, victims)
        close_all(victims)
        return shared

    def clear(self) -> None:
        """Forget every shared client; close those no holder has."""
        victims: list[Shared] = []
        with GUARD:
            self._generation += 1
            for shared in list(self.by_key.values()):
                self._drop_locked(shared, victims)
            victims.extend(self._collect_locked())
        close_all(victims)

    async def finalise_loop(self, loop: object) -> None:
        """``loop`` is ending: drop its clients, closing inside it those no holder has."""
        victims: list[Shared] = []
        with GUARD:
            for shared in [s for s in self.by_key.values() if s.loop is loop]:
                self._drop_locked(shared, victims)
        for shared in victims:
            client = shared.ref()
            if client is not None:
                await client.close()  # type: ignore[attr-defined]

    def entries(self) -> list[Shared]:
        """The live entries, oldest first."""
        with GUARD:
            victims = self._collect_locked()
            entries = list(self.by_key.values())
        close_all(victims)
        return entries

    def after_fork_in_child(self) -> None:
        """Forget everything from the parent: the child must never reuse a client
        whose connections it shares with its parent."""
        self._reset()


def close_all(victims: list[Shared]) -> None:
    """Really close each of ``victims`` (never with the lock held: a close may block)."""
    for shared in victims:
        client = shared.ref()
        if client is None:
            continue
        try:
            if not shared.is_async:
                client.close()  # type: ignore[attr-defined]
            else:
                pool = vars(client).get("_client")
                if _pools.state_of(pool) is not None:
                    pool.close_soon()  # type: ignore[union-attr]
                else:
                    _pools.close_soon(shared.loop, pool)
        except Exception:
            from ._log import logger

            logger().debug("closing an idle %s failed", shared.target.qualname, exc_info=True)
        else:
            _log_closed(shared)


def _log_closed(shared: Shared) -> None:
    from ._log import logger

    logger().debug("closed an idle %s [%s]", shared.target.qualname, shared.fingerprint)


def _describe(shared: Shared) -> None:
    from ._fingerprint import fingerprint
    from ._log import logger

    shared.fingerprint = fingerprint(shared.key)
    logger().debug("built a shared %s [%s]", shared.target.qualname, shared.fingerprint)
