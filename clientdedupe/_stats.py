"""``clientdedupe.stats()`` and the exit report: counts and fingerprints, never values."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._runtime import Runtime


def snapshot(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Per class: what happened to its constructions, and its live shared clients."""
    cache = runtime.cache
    live: dict[str, list[str]] = {}
    for entry in cache.entries():
        live.setdefault(entry.target.qualname, []).append(entry.fingerprint)
    result: dict[str, dict[str, Any]] = {}
    for qualname, counters in sorted(cache.counters.items()):
        bypassed = sum(counters.bypassed.values())
        clients = live.get(qualname, [])
        result[qualname] = {
            "constructions": counters.built + counters.reused + bypassed + counters.failed,
            "built": counters.built,
            "reused": counters.reused,
            "bypassed": bypassed,
            "bypass_reasons": dict(counters.bypassed),
            "failed": counters.failed,
            "evicted": counters.evicted,
            "retired": counters.retired,
            "live": len(clients),
            "clients": clients,
        }
    return result
