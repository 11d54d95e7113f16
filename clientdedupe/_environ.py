"""How a key reads the environment (SPEC §5, §9).

The SDKs read ``os.environ`` as it is at each construction, whatever object it is then:
a test's ``mock.patch("os.environ", {...})`` or ``monkeypatch.setattr(os, "environ", ...)``
puts a plain dict there, and the SDK reads that dict. So the key reads through the
current ``os.environ`` too, never through one captured earlier. For the real
``os.environ`` (an ``os._Environ``) names are encoded once and read from its underlying
dict, which is several times cheaper than ``os.environ.get`` on the hot path.

The HTTP library reads proxies through ``urllib.request.getproxies()``, which takes every
variable whose name ends in ``_proxy`` in any case (``Http_Proxy`` included): the set of
such names is found by a scan, redone only when the set of variable names may have
changed.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


class Binding:
    """Reading one environment object: the current ``os.environ``."""

    __slots__ = ("_data", "_encode", "_proxies", "_proxy_suffix", "_reversible", "environ", "get")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        data = getattr(environ, "_data", None)
        encode = getattr(environ, "encodekey", None)
        if isinstance(data, dict) and callable(encode):
            # The real os.environ: read its underlying dict by encoded names.
            self._data: Mapping[object, object] = data
            self._encode: Callable[[str], object] = encode
        else:
            self._data = environ  # type: ignore[assignment]
            self._encode = str
        self._reversible = isinstance(self._data, dict)
        #: ``dict.get`` of the mapping names are looked up in.
        self.get: Callable[[object], object] = self._data.get
        suffix = self._encode("_proxy")
        self._proxy_suffix: object = suffix
        #: (the number of names and the last name when scanned, the ``*_proxy`` names):
        #: one attribute, replaced whole, so that threads never see half an update.
        self._proxies: tuple[int, object, tuple[object, ...]] = (-1, None, ())

    def encode(self, name: str) -> object:
        """``name`` as this environment's mapping stores it."""
        return self._encode(name)

    def proxies(self) -> tuple[tuple[object, ...], tuple[object, ...]]:
        """The names of every ``*_proxy`` variable, any case, in order, and their values."""
        data = self._data
        size, last, names = self._proxies
        # A change to the set of names changes the size, or leaves a new name last (dicts
        # keep insertion order): only then is the scan redone. A mapping that cannot be
        # reversed is scanned every time.
        if len(data) != size or not self._reversible or (size and next(reversed(data)) is not last):
            names = tuple(n for n in data if _is_proxy(n, self._proxy_suffix))
            if self._reversible:
                size = len(data)
                self._proxies = (size, next(reversed(data)) if size else None, names)
        if not names:
            return _NO_PROXIES
        return (names, tuple(map(self.get, names)))

    def snapshot(self) -> frozenset[tuple[object, object]]:
        """Every variable, name and value."""
        return frozenset(self._data.items())


_NO_PROXIES: tuple[tuple[object, ...], tuple[object, ...]] = ((), ())


def _is_proxy(name: object, suffix: object) -> bool:
    lower = getattr(name, "lower", None)
    return lower is not None and bool(lower().endswith(suffix))


_binding = Binding(os.environ)


def binding() -> Binding:
    """The binding for ``os.environ`` as it is now."""
    global _binding
    environ = os.environ
    if environ is not _binding.environ:
        _binding = Binding(environ)
    return _binding
