"""How the cache key of a construction is built (SPEC §5).

Two constructions share a client only when the client built by the first would behave
identically for the second: same class, same arguments once normalised, same values of
the environment variables the constructor would read. The key is on the hot path of
every construction, so it is built from tuples and frozensets, reads only the variables
that matter, and never formats or hashes anything expensive.
"""

from __future__ import annotations

import inspect
import os
import weakref

from . import _environ
from ._targets import PROXIES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping
    from typing import Any

    from ._targets import Target

_SCALARS = frozenset({str, int, float, bool, bytes, type(None), complex})
_UNKNOWN = object()  # not a parameter at all
_MAX_PLANS = 256


class Unkeyable(Exception):
    """This construction is not deduplicated; the reason is the message."""


class ByIdentity:
    """A key part for an object without value semantics (an ``http_client``, a
    callable ``api_key``): equal only to a part for the same, live object.

    It holds the object weakly where it can: a key must not keep a caller's
    ``http_client`` (and its sockets) alive once no client uses it. Equality needs the
    object alive on both sides, so a later object given the same ``id`` never matches.
    """

    __slots__ = ("_id", "_ref")

    def __init__(self, obj: object) -> None:
        self._id = id(obj)
        try:
            self._ref: Callable[[], object] = weakref.ref(obj)
        except TypeError:
            self._ref = lambda: obj  # cannot be weakly referenced: held, as any argument

    def __hash__(self) -> int:
        return self._id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ByIdentity):
            return False
        mine = self._ref()
        return mine is not None and mine is other._ref()

    def __repr__(self) -> str:
        # Never the object's own repr: it may hold a secret, or raise.
        obj = self._ref()
        return f"<{type(obj).__name__} at {self._id:#x}>"


def freeze(value: object) -> Hashable:
    """A hashable stand-in for ``value`` comparing by value for plain data (str,
    numbers, dicts, lists, ...) and by identity for everything else."""
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)
    if kind is dict:
        # In order: the SDKs send headers in this order, and two names differing only
        # in case ({"X-Tenant": "a", "x-tenant": "b"}) send the last one's value.
        items = value.items()  # type: ignore[attr-defined]
        return (dict, tuple((freeze(k), freeze(v)) for k, v in items))
    if kind is list or kind is tuple:
        return (kind, tuple(freeze(v) for v in value))  # type: ignore[attr-defined]
    if kind is set or kind is frozenset:
        return (kind, frozenset(freeze(v) for v in value))  # type: ignore[attr-defined]
    return ByIdentity(value)


def holds_identity(key: object) -> bool:
    """Whether ``key`` compares some object by identity (``ByIdentity``)."""
    # A loop over a stack, not recursion: this runs on the hit path of async classes.
    stack: list[Any] = [key]
    pop, extend = stack.pop, stack.extend
    while stack:
        part = pop()
        kind = type(part)
        if kind is tuple:
            if part and part[0] not in _SCALARS:  # (str, "x") and the like: plain data
                extend(part)
        elif kind is ByIdentity:
            return True
        elif kind is frozenset:
            extend(part)
    return False


def holds_loop_state(key: Hashable) -> bool:
    """Whether an argument of ``key`` (``KeyBuilder.build``'s) other than
    ``http_client`` is an object compared by identity."""
    items = key[1]  # type: ignore[index]
    return any(
        type(value) is not str and name != "http_client" and holds_identity(value)
        for name, value in items
    )


def detach(value: object) -> object:
    """A copy of the mutable containers in ``value``, so that a shared client never
    keeps a reference to a caller's dict or list (SPEC §5)."""
    kind = type(value)
    if kind is dict:
        return {k: detach(v) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind is list:
        return [detach(v) for v in value]  # type: ignore[attr-defined]
    if kind is set:
        return {detach(v) for v in value}  # type: ignore[attr-defined]
    if kind is tuple:
        return tuple(detach(v) for v in value)  # type: ignore[attr-defined]
    return value


class KeyBuilder:
    """Builds the keys of one target class, from its constructor's real signature."""

    __slots__ = (
        "_accepts_any",
        "_always",
        "_binding",
        "_defaults",
        "_env_plan",
        "_file_params",
        "_plans",
        "_reads_files",
        "_unless_params",
        "_unless_variables",
        "_whole_env",
        "target",
    )

    def __init__(self, target: Target, init: Callable[..., object]) -> None:
        self.target = target
        parameters = list(inspect.signature(init).parameters.values())[1:]
        self._defaults: dict[str, object] = {
            p.name: p.default  # inspect.Parameter.empty for one without a default
            for p in parameters
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }
        self._accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
        # Only the parameters this version of the SDK has: a variable whose parameter
        # is missing is read whatever the arguments.
        plan: list[tuple[str, tuple[str, ...]]] = []
        always = list(target.env_always)
        for parameter, names in target.env:
            if parameter in self._defaults:
                plan.append((parameter, names))
            else:
                always.extend(names)
        self._env_plan = tuple(plan)
        self._always = tuple(always)
        #: explicit parameters → (the variables to read, encoded for ``_binding``, and
        #: whether the proxy variables are read): computed once per call shape.
        self._plans: dict[tuple[str, ...], tuple[tuple[object, ...], bool]] = {}
        self._binding = _environ.binding()
        self._whole_env = target.env_whole
        self._file_params = target.file_params
        self._unless_params = tuple(n for n in target.files_unless if n in self._defaults)
        self._unless_variables = tuple(n for n in target.files_unless if n not in self._defaults)
        self._reads_files = bool(self._file_params or self._unless_params or self._unless_variables)

    def build(self, args: tuple[object, ...], kwargs: Mapping[str, object]) -> Hashable:
        """The key of ``cls(*args, **kwargs)``; raises ``Unkeyable`` to bypass."""
        if args:
            raise Unkeyable("positional arguments")
        defaults = self._defaults
        items = []
        explicit = []
        for name, value in kwargs.items():
            default = defaults.get(name, _UNKNOWN)
            if default is _UNKNOWN and not self._accepts_any:
                raise Unkeyable("unknown keyword argument")
            if value is default:
                continue
            kind = type(value)
            if kind is str:  # the common case, first (a str never equals a non-str default)
                if value != default:
                    items.append((name, value))
                    explicit.append(name)
                continue
            if kind is type(default) and (
                # Defaults spelled out give the same key as defaults left off. Sentinels
                # such as openai's NOT_GIVEN are compared by type: any instance is "not given".
                (kind in _SCALARS and value == default) or kind.__name__ in ("NotGiven", "Omit")
            ):
                continue
            items.append((name, freeze(value)))
            if value is not None:
                explicit.append(name)
        shape = tuple(explicit)
        binding = self._binding
        if os.environ is not binding.environ:
            binding = self._rebind()
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan(shape, binding)
        names, with_proxies = plan
        if self._reads_files:
            self._refuse_files(shape, binding)
        env = tuple(map(binding.get, names))
        proxies = binding.proxies() if with_proxies else None
        if self._whole_env:
            env = (*env, binding.snapshot())
        return (self.target, frozenset(items), env, proxies)

    def _rebind(self) -> _environ.Binding:
        """``os.environ`` is another object now (a test replaced it, or put it back)."""
        self._plans = {}
        self._binding = binding = _environ.binding()
        return binding

    def _plan(
        self, explicit: tuple[str, ...], binding: _environ.Binding
    ) -> tuple[tuple[object, ...], bool]:
        """The variables the constructor reads when the parameters ``explicit`` are
        given: only those of the parameters left out."""
        names = list(self._always)
        for parameter, variables in self._env_plan:
            if parameter not in explicit:
                names.extend(variables)
        with_proxies = PROXIES in names
        encoded = tuple(binding.encode(name) for name in names if name != PROXIES)
        plans = self._plans
        if len(plans) >= _MAX_PLANS:
            plans.clear()
        plan = plans[explicit] = (encoded, with_proxies)
        return plan

    def _refuse_files(self, explicit: tuple[str, ...], binding: _environ.Binding) -> None:
        """Raise ``Unkeyable`` if this construction would read configuration files,
        whose content cannot be part of the key."""
        if any(name in explicit for name in self._file_params):
            raise Unkeyable("configuration read from files")
        if not self._unless_params and not self._unless_variables:
            return
        if any(name in explicit for name in self._unless_params):
            return
        if any(binding.get(binding.encode(name)) for name in self._unless_variables):
            return
        raise Unkeyable("credentials read from files")
