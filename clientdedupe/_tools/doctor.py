"""``clientdedupe doctor``: is clientdedupe active here, and if not, why not.

One verdict first: active in this process; or would be active for ``python app.py``
run the same way (a probe runs the ``python`` on ``PATH`` with this environment); or
NOT active, because ..., with the fix. Then every ``CLIENTDEDUPE_*`` variable, judged by
the very parsers start-up uses (``_config``), the dependency, the start-up hooks, the
installed SDKs and versions (warning about a version outside the tested range), and
per class whether it would be patched, and for an async class whether its clients can
be shared across event loops or fall back to sharing within one loop.

The exit code is 1 when what the environment asks for cannot happen here (a bad value,
a missing dependency, a target that is not installed or would be skipped,
``CLIENTDEDUPE=1`` that nothing at start-up reads), else 0: useful as a CI step.
Unlike ``install()``, it imports the installed SDKs to look at their classes.
"""

from __future__ import annotations

import importlib
import os
import sys

from .. import __version__, _config
from .._targets import BUILTIN_TARGETS
from .launcher import LAUNCH_PATH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .._targets import Sdk, Target

_FIX_START_UP = (
    "run the program as `clientdedupe run -- python app.py`, or activate it at every "
    "interpreter start with a sitecustomize.py that calls clientdedupe.startup.activate() "
    "(a ready one: sitecustomize_example/ in the project; see docs/configuration.md)"
)

# What the probe prints: the state of a `python` started with this environment.
_PROBE = """
import json, sys
api = sys.modules.get("clientdedupe._api")
active = bool(api is not None and api._state.installed)
site = getattr(sys.modules.get("sitecustomize"), "__file__", None)
try:
    import clientdedupe
    error = None
except Exception as exc:
    error = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps({"active": active, "prefix": sys.prefix, "executable": sys.executable,
                  "version": "%d.%d.%d" % sys.version_info[:3], "import_error": error,
                  "sitecustomize": site}))
"""


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _in_range(version: str, sdk: Sdk) -> bool:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return False
    first, end = sdk.supported
    return first <= major < end


def _verdict(target: Target) -> str:
    from .._runtime import Unsupported, inspect_target, resource_bases

    try:
        importlib.import_module(target.module)
        inspect_target(target)
        resource_bases(target.sdk)
    except Unsupported as why:
        return f"would be skipped: {why}"
    except Exception as error:
        return f"would be skipped: {type(error).__name__} on import"
    return "would be patched"


def _async_note(target: Target, mode: str) -> str:
    """How async clients of ``target`` would be shared in ``mode``."""
    if mode == "off":
        return f"; async: not shared ({_config.ASYNC}=off)"
    if mode == "loop":
        return f"; async: shared within one event loop ({_config.ASYNC}=loop)"
    from .._runtime import async_pool_classes

    if async_pool_classes(target.sdk):
        return "; async: shared across event loops, one connection pool per loop"
    return (
        "; async: falls back to sharing within one event loop (this version's "
        "connection pool cannot be made one per event loop)"
    )


def _is_async(target: Target) -> bool:
    if target.is_async is not None:
        return target.is_async
    import inspect

    try:
        cls = getattr(importlib.import_module(target.module), target.name)
        return inspect.iscoroutinefunction(getattr(cls, "close", None))
    except Exception:
        return False


class Findings:
    """What the doctor found: problems (exit 1) and the settings start-up would use."""

    def __init__(self) -> None:
        #: Things the environment asks for that cannot happen here.
        self.problems: list[str] = []
        self.selected: set[str] = set()
        self.async_mode = _config.DEFAULT_ASYNC_MODE
        #: Selected classes that would be skipped, with why.
        self.skipped: list[str] = []

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def sdk_lines(
    targets: tuple[Target, ...] = BUILTIN_TARGETS, findings: Findings | None = None
) -> list[str]:
    """One block per SDK: version, range check, and a verdict per class."""
    found = findings or Findings()
    selected = found.selected or {t.qualname for t in targets}
    lines = []
    sdks: dict[str, list[Target]] = {}
    for target in targets:
        sdks.setdefault(target.sdk.distribution, []).append(target)
    for distribution, members in sdks.items():
        sdk = members[0].sdk
        first, end = sdk.supported
        tested = f"{first}.x" if end == first + 1 else f"{first}.x to {end - 1}.x"
        version = _version(distribution)
        if version is None:
            lines.append(f"  {distribution}: not installed (pip install {distribution})")
            continue
        warning = "" if _in_range(version, sdk) else f"  WARNING: outside the tested {tested}"
        lines.append(f"  {distribution} {version} (tested: {tested}){warning}")
        for target in members:
            if target.qualname not in selected:
                lines.append(f"    {target.qualname:<34} not selected ({_config.TARGETS})")
                continue
            verdict = _verdict(target)
            if verdict != "would be patched":
                found.skipped.append(f"{target.qualname} {verdict}")
            elif _is_async(target):
                verdict += _async_note(target, found.async_mode)
            lines.append(f"    {target.qualname:<34} {verdict}")
    return lines


def _sitecustomize() -> tuple[str | None, bool]:
    """The sitecustomize.py Python would run here (the launcher's aside), and whether
    it calls clientdedupe."""
    from importlib.machinery import PathFinder

    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != LAUNCH_PATH]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.origin is None:
        return None, False
    try:
        with open(spec.origin, encoding="utf-8") as source:
            return spec.origin, "clientdedupe" in source.read()
    except OSError:
        return spec.origin, False


def _probe() -> tuple[str, dict[str, Any] | None]:
    """Run the ``python`` (else ``python3``) on ``PATH`` with this environment, as
    ``python app.py`` would run, and report its state."""
    import json
    import shutil
    import subprocess

    for name in ("python", "python3"):
        executable = shutil.which(name)
        if executable is None:
            continue
        try:
            done = subprocess.run(
                [executable, "-c", _PROBE],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            state: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except Exception:
            return name, None
        return name, state
    return "python", None


def _check_environment(findings: Findings) -> list[str]:
    """Every ``CLIENTDEDUPE_*`` variable: its value and what start-up makes of it."""
    from .._api import _add
    from .._register import make_target

    env = os.environ
    report = findings.problem
    lines = []

    def show(variable: str, meaning: str) -> None:
        value = env.get(variable)
        shown = "(unset)" if value is None else f"{value}"
        lines.append(f"  {variable + ':':<28} {shown} -> {meaning}")

    enabled = _config.flag(_config.ENABLED, report=report)
    show(
        _config.ENABLED,
        {
            True: "on: activate at start-up (sitecustomize, launcher)",
            False: "off: the kill switch, nothing activates (install() does nothing)",
            None: "unset: only an explicit clientdedupe.install() activates",
        }[enabled],
    )
    for spec in _config.comma_list(_config.EXTRA_TARGETS) or ():
        try:
            _add(make_target(spec, source="environment"))
        except ValueError as error:
            report(f"ignoring {_config.EXTRA_TARGETS} entry {spec!r}: {error}")
    before = len(findings.problems)
    chosen = _config.targets(report=report)
    findings.selected = {t.qualname for t in chosen}
    named = _config.comma_list(_config.TARGETS)
    named_and_valid = named is not None and len(findings.problems) == before
    if named is None:
        show(_config.TARGETS, "every target")
    elif not named_and_valid:
        show(_config.TARGETS, "every target (the value is ignored: see Problems)")
    else:
        show(_config.TARGETS, ", ".join(sorted(findings.selected)))
    show(_config.MAX_CLIENTS, f"max_clients={_config.max_clients(None, report=report)}")
    findings.async_mode = _config.async_mode(None, report=report)
    show(_config.ASYNC, f"async_mode={findings.async_mode}")
    level = _config.log_level(report=report)
    show(_config.LOG, f"{level} and above on stderr" if level else "nothing logged unless asked")
    reporting = _config.flag(_config.REPORT, report=report)
    show(_config.REPORT, "a summary per class at exit" if reporting else "no exit report")
    show(
        _config.EXTRA_TARGETS,
        "no extra class" if _config.EXTRA_TARGETS not in env else "registered (below)",
    )
    known = set(_config.ALL_VARIABLES)
    for variable in sorted(v for v in env if v.startswith(_config.ENABLED) and v not in known):
        import difflib

        close = difflib.get_close_matches(variable, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        report(f"{variable} is not a clientdedupe variable{hint}: it is ignored")
    # A target named explicitly must be there to be deduplicated.
    if named_and_valid:
        for sdk in {t.sdk.distribution: t.sdk for t in chosen if t.source == "built-in"}.values():
            if _version(sdk.distribution) is None:
                report(
                    f"{_config.TARGETS} names {sdk.distribution}, which is not installed "
                    f"here (pip install {sdk.distribution})"
                )
    return lines


#: The oldest wrapt clientdedupe works with (pyproject.toml: wrapt>=1.17).
_WRAPT_MINIMUM = (1, 17)


def _wrapt_problem() -> str | None:
    """Why wrapt, which patching needs, is unusable here, with the fix; or None."""
    fix = f"fix: {sys.executable} -m pip install 'wrapt>=1.17'"
    try:
        import wrapt  # noqa: F401
    except Exception as error:
        return (
            f"clientdedupe needs wrapt, which cannot be imported here "
            f"({type(error).__name__}: {error}): nothing would be deduplicated; {fix}"
        )
    version = _version("wrapt")
    if version is not None:
        parts = [int(part) for part in version.split(".")[:2] if part.isdigit()]
        if tuple(parts) < _WRAPT_MINIMUM:
            return f"clientdedupe needs wrapt >= 1.17, this is {version}; {fix}"
    return None


def _verdict_lines(
    findings: Findings,
    active_here: bool,
    wrapt_problem: str | None,
    probe: tuple[str, dict[str, Any] | None],
) -> list[str]:
    """The verdict and its fix, and the problems it adds to ``findings``."""
    env = os.environ
    raw = env.get(_config.ENABLED)
    enabled = _config.flag(_config.ENABLED, report=lambda message: None)
    launcher = LAUNCH_PATH in env.get("PYTHONPATH", "").split(os.pathsep)
    site, site_calls_us = _sitecustomize()
    through = "clientdedupe run" if launcher else f"the sitecustomize at {site}"
    name, state = probe
    if wrapt_problem is not None:
        findings.problem(wrapt_problem)
        return [
            "Verdict: NOT active: clientdedupe needs wrapt, which cannot be imported here.",
            f"Fix: {sys.executable} -m pip install 'wrapt>=1.17'",
        ]
    if enabled is False:
        return [
            f"Verdict: NOT active, because {_config.ENABLED}={raw} is set: the operator's "
            "kill switch wins over everything (install() in code, the launcher).",
            f"Fix: unset {_config.ENABLED} (or set it to 1) where the program starts.",
        ]
    if enabled is None and raw is not None and raw.strip():
        return [
            f"Verdict: NOT active, because {_config.ENABLED}={raw!r} is not a boolean.",
            f"Fix: {_config.ENABLED}=1 to activate at start-up, 0 for the kill switch.",
        ]
    if enabled is None:
        return [
            f"Verdict: NOT active at start-up, because {_config.ENABLED} is unset: only "
            "an explicit clientdedupe.install() in the program activates it.",
            f"Fix: {_FIX_START_UP}.",
        ]
    if active_here:
        lines = [f"Verdict: active in this process (through {through})."]
        if state is not None and not state.get("active"):
            why = (
                f"cannot import clientdedupe ({state['import_error']})"
                if state.get("import_error")
                else "does not activate it"
            )
            lines.append(
                f"But NOT for `{name} app.py`: the `{name}` on PATH, {state['executable']}, "
                f"{why}; run the program with {sys.executable}, or install clientdedupe "
                "there."
            )
        return lines
    if state is not None and state.get("active"):
        return [
            f"Verdict: would be active for `{name} app.py` run as you just did (the "
            f"`{name}` on PATH, {state['executable']}), but not in this process."
        ]
    if sys.flags.no_site or sys.flags.isolated:
        why = "this interpreter was started with -S or -I, which skip sitecustomize"
    elif site is not None and not site_calls_us:
        why = (
            f"the sitecustomize.py Python runs here, {site}, does not call clientdedupe "
            "(Python runs only the first one on the path), and this is not under "
            "clientdedupe run"
        )
    elif site is None and not launcher:
        why = (
            "nothing at interpreter start reads it: there is no sitecustomize.py on the "
            "path, and this is not under clientdedupe run"
        )
    else:
        why = f"{through} ran but did not activate it (see its message on stderr)"
    findings.problem(f"{_config.ENABLED}=1 is set, but clientdedupe is not active: {why}")
    return [f"Verdict: NOT active, because {why}.", f"Fix: {_FIX_START_UP}."]


def start_up_lines(probe: tuple[str, dict[str, Any] | None]) -> list[str]:
    """The start-up hooks and the ``python`` on ``PATH``."""
    site, site_calls_us = _sitecustomize()
    if site is None:
        site_line = "no sitecustomize.py on the path"
    elif site_calls_us:
        site_line = f"{site} (calls clientdedupe: activates it when {_config.ENABLED} is on)"
    else:
        site_line = f"{site} (does not call clientdedupe)"
    launcher = LAUNCH_PATH in os.environ.get("PYTHONPATH", "").split(os.pathsep)
    name, state = probe
    if state is None:
        python_line = f"no `{name}` on PATH that could be run"
    else:
        which = "this interpreter" if state.get("prefix") == sys.prefix else "another environment"
        if state.get("import_error"):
            does = f"cannot import clientdedupe ({state['import_error']})"
        else:
            does = "clientdedupe active at start" if state.get("active") else "not active at start"
        python_line = f"{state['executable']} ({which}, Python {state['version']}): {does}"
    return [
        f"  this process: {sys.executable}",
        f"  sitecustomize: {site_line}",
        f"  launcher: {'yes, running under clientdedupe run' if launcher else 'no'}",
        f"  `{name}` on PATH: {python_line}",
    ]


def registered_lines() -> list[str]:
    """The targets added by ``register()`` or ``CLIENTDEDUPE_EXTRA_TARGETS``."""
    from .._targets import registered

    if not registered:
        return ["  none (clientdedupe.register() or CLIENTDEDUPE_EXTRA_TARGETS add some)"]
    return [f"    {t.qualname:<34} {t.source}: {_verdict(t)}" for t in registered]


def doctor() -> int:
    """Print the report; returns 1 if what the environment asks for cannot happen."""
    from .._api import is_installed

    active_here = is_installed()  # before anything here could change it
    findings = Findings()
    environment = _check_environment(findings)
    wrapt_problem = _wrapt_problem()
    probe = _probe()
    verdict = _verdict_lines(findings, active_here, wrapt_problem, probe)
    sdks = sdk_lines(BUILTIN_TARGETS, findings)
    asked = _config.flag(_config.ENABLED, report=lambda message: None) is True
    if asked and wrapt_problem is None:
        for skipped in findings.skipped:
            findings.problem(skipped)
    wrapt_version = _version("wrapt") or "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    print(f"clientdedupe {__version__} on Python {python}, wrapt {wrapt_version}")
    print("\n".join(verdict))
    if findings.problems:
        print("Problems (what the environment asks for that cannot happen here):")
        print("\n".join(f"  - {problem}" for problem in findings.problems))
    print("Environment:")
    print("\n".join(environment))
    print("Start-up:")
    print("\n".join(start_up_lines(probe)))
    print("SDKs:")
    print("\n".join(sdks))
    print("Registered targets:")
    print("\n".join(registered_lines()))
    return 1 if findings.problems else 0
