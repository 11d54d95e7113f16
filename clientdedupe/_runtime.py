"""What ``install()`` sets up once a target SDK is imported: the cache and the patches.

Imported lazily (it imports wrapt, threading and inspect), from the post-import hook or
from ``install()`` when an SDK is already loaded.
"""

from __future__ import annotations

import importlib
import inspect
import sys

from . import _lifetime
from ._cache import ClientCache
from ._constructor import Settings, is_ours, make_init, make_new
from ._log import logger
from ._patch import Patches, resolve
from ._targets import Sdk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._targets import Target


class Unsupported(Exception):
    """This version of the SDK is shaped differently: the class is left alone."""


def inspect_target(target: Target) -> tuple[type, Callable[..., object], object]:
    """The class of an imported target, its ``__init__`` and ``close``; raises
    ``Unsupported`` if this version of the SDK is shaped differently."""
    cls = getattr(sys.modules[target.module], target.name, None)
    if not isinstance(cls, type):
        raise Unsupported(
            f"{target.name} is not a class in this version of {target.sdk.distribution}"
        )
    for klass in cls.__mro__[:-1]:
        new = vars(klass).get("__new__")
        if new is not None and not is_ours(new):
            raise Unsupported(f"{klass.__qualname__} defines its own __new__")
    init = resolve(cls, "__init__")
    if not inspect.isfunction(init):
        raise Unsupported("its __init__ is not a Python function")
    parameters = list(inspect.signature(init).parameters.values())[1:]
    if any(p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in parameters):
        raise Unsupported("its __init__ takes positional arguments (keyword-only are needed)")
    try:
        close = resolve(cls, "close")
    except AttributeError:
        raise Unsupported("it has no close() to guard") from None
    return cls, init, close


def resource_bases(sdk: Sdk) -> list[type]:
    """The SDK's resource base classes; raises ``Unsupported`` if one is missing."""
    if sdk.resource_bases is None:  # a registered class: the usual ones, if there
        try:
            return resource_bases(Sdk.stainless(sdk.distribution, sdk.package, sdk.supported))
        except Unsupported:
            return []
    bases = []
    for path in sdk.resource_bases:
        module_name, _, class_name = path.partition(":")
        try:
            base = getattr(importlib.import_module(module_name), class_name, None)
        except ImportError:
            base = None
        if not isinstance(base, type):
            raise Unsupported(f"{path} is missing: changes to its resources could not be seen")
        bases.append(base)
    return bases


class Runtime:
    """The cache and every patch of one installation."""

    def __init__(self, max_clients: int, async_mode: str) -> None:
        self.cache = ClientCache(max_clients)
        self.settings = Settings(async_mode)
        self.patched: dict[str, type] = {}
        #: qualname → why it was left alone
        self.skipped: dict[str, str] = {}
        self._patches = Patches()
        self._sdks_done: set[str] = set()

    def patch(self, targets: Iterable[Target]) -> None:
        """Patch each target whose module is imported. Never raises: a target that
        cannot be patched is skipped with one warning and left exactly as it was."""
        for target in targets:
            if target.qualname in self.patched or target.qualname in self.skipped:
                continue
            if target.module not in sys.modules:
                continue
            mark = len(self._patches)
            try:
                self._patch_sdk(target.sdk)
                mark = len(self._patches)
                self.patched[target.qualname] = self._patch(target)
            except Exception as error:
                self._patches.undo(down_to=mark)
                why = str(error) if isinstance(error, Unsupported) else f"{type(error).__name__}"
                self.skipped[target.qualname] = why
                logger().warning("not deduplicating %s: %s", target.qualname, why)
            else:
                logger().debug("deduplicating %s", target.qualname)

    def undo(self) -> None:
        """Put every patched attribute back and forget the shared clients."""
        self.settings.active = False
        _lifetime.keep_guarding()
        self._patches.undo()
        self.cache.clear()
        self.patched.clear()

    def _patch(self, target: Target) -> type:
        cls, init, close = inspect_target(target)
        patches = self._patches
        patches.set(cls, "__init__", make_init(init))
        patches.wrap(cls, "close", _lifetime.guarded_close(inspect.iscoroutinefunction(close)))
        for name in ("copy", "with_options"):
            if any(name in vars(klass) for klass in cls.__mro__):
                patches.wrap(cls, name, _lifetime.copy)
        on_change = _lifetime.retire_on_change(self.cache, target.sdk.package, on_resource=False)
        patches.wrap(cls, "__setattr__", on_change)
        patches.wrap(cls, "__delattr__", on_change)
        # Last, once everything it relies on is in place. CPython cannot delete a
        # __new__ once set on a class: uninstall() leaves it, as a pass-through
        # (Settings.active is then False).
        is_async = (
            inspect.iscoroutinefunction(close) if target.is_async is None else target.is_async
        )
        new = make_new(target, cls, init, self.cache, self.settings, is_async=is_async)
        patches.set(cls, "__new__", staticmethod(new), sticky=True)
        return cls

    def _patch_sdk(self, sdk: Sdk) -> None:
        """Hook assignments on the SDK's resource objects, once per SDK."""
        if sdk.package in self._sdks_done:
            return
        bases = resource_bases(sdk)
        hook = _lifetime.retire_on_change(self.cache, sdk.package, on_resource=True)
        for base in bases:
            self._patches.wrap(base, "__setattr__", hook)
            self._patches.wrap(base, "__delattr__", hook)
        self._sdks_done.add(sdk.package)
