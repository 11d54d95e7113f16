"""Targets beyond the built-in table: ``clientdedupe.register()`` and
``CLIENTDEDUPE_EXTRA_TARGETS``.

A registered class must be shaped like the SDK clients clientdedupe knows: a class
with a keyword-only ``__init__``, no ``__new__`` of its own, and a ``close()``. From
code, a class that is not is refused at once with ``ValueError``; from the environment,
where the SDK is not imported yet, it is skipped with one warning when it is imported.
"""

from __future__ import annotations

from ._targets import HTTP_ENV, EnvPlan, Sdk, Target, all_targets

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Any major version: a registered SDK's range is its user's business.
_ANY_VERSION = (0, 1_000_000)


def parse(spec: str) -> tuple[str, str]:
    """``"package.module:ClassName"`` as ``(module, class name)``; ``ValueError`` if
    it is not of that form."""
    module, sep, name = spec.strip().partition(":")
    if (
        not sep
        or not module
        or not name.isidentifier()
        or not all(part.isidentifier() for part in module.split("."))
    ):
        raise ValueError(f"expected 'package.module:ClassName', got {spec!r}")
    return module, name


def make_target(
    spec: str,
    *,
    env: Mapping[str, str | Sequence[str]] | None = None,
    env_always: Sequence[str] = (),
    is_async: bool | None = None,
    source: str,
) -> Target:
    """The target for ``spec``: the built-in one if it names a built-in class."""
    module, name = parse(spec)
    for target in all_targets():
        if (target.module, target.name) == (module, name):
            return target
    package = module.split(".")[0]
    sdk = Sdk(package, package, _ANY_VERSION)
    if env is None:
        # Unknown variables (an SDK may read MISTRAL_API_KEY from package mistralai,
        # or HF_TOKEN): the whole environment is in the key.
        plan: EnvPlan = (("http_client", HTTP_ENV),)
        whole = True
    else:
        given = ((p, (n,) if isinstance(n, str) else tuple(n)) for p, n in env.items())
        plan = (*given, ("http_client", HTTP_ENV))
        whole = False
    return Target(
        sdk,
        module,
        name,
        is_async=is_async,
        env=plan,
        env_always=tuple(env_always),
        env_whole=whole,
        source=source,
    )


def check(target: Target) -> None:
    """Import the class now and raise ``ValueError`` if it cannot be patched safely."""
    import importlib

    from ._runtime import Unsupported, inspect_target

    try:
        importlib.import_module(target.module)
    except ImportError as error:
        raise ValueError(f"cannot register {target.qualname}: {error}") from None
    try:
        inspect_target(target)
    except Unsupported as why:
        raise ValueError(f"cannot register {target.qualname}: {why}") from None
