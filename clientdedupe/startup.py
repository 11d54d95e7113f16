"""Activation at interpreter start, from the environment alone (SPEC §3.3-3.4, §4).

``activate()`` is what the sitecustomize files call: it does nothing unless
``CLIENTDEDUPE`` is on, and it never raises. It must stay cheap: it runs before every
program, so it imports no SDK and no wrapt (see ``_api``).
"""

from __future__ import annotations

import sys

from . import _config

_activated = False


def activate() -> bool:
    """Install clientdedupe if ``CLIENTDEDUPE`` is on; returns whether it did.

    Reads every ``CLIENTDEDUPE_*`` variable: a bad value is reported by one warning
    naming it, and its default used. Never raises.
    """
    global _activated
    try:
        if _config.flag(_config.ENABLED) is not True:
            return False
        # Bootstrapping twice is harmless (a user's sitecustomize may chain to ours
        # and also call us): the second call does nothing.
        if _activated:
            return True
        _activated = True
        _configure_logging()
        from ._api import install

        install()
        if _config.flag(_config.REPORT):
            import atexit

            atexit.register(report)
        return True
    except Exception as error:
        sys.stderr.write(f"clientdedupe: not activated ({type(error).__name__}: {error})\n")
        return False


def _configure_logging() -> None:
    level = _config.log_level()
    if level is None:
        return
    import logging

    from ._log import logger

    log = logger()
    log.setLevel(level.upper())
    if not log.handlers:
        # Asked for on the command line or in the environment: show it, whatever the
        # program does (or does not do) with logging.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("clientdedupe: %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def report() -> None:
    """Write one summary line per class on stderr: constructions, built, reused,
    bypassed (with the main reason), evicted, retired; or one line saying why there
    is nothing to report. Contains no argument value."""
    from ._api import is_installed, stats

    lines = []
    for qualname, counts in stats().items():
        if not counts["constructions"]:
            continue
        reasons = counts["bypass_reasons"]
        main_reason = f" (mostly: {max(reasons, key=reasons.get)})" if reasons else ""
        lines.append(
            f"clientdedupe: {qualname}: {counts['constructions']} constructions, "
            f"{counts['built']} clients built, {counts['reused']} reused, "
            f"{counts['bypassed']} bypassed{main_reason}, {counts['evicted']} evicted, "
            f"{counts['retired']} retired\n"
        )
    if not lines:
        state = "active" if is_installed() else "not active"
        lines.append(f"clientdedupe: {state}; no construction of a covered client\n")
    sys.stderr.write("".join(lines))
