"""The ``clientdedupe`` logger, imported lazily, and the one-line warnings SPEC §7 allows.

``logging`` costs several milliseconds to import, and ``install()`` runs at the start of
every process that uses the sitecustomize; so the start-up path only imports it when it
has something to say.

What reaches stderr, and how (the decision, also in docs/configuration.md):

- The ``clientdedupe`` logger follows the library convention: it gets a
  ``logging.NullHandler``, so none of its records reaches stderr through logging's
  last-resort handler. Debug, info and ordinary warnings (a class replaced by another
  library after clientdedupe patched it, say) are seen only when asked for:
  ``CLIENTDEDUPE_LOG``, the launcher's ``--log``, or the application's own logging.
- The warnings the contract promises (a bad value of a ``CLIENTDEDUPE_*`` variable, an
  SDK class skipped because it is shaped differently, a dependency missing, async
  clients falling back to sharing within one event loop) are *user-facing
  configuration problems*. They are logged at WARNING like the rest, and when no
  handler of the application (or of ``CLIENTDEDUPE_LOG``) would show them, written as
  one line on stderr, ``clientdedupe: WARNING: ...``, once each. Not ``warnings.warn``:
  under ``-W error`` that would raise in the host program, which clientdedupe promises
  never to do for a bad value; and its output is two lines pointing at a line of ours.
  ``logging.getLogger("clientdedupe").setLevel(logging.ERROR)`` silences them.

Library code never adds handlers except these, and the one ``CLIENTDEDUPE_LOG`` asks for.
"""

from __future__ import annotations

from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

NAME = "clientdedupe"

#: ``extra=PROMISED`` marks a record as one of the warnings the contract promises.
PROMISED: Mapping[str, object] = {"clientdedupe_promised": True}

_lock = allocate_lock()
_logger: logging.Logger | None = None


def logger() -> logging.Logger:
    """The ``clientdedupe`` logger, with its NullHandler and the promised-warnings
    handler attached the first time it is asked for."""
    global _logger
    if _logger is None:
        import logging

        with _lock:
            if _logger is None:
                log = logging.getLogger(NAME)
                if not any(getattr(h, "_clientdedupe", False) for h in log.handlers):
                    null = logging.NullHandler()
                    promised = _promised_handler()
                    for handler in (null, promised):
                        handler._clientdedupe = True  # type: ignore[attr-defined]
                        log.addHandler(handler)
                _logger = log
    return _logger


def _promised_handler() -> logging.Handler:
    import logging
    import sys

    class PromisedWarnings(logging.Handler):
        """Writes a promised warning as one line on stderr, unless a handler of the
        application (or ``CLIENTDEDUPE_LOG``'s) will show the record anyway."""

        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.said: set[str] = set()

        def emit(self, record: logging.LogRecord) -> None:
            try:
                if not getattr(record, "clientdedupe_promised", False):
                    return
                if _shown_elsewhere(record):
                    return
                message = " ".join(record.getMessage().split("\n"))
                if message in self.said:
                    return
                self.said.add(message)
                sys.stderr.write(f"clientdedupe: WARNING: {message}\n")
                sys.stderr.flush()
            except Exception:
                pass  # a warning must never become an error in the host program

    return PromisedWarnings()


def _shown_elsewhere(record: logging.LogRecord) -> bool:
    """Whether a handler other than ours, on the way up from the record's logger, will
    take the record (as ``Logger.callHandlers`` walks it)."""
    import logging

    node: logging.Logger | None = logging.getLogger(record.name)
    while node is not None:
        for handler in node.handlers:
            if getattr(handler, "_clientdedupe", False):
                continue
            if isinstance(handler, logging.NullHandler):
                continue
            if record.levelno >= handler.level:
                return True
        if not node.propagate:
            break
        node = node.parent
    return False


def configure(level: str | None) -> None:
    """Show the ``clientdedupe`` logger's records from ``level`` on, on stderr
    (``CLIENTDEDUPE_LOG``, the launcher's ``--log``): asked for on the command line or in
    the environment, so shown whatever the program does (or does not do) with logging.
    ``None`` changes nothing."""
    if level is None:
        return
    import logging

    log = logger()
    log.setLevel(level.upper())
    if not any(getattr(h, "_clientdedupe_stderr", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("clientdedupe: %(levelname)s: %(message)s"))
        handler._clientdedupe_stderr = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
