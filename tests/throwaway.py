"""Throwaway SDKs for the tests: modules written to a temporary directory, importable for
one test, then forgotten with the classes registered for them."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import pytest

import clientdedupe
from clientdedupe import _targets


@contextlib.contextmanager
def throwaway_sdk(
    root: Path, monkeypatch: pytest.MonkeyPatch, name: str, files: Mapping[str, str]
) -> Iterator[ModuleType]:
    """Write ``files`` (paths under ``root``, sources dedented), import module ``name``
    from there; afterwards uninstall, forget what was registered meanwhile and every
    module of ``name``."""
    for path, source in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(root))
    registered = list(_targets.registered)
    try:
        yield importlib.import_module(name)
    finally:
        clientdedupe.uninstall()
        _targets.registered[:] = registered
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]
