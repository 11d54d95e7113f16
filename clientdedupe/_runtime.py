"""What ``install()`` sets up once a target SDK is imported: the cache and the patches.

Imported lazily (it imports wrapt, threading and inspect), from the post-import hook or
from ``install()`` when an SDK is already loaded.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time

from . import _lifetime
from ._cache import ClientCache
from ._constructor import Settings, hand_offs_pending, is_ours, make_init, make_new
from ._log import PROMISED, logger
from ._ownership import GUARD, Reentrant
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


def async_pool_classes(sdk: Sdk) -> tuple[type, ...]:
    """The classes of the connection pools the SDK builds for its async clients, if one
    pool per event loop can be made of them (``_pools``): Stainless SDKs build an
    ``Async…ClientWrapper(base_url=..., timeout=...)`` of their ``_base_client``
    (``AsyncHttpxClientWrapper``; fireworks' ``AsyncAioHttpClientWrapper``)."""
    try:
        module = importlib.import_module(f"{sdk.package}._base_client")
    except Exception:
        return ()
    needed = ("aclose", "send", "build_request", "base_url", "timeout")
    return tuple(
        value
        for name, value in sorted(vars(module).items())
        if name.startswith("Async")
        and name.endswith("ClientWrapper")
        and isinstance(value, type)
        and all(hasattr(value, attribute) for attribute in needed)
    )


#: How long uninstall() waits at most for constructions between their __new__ and
#: __init__: normally a moment; longer only when many busy threads starve the ones in
#: that window of the GIL. A hand-off never completes only if another library replaced
#: __init__ in that very moment: the wait must end then too.
_HAND_OFF_WAIT = 10.0


class Runtime:
    """The cache and every patch of one installation."""

    def __init__(self, max_clients: int, async_mode: str) -> None:
        self.cache = ClientCache(max_clients)
        self.settings = Settings(async_mode)
        self.patched: dict[str, type] = {}
        #: qualname → why it was left alone
        self.skipped: dict[str, str] = {}
        #: qualname → why its shared async clients are tied to one event loop
        self.loop_bound: dict[str, str] = {}
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
                logger().warning("not deduplicating %s: %s", target.qualname, why, extra=PROMISED)
            else:
                logger().debug("deduplicating %s", target.qualname)

    def undo(self) -> None:
        """Put every patched attribute back and forget the shared clients (closing
        those no holder has). Safe while other threads construct clients."""
        self.settings.active = False  # no hand-out from now on
        _lifetime.keep_guarding()
        deadline = time.monotonic() + _HAND_OFF_WAIT
        while True:
            try:
                with GUARD:
                    # A construction between its __new__ and its __init__ must meet our
                    # __init__, or the SDK's would run again on the shared instance.
                    if not hand_offs_pending() or time.monotonic() > deadline:
                        self._patches.undo()
                        break
            except Reentrant:  # called inside our own section (a signal handler)
                self._patches.undo()
                break
            time.sleep(0.0005)
        self.cache.clear()
        self.patched.clear()

    def _patch(self, target: Target) -> type:
        cls, init, close = inspect_target(target)
        is_async = (
            inspect.iscoroutinefunction(close) if target.is_async is None else target.is_async
        )
        pool_classes: tuple[type, ...] = ()
        if is_async and self.settings.async_mode != "off":
            pool_classes = async_pool_classes(target.sdk)
            if not pool_classes and self.settings.async_mode == "shared":
                why = "this version's connection pool cannot be made one per event loop"
                self.loop_bound[target.qualname] = why
                logger().warning(
                    "%s: async clients are shared within one event loop only: %s",
                    target.qualname,
                    why,
                    extra=PROMISED,
                )
        patches = self._patches
        our_init = make_init(init)
        patches.set(cls, "__init__", our_init)
        patches.wrap(cls, "close", _lifetime.guarded_close(is_async))
        for name in ("copy", "with_options"):
            if any(name in vars(klass) for klass in cls.__mro__):
                patches.wrap(cls, name, _lifetime.copy)
        on_change = _lifetime.retire_on_change(self.cache, target.sdk.package, on_resource=False)
        patches.wrap(cls, "__setattr__", on_change)
        patches.wrap(cls, "__delattr__", on_change)
        # Last, once everything it relies on is in place. CPython cannot delete a
        # __new__ once set on a class: uninstall() leaves it, as a pass-through
        # (Settings.active is then False).
        new = make_new(
            target,
            cls,
            init,
            our_init,
            self.cache,
            self.settings,
            is_async=is_async,
            pool_classes=pool_classes,
        )
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
