"""Activation at interpreter start, from the environment alone (SPEC §3.3-3.4, §4).

``activate()`` is what the sitecustomize files call: it does nothing unless
``CLIENTDEDUPE`` is set, and it never raises. It must stay cheap: it runs before every
program, so it imports no SDK and no wrapt (see ``_api``).
"""

from __future__ import annotations

import sys

from . import _config

_activated = False


def activate() -> bool:
    """Install clientdedupe if ``CLIENTDEDUPE`` is on; returns whether it did.

    Reads every ``CLIENTDEDUPE_*`` variable: a bad value is reported by one warning
    naming it, and its default used. With ``CLIENTDEDUPE=0`` (the kill switch) nothing
    is installed, but ``CLIENTDEDUPE_LOG`` and ``CLIENTDEDUPE_REPORT`` still apply, so
    that ``clientdedupe run --report`` says why nothing was shared. Never raises.
    """
    global _activated
    try:
        enabled = _config.flag(_config.ENABLED)
        if enabled is None:
            return False
        # Bootstrapping twice is harmless (a user's sitecustomize may chain to ours
        # and also call us): the second call does nothing.
        from ._api import install, is_installed

        if _activated:
            return is_installed()
        _activated = True
        install()  # with the kill switch: only the log and the report
        return is_installed()
    except Exception as error:
        sys.stderr.write(f"clientdedupe: not activated ({type(error).__name__}: {error})\n")
        return False
