"""Reversible attribute patches on classes.

As wrapt does, the original is looked up in ``vars()`` along the MRO, never with plain
``getattr`` on the class, and what was in the class's own ``vars()`` is remembered, so
that undoing a patch puts back exactly what was there, or nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_MISSING = object()


def resolve(cls: type, name: str) -> object:
    """The raw attribute ``name`` as the class would find it (no descriptor binding)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise AttributeError(f"{cls.__qualname__} has no attribute {name!r}")


class Patches:
    """A set of attribute replacements that can all be undone."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, object, object, bool]] = []

    def __len__(self) -> int:
        return len(self._saved)

    def set(self, cls: type, name: str, value: object, *, sticky: bool = False) -> None:
        """Replace ``cls.name`` by ``value``, remembering what was in ``vars(cls)``.

        ``sticky``: if the class had no such attribute of its own, leave ``value`` in
        place on undo (for ``__new__``, which CPython cannot delete cleanly: the caller
        makes it a pass-through).
        """
        self._saved.append((cls, name, vars(cls).get(name, _MISSING), value, sticky))
        setattr(cls, name, value)

    def wrap(self, cls: type, name: str, wrapper: Callable[..., object]) -> None:
        """Wrap ``cls.name`` (inherited or not) with a wrapt function wrapper."""
        import wrapt

        original: Any = resolve(cls, name)
        self.set(cls, name, wrapt.FunctionWrapper(original, wrapper))

    def undo(self, down_to: int = 0) -> None:
        """Put the attributes back, newest first, until only ``down_to`` patches remain.

        An attribute someone else replaced since (another library wrapping it in turn)
        is left as it is: putting ours back would silently remove theirs. Every patch
        here passes through once uninstalled, so what stays inside theirs is harmless.
        """
        while len(self._saved) > down_to:
            cls, name, original, value, sticky = self._saved.pop()
            if vars(cls).get(name, _MISSING) is not value:
                from ._log import logger

                logger().warning(
                    "%s.%s was replaced after clientdedupe patched it: left as it is",
                    cls.__qualname__,
                    name,
                )
            elif original is not _MISSING:
                setattr(cls, name, original)
            elif not sticky:
                delattr(cls, name)
