"""clientdedupe: constructing an LLM SDK client with the same effective configuration
returns the instance already built, in code you did not write.

``import clientdedupe`` patches nothing and imports no SDK; ``clientdedupe.install()``
does the work (or ``CLIENTDEDUPE=1`` with the sitecustomize, or ``clientdedupe run``).
"""

from __future__ import annotations

from ._api import cache_clear, install, is_installed, register, stats, uninstall
from ._context import bypass

__all__ = [
    "bypass",
    "cache_clear",
    "install",
    "is_installed",
    "register",
    "stats",
    "uninstall",
]
__version__ = "0.1.0"
