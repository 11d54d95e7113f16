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


class bypass:
    """Build fresh clients inside the block, in this thread or task only.

    Clients built inside the block are ordinary clients: they are never shared and close
    normally.
    """

    __slots__ = ("_reason", "_token")

    def __init__(self, reason: str = "bypass()") -> None:
        self._reason = reason
        self._token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = BYPASS.set(self._reason)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            BYPASS.reset(self._token)
            self._token = None
