"""The cache that owns the shared clients: LRU-bounded, single-flight, fork-aware.

It never closes a client: dropping one (eviction, retirement, ``cache_clear()``,
``uninstall()``, a closed event loop) only forgets it, and the SDK's own finaliser closes
it once its last holder lets go (SPEC §6).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ._lifetime import guard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from ._targets import Target


class Counters:
    """What happened to the constructions of one class."""

    __slots__ = ("built", "bypassed", "evicted", "failed", "retired", "reused")

    def __init__(self) -> None:
        self.built = 0
        self.reused = 0
        self.failed = 0
        self.evicted = 0
        self.retired = 0
        #: reason → count
        self.bypassed: dict[str, int] = {}

    def bypass(self, reason: str) -> None:
        """Count one construction that was not deduplicated, and why."""
        self.bypassed[reason] = self.bypassed.get(reason, 0) + 1


class Entry:
    """One shared client."""

    __slots__ = ("client", "fingerprint", "key", "loop", "target")

    def __init__(self, key: Hashable, target: Target, client: object, loop: object) -> None:
        self.key = key
        self.target = target
        self.client = client
        #: The event loop an async client belongs to, or None.
        self.loop = loop
        self.fingerprint = ""


class Reentrant(Exception):
    """The same key is being built further up this thread's stack."""


class _Flight:
    __slots__ = ("done", "owner")

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.done = threading.Event()


class ClientCache:
    """Shared clients by key, least recently used dropped beyond ``max_clients``."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self.counters: dict[str, Counters] = {}
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._by_id: dict[int, Entry] = {}
        self._flights: dict[Hashable, _Flight] = {}

    def counters_for(self, target: Target) -> Counters:
        """The counters of ``target``, created on first use."""
        return self.counters.setdefault(target.qualname, Counters())

    def get_or_build(
        self,
        key: Hashable,
        target: Target,
        counters: Counters,
        loop: object,
        build: Callable[..., object],
        *build_args: object,
    ) -> object:
        """The client for ``key``: the shared one, or one built now by
        ``build(*build_args)`` (arguments rather than a closure: no allocation on a hit).

        Concurrent first constructions of one key build once (single flight): the other
        threads wait for it. If the build raises, nothing is cached, the exception
        propagates unchanged, and each waiter tries its own build.
        """
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    counters.reused += 1
                    return entry.client
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight()
                    break
                if flight.owner == threading.get_ident():
                    raise Reentrant
            flight.done.wait()
        try:
            client = build(*build_args)
        except BaseException:
            with self._lock:
                self._flights.pop(key, None)
                counters.failed += 1
            flight.done.set()
            raise
        try:
            self._keep(Entry(key, target, client, loop), counters)
        except Exception:  # clientdedupe never fails a construction that succeeded
            from ._log import logger

            logger().warning("could not share a %s", target.qualname, exc_info=True)
        finally:
            # Whatever happened, the waiters must not wait forever.
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
        return client

    def _keep(self, entry: Entry, counters: Counters) -> None:
        guard(entry.client)
        with self._lock:
            counters.built += 1
            self._entries[entry.key] = entry
            self._by_id[id(entry.client)] = entry
            self._drop_closed_loops()
            while len(self._entries) > self.max_clients:
                _, oldest = self._entries.popitem(last=False)
                self._forget(oldest)
                self.counters_for(oldest.target).evicted += 1
        _describe(entry)

    def count_bypass(self, counters: Counters, reason: str) -> None:
        """Count one construction that was built normally, and why."""
        with self._lock:
            counters.bypass(reason)

    def is_shared(self, client: object) -> bool:
        """Whether ``client`` is currently handed out by the cache."""
        entry = self._by_id.get(id(client))
        return entry is not None and entry.client is client

    def retire(self, client: object) -> Entry | None:
        """Stop sharing ``client``: later constructions build a fresh one."""
        with self._lock:
            entry = self._by_id.get(id(client))
            if entry is None or entry.client is not client:
                return None
            del self._entries[entry.key]
            self._forget(entry)
            self.counters_for(entry.target).retired += 1
            return entry

    def clear(self) -> None:
        """Forget every shared client (holders keep theirs)."""
        with self._lock:
            self._entries.clear()
            self._by_id.clear()

    def restore(self, entries: list[Entry]) -> None:
        """Replace the content of the cache by ``entries`` (from ``entries()``)."""
        with self._lock:
            self._entries.clear()
            self._by_id.clear()
            for entry in entries:
                self._entries[entry.key] = entry
                self._by_id[id(entry.client)] = entry

    def entries(self) -> list[Entry]:
        """The live entries, oldest first, without those of closed event loops."""
        with self._lock:
            self._drop_closed_loops()
            return list(self._entries.values())

    def after_fork_in_child(self) -> None:
        """Forget everything from the parent, locks included: the child must never
        reuse a client whose connections it shares with its parent."""
        self._reset()

    def _forget(self, entry: Entry) -> None:
        self._by_id.pop(id(entry.client), None)

    def _drop_closed_loops(self) -> None:
        # Lazily, under the lock: an event loop gives no notice when it is closed.
        closed = [
            key
            for key, entry in self._entries.items()
            if entry.loop is not None and entry.loop.is_closed()  # type: ignore[attr-defined]
        ]
        for key in closed:
            self._forget(self._entries.pop(key))


def _describe(entry: Entry) -> None:
    from ._fingerprint import fingerprint
    from ._log import logger

    entry.fingerprint = fingerprint(entry.key)
    logger().debug("built a shared %s [%s]", entry.target.qualname, entry.fingerprint)
