"""The public functions: install, uninstall, stats, cache_clear.

This module is on the start-up path of every process that uses the sitecustomize, so it
imports only the standard library basics: the heavy parts (wrapt, the cache, the
patcher) are imported by the post-import hook, when a target SDK is imported.
"""

from __future__ import annotations

import os
import sys
from _thread import allocate_lock

from . import _config
from ._importhook import ImportWatcher
from ._targets import registered, select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import ModuleType
    from typing import Any

    from ._runtime import Runtime
    from ._targets import Target


class _State:
    """The one installation of this process."""

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.installed = False
        self.targets: list[Target] = []
        self.max_clients = _config.DEFAULT_MAX_CLIENTS
        self.async_mode = _config.DEFAULT_ASYNC_MODE
        self.watcher: ImportWatcher | None = None
        #: Created when the first target SDK is imported.
        self.runtime: Runtime | None = None
        self.fork_hook_registered = False
        self.kill_switch_reported = False
        self.environment_registered = False
        self.observed = False
        self.dependency_reported = False


_state = _State()


def install(
    targets: Iterable[str] | str | None = None,
    *,
    max_clients: int | None = None,
    async_mode: str | None = None,
) -> None:
    """Deduplicate the supported SDK clients in this process.

    ``targets`` narrows to some SDKs or classes, by import or pip name (``"openai"``,
    ``"cerebras-cloud-sdk"``, ``"groq.AsyncGroq"``); ``max_clients`` bounds the cache
    (least recently used dropped); ``async_mode`` is ``"shared"`` (async clients shared
    whatever loop runs, with one connection pool per running event loop behind each),
    ``"loop"`` (shared within one running event loop only) or ``"off"``; ``"global"`` is
    an old name of ``"shared"``. Arguments left out come from the environment
    (``CLIENTDEDUPE_TARGETS``, ``CLIENTDEDUPE_MAX_CLIENTS``, ``CLIENTDEDUPE_ASYNC``).

    SDKs already imported are patched at once, the others when they are imported.
    Idempotent. Called again with other settings than the installation in force (one
    made at start-up, by the launcher, or by an earlier call), it applies them: as
    ``uninstall()`` then ``install()`` with the new settings; clients handed out before
    keep working. With ``CLIENTDEDUPE=0`` in the environment it does nothing. Raises
    ``ValueError`` for an unknown target or a bad argument.
    """
    _observe_from_environment()
    _register_from_environment()
    chosen = select(targets) if targets is not None else _config.targets()
    chosen += [t for t in registered if t not in chosen]
    bound = _config.max_clients(max_clients)
    mode = _config.async_mode(async_mode)
    if _config.flag(_config.ENABLED) is False:
        if not _state.kill_switch_reported:
            _state.kill_switch_reported = True
            from ._log import logger

            logger().info("%s=0 (the kill switch): install() does nothing", _config.ENABLED)
        return
    replaced = None
    with _state.lock:
        if _state.installed:
            if (set(chosen), bound, mode) == (
                set(_state.targets),
                _state.max_clients,
                _state.async_mode,
            ):
                return
            replaced = _settings()
            _uninstall_locked()
        _state.targets, _state.max_clients, _state.async_mode = chosen, bound, mode
        _state.installed = True
        watched = {t.module for t in chosen}
        _state.watcher = ImportWatcher(watched, _on_import)
        _state.watcher.install()
        loaded = [name for name in sorted(watched) if name in sys.modules]
        if replaced is not None:
            from ._log import logger

            logger().info("install(): settings changed from %s to %s", replaced, _settings())
    for name in loaded:
        _patch_loaded(name)


def _settings() -> str:
    """The settings in force, for a log line (target names and numbers only)."""
    names = ",".join(sorted(t.qualname for t in _state.targets))
    return f"targets={names} max_clients={_state.max_clients} async_mode={_state.async_mode}"


def _observe_from_environment() -> None:
    """``CLIENTDEDUPE_LOG`` and ``CLIENTDEDUPE_REPORT``, however clientdedupe is
    activated (start-up, launcher, an explicit ``install()``, even the kill switch, which
    the report then names): applied once per process, by the first ``install()``."""
    if _state.observed:
        return
    _state.observed = True
    level = _config.log_level()
    if level is not None:  # logging costs milliseconds to import: only when asked for
        from ._log import configure

        configure(level)
    if _config.flag(_config.REPORT):
        import atexit

        atexit.register(_report_at_exit)


def _report_at_exit() -> None:
    """``CLIENTDEDUPE_REPORT``: the summary on stderr at exit."""
    from ._stats import report

    if _state.installed:
        state = "active"
    elif _config.flag(_config.ENABLED) is False:
        state = f"not active ({_config.ENABLED}=0, the kill switch)"
    else:
        state = "not active"
    sys.stderr.write(report(stats(), state))


def register(
    target: str,
    *,
    env: Mapping[str, str | Sequence[str]] | None = None,
    env_always: Sequence[str] = (),
    is_async: bool | None = None,
) -> None:
    """Deduplicate one more client class, ``"package.module:ClassName"``, before or
    after ``install()``, whatever ``install(targets=...)`` selected.

    ``env`` maps each constructor parameter to the environment variable(s) the
    constructor reads when that parameter is left out (``{"api_key": "ACME_API_KEY"}``);
    ``env_always`` lists variables it reads whatever the arguments. Without ``env``, the
    whole environment is part of the key: safe, but a little slower. ``is_async`` is
    decided from the class (an ``async def close``) when left out.

    The class is imported now. Raises ``ValueError`` if it cannot be patched safely:
    not a class, an ``__init__`` taking positional arguments, a ``__new__`` of its own,
    or no ``close()``.
    """
    from ._register import check, make_target

    new = make_target(target, env=env, env_always=env_always, is_async=is_async, source="code")
    check(new)
    _add(new)


def _register_from_environment(report: _config.Report | None = None) -> None:
    """Register each class of ``CLIENTDEDUPE_EXTRA_TARGETS``, once, without importing
    it; an entry that is not ``package.module:ClassName`` goes to ``report`` (by
    default, the promised one-line warning)."""
    if _state.environment_registered:
        return
    _state.environment_registered = True
    for spec in _config.comma_list(_config.EXTRA_TARGETS) or ():
        from ._register import make_target

        try:
            _add(make_target(spec, source="environment"))
        except ValueError as error:
            (report or _config.warn)(f"ignoring {_config.EXTRA_TARGETS} entry {spec!r}: {error}")


def _add(target: Target) -> None:
    """Make ``target`` part of the registered targets and of the installation."""
    with _state.lock:
        if target not in registered:
            registered.append(target)
        if not _state.installed or target in _state.targets:
            return
        _state.targets.append(target)
        if _state.watcher is not None:
            _state.watcher.modules.add(target.module)
        loaded = target.module in sys.modules
    if loaded:
        _patch_loaded(target.module)


def _patch_loaded(name: str) -> None:
    """Patch a module already in ``sys.modules``. Another thread may still be importing
    it (the watcher came too late for that import): ``import_module`` waits for it."""
    import importlib

    try:
        module = importlib.import_module(name)
    except Exception:
        return  # its import failed: so will the user's, and there is nothing to patch
    spec = getattr(module, "__spec__", None)
    if getattr(spec, "_initializing", False):
        return  # being imported further up this very thread: its classes are not there yet
    _on_import(module)


def _on_import(module: ModuleType) -> None:
    """Patch the targets of a just-imported module. Never raises: an exception here
    would surface in the user's ``import openai``."""
    try:
        with _state.lock:
            if not _state.installed or not _dependencies_importable():
                return
            runtime = _ensure_runtime()
            runtime.patch(t for t in _state.targets if t.module == module.__name__)
    except Exception:
        try:
            from ._log import PROMISED, logger

            logger().warning("could not patch %s", module.__name__, exc_info=True, extra=PROMISED)
        except Exception:
            pass


def _dependencies_importable() -> bool:
    """Whether wrapt, which patching needs, can be imported; if not, says so once,
    naming it and the fix, and nothing is patched (the SDK works as without us)."""
    try:
        import wrapt  # noqa: F401
    except Exception as error:
        if not _state.dependency_reported:
            _state.dependency_reported = True
            _config.warn(
                f"no SDK is deduplicated: clientdedupe needs wrapt, which cannot be imported "
                f"here ({type(error).__name__}: {error}); fix: {sys.executable} -m pip "
                "install 'wrapt>=1.17'"
            )
        return False
    return True


def _ensure_runtime() -> Runtime:
    if _state.runtime is None:
        from ._runtime import Runtime

        _state.runtime = Runtime(_state.max_clients, _state.async_mode)
        if not _state.fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _state.fork_hook_registered = True
    return _state.runtime


def _after_fork_in_child() -> None:
    # The parent's clients share their sockets with the child: never hand them out here,
    # and never close them either.
    from . import _constructor, _ownership, _pools

    _state.lock = allocate_lock()
    _ownership.after_fork_in_child()
    _pools.after_fork_in_child()
    _constructor.after_fork_in_child()
    if _state.runtime is not None:
        _state.runtime.cache.after_fork_in_child()


def uninstall() -> None:
    """Put every patched class back as it was and forget the shared clients.

    Clients already handed out keep working. Does nothing if not installed.
    """
    with _state.lock:
        _uninstall_locked()


def _uninstall_locked() -> None:
    """``uninstall()``, with ``_state.lock`` held."""
    if not _state.installed:
        return
    if _state.watcher is not None:
        _state.watcher.remove()
        _state.watcher = None
    if _state.runtime is not None:
        _state.runtime.undo()
        _state.runtime = None
    _state.installed = False


def is_installed() -> bool:
    """Whether ``install()`` is in effect."""
    return _state.installed


def cache_clear() -> None:
    """Forget every shared client: the next construction of each builds a fresh one.
    Holders keep the clients they have."""
    runtime = _state.runtime
    if runtime is not None:
        runtime.cache.clear()


def stats() -> dict[str, dict[str, Any]]:
    """Per patched class: ``constructions``, ``built``, ``reused``, ``bypassed`` (and
    ``bypass_reasons``), ``failed``, ``evicted``, ``retired``, ``closed``; then the
    clients the cache holds now: ``live``, their ``holders``, how many are ``idle`` (no
    holder), the connection pools open per event loop behind the async ones
    (``loop_pools``) and their fingerprints (``clients``). Never contains an argument
    value."""
    runtime = _state.runtime
    if runtime is None:
        return {}
    from ._stats import snapshot

    return snapshot(runtime)
