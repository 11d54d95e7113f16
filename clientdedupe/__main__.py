"""``python -m clientdedupe``: the same as the ``clientdedupe`` command."""

from __future__ import annotations

import sys

from ._tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
