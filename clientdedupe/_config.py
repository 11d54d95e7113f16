"""Configuration from the environment (SPEC §4), parsed in one place.

Every variable clientdedupe reads is a constant here. A bad value never raises: it is
reported once per process, naming the variable, the value and what is accepted, and the
default is used. Keyword arguments to ``install()`` win over the environment.

Each parser takes a ``report`` callable for the problems it finds: the default is the
promised one-line warning (``_log``); ``clientdedupe doctor`` passes its own, to list
them, so the doctor and a real start-up judge every value the same way.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._targets import Target

    Report = Callable[[str], None]

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


#: (variable, value) pairs already warned about: a value read again (a second
#: ``install()``, the exit report) is not reported twice.
_warned: set[tuple[str, str]] = set()


def warn(message: str) -> None:
    """The default ``report``: the promised one-line warning, once per message."""
    from ._log import PROMISED, logger

    logger().warning("%s", message, extra=PROMISED)


def bad_value(variable: str, value: str, accepted: str) -> str:
    """The message about a bad value: the variable, the value, what is accepted."""
    return f"ignoring {variable}={value!r}: accepted values are {accepted}; using the default"


def _bad(variable: str, value: str, accepted: str, report: Report | None) -> None:
    _problem(variable, value, bad_value(variable, value, accepted), report)


def _problem(variable: str, value: str, message: str, report: Report | None) -> None:
    if report is None:
        if (variable, value) in _warned:
            return
        _warned.add((variable, value))
        report = warn
    report(message)


def flag(
    variable: str, environ: Mapping[str, str] | None = None, *, report: Report | None = None
) -> bool | None:
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
    _bad(variable, raw, "1/true/yes/on or 0/false/no/off", report)
    return None


def comma_list(variable: str, environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The stripped, non-empty items of a comma list, or None when unset or empty."""
    env = os.environ if environ is None else environ
    items = [item.strip() for item in env.get(variable, "").split(",")]
    items = [item for item in items if item]
    return items or None


def targets(
    environ: Mapping[str, str] | None = None, *, report: Report | None = None
) -> list[Target]:
    """The targets ``CLIENTDEDUPE_TARGETS`` names, or all of them when it is unset or
    names something unknown (reported, with the valid names)."""
    from ._targets import select

    names = comma_list(TARGETS, environ)
    try:
        return select(names)
    except ValueError as error:
        raw = (os.environ if environ is None else environ).get(TARGETS, "")
        message = f"ignoring {TARGETS}={raw!r}: {error}; deduplicating every target"
        _problem(TARGETS, raw, message, report)
        return select(None)


def max_clients(
    value: object | None,
    environ: Mapping[str, str] | None = None,
    *,
    report: Report | None = None,
) -> int:
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
        _bad(MAX_CLIENTS, raw, "an integer >= 1", report)
        return DEFAULT_MAX_CLIENTS
    return parsed


def async_mode(
    value: str | None, environ: Mapping[str, str] | None = None, *, report: Report | None = None
) -> str:
    """``shared``, ``loop`` or ``off`` (``global`` is ``shared``): ``value`` if given,
    else the environment."""
    if value is not None:
        value = ASYNC_ALIASES.get(value, value)
        if value not in ASYNC_MODES:
            raise ValueError(f"async_mode must be one of {', '.join(ASYNC_MODES)}")
        return value
    chosen = _choice(ASYNC, (*ASYNC_MODES, *ASYNC_ALIASES), environ, report)
    return ASYNC_ALIASES.get(chosen, chosen) if chosen else DEFAULT_ASYNC_MODE


def log_level(
    environ: Mapping[str, str] | None = None, *, report: Report | None = None
) -> str | None:
    """The requested level of the ``clientdedupe`` logger, or None."""
    return _choice(LOG, LOG_LEVELS, environ, report)


def _choice(
    variable: str,
    choices: tuple[str, ...],
    environ: Mapping[str, str] | None,
    report: Report | None = None,
) -> str | None:
    """One of ``choices`` (case-insensitive), or None when unset, empty or bad."""
    env = os.environ if environ is None else environ
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in choices:
        _bad(variable, raw, "/".join(choices), report)
        return None
    return value
