"""The ``clientdedupe`` logger, imported lazily.

``logging`` costs several milliseconds to import, and ``install()`` runs at the start of
every process that uses the sitecustomize; so the start-up path only imports it when it
has something to say. Library code never adds handlers (the CLI aside).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

NAME = "clientdedupe"


def logger() -> logging.Logger:
    """The ``clientdedupe`` logger."""
    import logging

    return logging.getLogger(NAME)
