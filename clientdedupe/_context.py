"""Context-local bypass: ``with clientdedupe.bypass():`` and the SDKs' own copies.

A ``ContextVar``, so that a bypass in one thread or asyncio task never affects another.
"""

from __future__ import annotations

import contextvars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

#: The reason constructions in this context are not deduplicated, or None.
BYPASS: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "clientdedupe_bypass", default=None
)


# What each enclosing bypass block found on entry, innermost last: per context, so one
# bypass object may be reused, nested, and entered by several threads or tasks at once.
_OUTER: contextvars.ContextVar[tuple[str | None, ...]] = contextvars.ContextVar(
    "clientdedupe_bypass_outer", default=()
)


class bypass:
    """Build fresh clients inside the block, in this thread or task only.

    Clients built inside the block are ordinary clients: they are never shared and close
    normally.
    """

    __slots__ = ("_reason",)

    def __init__(self, reason: str = "bypass()") -> None:
        self._reason = reason

    def __enter__(self) -> None:
        _OUTER.set((*_OUTER.get(), BYPASS.get()))
        BYPASS.set(self._reason)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        outer = _OUTER.get()
        if outer:
            BYPASS.set(outer[-1])
            _OUTER.set(outer[:-1])
