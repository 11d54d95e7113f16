"""Configuration from the environment (SPEC §4), parsed in one place.

Every variable clientdedupe reads is a constant here. A bad value never raises: it is
reported once, naming the variable, the value and what is accepted, and the default is
used. Keyword arguments to ``install()`` win over the environment.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: ``1/true/yes/on`` activates at start-up; ``0/false/no/off`` is a kill switch.
ENABLED = "CLIENTDEDUPE"
#: Comma list of SDKs or classes, as ``install(targets=...)`` takes.
TARGETS = "CLIENTDEDUPE_TARGETS"
#: Bound of the cache, an integer >= 1.
MAX_CLIENTS = "CLIENTDEDUPE_MAX_CLIENTS"
#: ``shared`` (default), ``loop`` or ``off`` (``global``: ``shared``): how async
#: clients are shared.
ASYNC = "CLIENTDEDUPE_ASYNC"
#: ``debug``, ``info`` or ``warning``: level of the ``clientdedupe`` logger.
LOG = "CLIENTDEDUPE_LOG"
#: ``1``: print one summary line per class on stderr at exit.
REPORT = "CLIENTDEDUPE_REPORT"
#: Comma list of ``package.module:ClassName``: more classes to deduplicate.
EXTRA_TARGETS = "CLIENTDEDUPE_EXTRA_TARGETS"

ALL_VARIABLES = (ENABLED, TARGETS, MAX_CLIENTS, ASYNC, LOG, REPORT, EXTRA_TARGETS)

TRUTHY = frozenset({"1", "true", "yes", "on"})
FALSY = frozenset({"0", "false", "no", "off"})
ASYNC_MODES = ("shared", "loop", "off")
#: Older names still accepted.
ASYNC_ALIASES = {"global": "shared"}
LOG_LEVELS = ("debug", "info", "warning")
DEFAULT_MAX_CLIENTS = 128
DEFAULT_ASYNC_MODE = "shared"


def _warn(variable: str, value: str, accepted: str) -> None:
    from ._log import logger

    logger().warning(
        "ignoring %s=%r: accepted values are %s; using the default", variable, value, accepted
    )


def flag(variable: str, environ: Mapping[str, str] | None = None) -> bool | None:
    """True, False, or None when the variable is unset, empty or not a boolean."""
    env = os.environ if environ is None else environ
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value in TRUTHY:
        return True
    if value in FALSY:
        return False
    _warn(variable, raw, "1/true/yes/on or 0/false/no/off")
    return None


def comma_list(variable: str, environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The stripped, non-empty items of a comma list, or None when unset or empty."""
    env = os.environ if environ is None else environ
    items = [item.strip() for item in env.get(variable, "").split(",")]
    items = [item for item in items if item]
    return items or None


def max_clients(value: object | None, environ: Mapping[str, str] | None = None) -> int:
    """The cache bound: ``value`` if given (must be an int >= 1), else the environment."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("max_clients must be an integer >= 1")
        return value
    env = os.environ if environ is None else environ
    raw = env.get(MAX_CLIENTS)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_CLIENTS
    try:
        parsed = int(raw.strip())
    except ValueError:
        parsed = 0
    if parsed < 1:
        _warn(MAX_CLIENTS, raw, "an integer >= 1")
        return DEFAULT_MAX_CLIENTS
    return parsed


def async_mode(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``shared``, ``loop`` or ``off`` (``global`` is ``shared``): ``value`` if given,
    else the environment."""
    if value is not None:
        value = ASYNC_ALIASES.get(value, value)
        if value not in ASYNC_MODES:
            raise ValueError(f"async_mode must be one of {', '.join(ASYNC_MODES)}")
        return value
    chosen = _choice(ASYNC, (*ASYNC_MODES, *ASYNC_ALIASES), environ)
    return ASYNC_ALIASES.get(chosen, chosen) if chosen else DEFAULT_ASYNC_MODE


def log_level(environ: Mapping[str, str] | None = None) -> str | None:
    """The requested level of the ``clientdedupe`` logger, or None."""
    return _choice(LOG, LOG_LEVELS, environ)


def _choice(
    variable: str, choices: tuple[str, ...], environ: Mapping[str, str] | None
) -> str | None:
    """One of ``choices`` (case-insensitive), or None when unset, empty or bad."""
    env = os.environ if environ is None else environ
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in choices:
        _warn(variable, raw, "/".join(choices))
        return None
    return value
