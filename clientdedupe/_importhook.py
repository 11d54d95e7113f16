"""Post-import hooks: patch an SDK the moment it is imported, whatever the import order.

wrapt has these (``wrapt.register_post_import_hook``), but importing wrapt costs 100 ms
or more on a cold interpreter (it pulls in asyncio and importlib.metadata), and
``install()`` runs at the start of every process that uses the sitecustomize. So this
small finder watches for the SDK modules without importing anything, and wrapt is only
imported by the hook, when the SDK (which imports the same modules) is being imported
anyway. As in wrapt, the finder puts the module's real loader back before the module
runs, so nothing downstream ever sees a wrapper, and a hook's own errors are contained:
an exception escaping a post-import hook would make the user's ``import openai`` fail.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    Hook = Callable[[ModuleType], None]


class _NotifyingLoader:
    """Runs the real loader, then the hook."""

    def __init__(self, loader: object, hook: Hook) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # type: ignore[assignment]
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # type: ignore[assignment]
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        self._hook(module)

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)


class ImportWatcher:
    """A ``sys.meta_path`` finder calling ``hook(module)`` after each watched module is
    imported. It finds nothing itself: it asks the finders after it and wraps the loader.
    """

    def __init__(self, modules: Iterable[str], hook: Hook) -> None:
        self.modules = set(modules)
        self._hook = hook
        self._finding: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec: ModuleSpec | None = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
            if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec  # a namespace package, or a legacy loader: nothing to hook
            spec.loader = _NotifyingLoader(spec.loader, self._hook)  # type: ignore[assignment]
            return spec
        finally:
            self._finding.discard(fullname)

    def install(self) -> None:
        """Put the watcher first on ``sys.meta_path``."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        """Take the watcher off ``sys.meta_path``."""
        while self in sys.meta_path:
            sys.meta_path.remove(self)
