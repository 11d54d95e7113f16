"""``clientdedupe doctor``: what clientdedupe would do in this environment.

Installed SDKs and their versions (warning about a version outside the tested range),
which classes would be patched and which skipped (and why), and whether activation is
on here and through what. Unlike ``install()``, it imports the installed SDKs to look
at their classes.
"""

from __future__ import annotations

import importlib
import os
import sys

from . import __version__, _config
from ._launcher import LAUNCH_PATH
from ._targets import BUILTIN_TARGETS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._targets import Sdk, Target


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
    from ._runtime import Unsupported, inspect_target, resource_bases

    try:
        importlib.import_module(target.module)
        inspect_target(target)
        resource_bases(target.sdk)
    except Unsupported as why:
        return f"would be skipped: {why}"
    except Exception as error:
        return f"would be skipped: {type(error).__name__} on import"
    return "would be patched"


def sdk_lines(targets: tuple[Target, ...] = BUILTIN_TARGETS) -> list[str]:
    """One block per SDK: version, range check, and a verdict per class."""
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
        lines.extend(f"    {t.qualname:<34} {_verdict(t)}" for t in members)
    return lines


def _sitecustomize() -> str:
    from importlib.machinery import PathFinder

    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != LAUNCH_PATH]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.origin is None:
        return "no sitecustomize.py on the path"
    try:
        with open(spec.origin, encoding="utf-8") as source:
            calls_us = "clientdedupe" in source.read()
    except OSError:
        calls_us = False
    if calls_us:
        return f"{spec.origin} (activates clientdedupe when {_config.ENABLED} is on)"
    return f"{spec.origin} (does not mention clientdedupe)"


def activation_lines() -> list[str]:
    """Whether activation is on here, and through what."""
    enabled = _config.flag(_config.ENABLED)
    meaning = {
        True: "on: activated at start-up (sitecustomize or launcher)",
        False: "off: a kill switch, install() does nothing",
        None: "unset: only an explicit clientdedupe.install() activates",
    }[enabled]
    launcher = LAUNCH_PATH in os.environ.get("PYTHONPATH", "").split(os.pathsep)
    lines = [
        f"  {_config.ENABLED}: {os.environ.get(_config.ENABLED, '(unset)')} ({meaning})",
        f"  sitecustomize: {_sitecustomize()}",
        f"  launcher: {'yes, running under clientdedupe run' if launcher else 'no'}",
    ]
    for variable in _config.ALL_VARIABLES[1:]:
        if variable in os.environ:
            lines.append(f"  {variable}={os.environ[variable]}")
    return lines


def registered_lines() -> list[str]:
    """The targets added by ``register()`` or ``CLIENTDEDUPE_EXTRA_TARGETS``."""
    from ._api import _register_from_environment
    from ._targets import registered

    _register_from_environment()
    if not registered:
        return ["  none (clientdedupe.register() or CLIENTDEDUPE_EXTRA_TARGETS add some)"]
    return [f"    {t.qualname:<34} {t.source}: {_verdict(t)}" for t in registered]


def doctor() -> int:
    """Print the report; returns 0."""
    wrapt_version = _version("wrapt") or "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    print(f"clientdedupe {__version__} on Python {python}, wrapt {wrapt_version}")
    print("SDKs:")
    print("\n".join(sdk_lines()))
    print("Registered targets:")
    print("\n".join(registered_lines()))
    print("Activation:")
    print("\n".join(activation_lines()))
    return 0
