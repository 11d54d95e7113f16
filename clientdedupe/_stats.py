"""``clientdedupe.stats()`` and the exit report: counts and fingerprints, never values."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._ownership import Shared
    from ._runtime import Runtime


def snapshot(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Per class: what happened to its constructions, and its live shared clients."""
    from ._pools import open_pools, state_of

    cache = runtime.cache
    pools = open_pools()
    live: dict[str, list[Shared]] = {}
    for shared in cache.entries():
        live.setdefault(shared.target.qualname, []).append(shared)
    result: dict[str, dict[str, Any]] = {}
    for qualname, counters in sorted(cache.counters.items()):
        bypassed = sum(counters.bypassed.values())
        entries = live.get(qualname, [])
        loop_pools = 0
        for shared in entries:
            state = state_of(getattr(shared.get(), "__dict__", {}).get("_client"))
            loop_pools += pools.get(id(state), 0)
        result[qualname] = {
            "constructions": counters.built + counters.reused + bypassed + counters.failed,
            "built": counters.built,
            "reused": counters.reused,
            "bypassed": bypassed,
            "bypass_reasons": dict(counters.bypassed),
            "failed": counters.failed,
            "evicted": counters.evicted,
            "retired": counters.retired,
            "closed": counters.closed,
            "live": len(entries),
            "holders": sum(shared.holders for shared in entries),
            "idle": sum(1 for shared in entries if not shared.holders),
            "loop_pools": loop_pools,
            "clients": [shared.fingerprint for shared in entries],
        }
    return result


def report(counts_by_class: dict[str, dict[str, Any]], state: str) -> str:
    """The exit report: one line per class with constructions (constructions, built,
    reused, bypassed with the main reason, evicted, retired), or one line saying that
    there was none, and ``state`` (active, or why not). Contains no argument value."""
    lines = []
    for qualname, counts in counts_by_class.items():
        if not counts["constructions"]:
            continue
        reasons = counts["bypass_reasons"]
        main_reason = f" (mostly: {max(reasons, key=reasons.get)})" if reasons else ""
        lines.append(
            f"clientdedupe: {qualname}: {counts['constructions']} constructions, "
            f"{counts['built']} clients built, {counts['reused']} reused, "
            f"{counts['bypassed']} bypassed{main_reason}, {counts['evicted']} evicted, "
            f"{counts['retired']} retired\n"
        )
    if not lines:
        lines.append(f"clientdedupe: {state}; no construction of a covered client\n")
    return "".join(lines)
