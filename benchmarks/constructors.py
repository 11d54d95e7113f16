"""Constructor cost, per class: plain construction, cache hit, and the floor.

The floor is a bare Python class whose ``__new__`` does one dict lookup, called with the
same arguments: the least any interception of a constructor can cost. Hits are measured
with simple keyword arguments (``api_key``, ``base_url``) and with dict arguments
(``default_headers``, ``default_query``), whose keys must be compared by value.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import statistics
import time
import timeit
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import clientdedupe

from .report import Row, Target, not_run

if TYPE_CHECKING:
    from clientdedupe._tools.stub_server import StubServer

SECTION = "Constructor cost (median per construction)"
_T = TypeVar("_T")
HIT_VS_PLAIN = Target("lower", 5000)
HIT_VS_FLOOR = Target("within", 1.5)
DICT_ARGUMENTS: dict[str, Any] = {
    "default_headers": {"X-Agent": "benchmark"},
    "default_query": {"tenant": "benchmark"},
}


@dataclass(frozen=True)
class ClientClass:
    """A target class and the arguments that point it at the loopback server."""

    qualname: str
    is_async: bool
    arguments: Callable[[StubServer], dict[str, Any]]

    def load(self) -> type | None:
        """The class, or None if its SDK is not installed."""
        module, _, name = self.qualname.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError:
            return None
        return cls if isinstance(cls, type) else None


def _openai(server: StubServer) -> dict[str, Any]:
    return {"api_key": "sk-bench", "base_url": server.openai_base_url}


def _azure(server: StubServer) -> dict[str, Any]:
    return {
        "api_key": "sk-bench",
        "azure_endpoint": server.azure_endpoint,
        "api_version": "2024-06-01",
    }


def _groq(server: StubServer) -> dict[str, Any]:
    return {"api_key": "gsk-bench", "base_url": server.groq_base_url}


def _cerebras(server: StubServer) -> dict[str, Any]:
    return {"api_key": "csk-bench", "base_url": server.cerebras_base_url}


CLASSES = (
    ClientClass("openai.OpenAI", False, _openai),
    ClientClass("openai.AsyncOpenAI", True, _openai),
    ClientClass("openai.AzureOpenAI", False, _azure),
    ClientClass("openai.AsyncAzureOpenAI", True, _azure),
    ClientClass("groq.Groq", False, _groq),
    ClientClass("groq.AsyncGroq", True, _groq),
    ClientClass("cerebras.cloud.sdk.Cerebras", False, _cerebras),
    ClientClass("cerebras.cloud.sdk.AsyncCerebras", True, _cerebras),
)


class Floor:
    """The least a constructor interception can cost: one dict lookup in ``__new__``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Floor:
        return _FLOOR_INSTANCES[cls]


_FLOOR_INSTANCES: dict[type, Floor] = {Floor: object.__new__(Floor)}


def _in_loop(function: Callable[[], _T], is_async: bool) -> _T:
    """``function()``, inside a running event loop for an async class (async clients
    are shared within one running loop)."""
    if not is_async:
        return function()

    async def call() -> _T:
        return function()

    return asyncio.run(call())


def plain_cost(cls: type, kwargs: dict[str, Any], samples: int) -> float:
    """Median time of one real construction (each timed on its own)."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        client = cls(**kwargs)
        times.append(time.perf_counter() - started)
        del client
    return statistics.median(times)


def call_costs(
    calls: list[tuple[type, dict[str, Any]]], min_time: float, repeat: int = 7
) -> list[float]:
    """Median time of each ``cls(**kwargs)`` of ``calls``, over ``repeat`` timeit runs
    of at least ``min_time`` each. The runs of the calls alternate, so that a change of
    load on a shared machine weighs on all of them alike."""
    timers = [timeit.Timer("cls(**kwargs)", globals={"cls": c, "kwargs": k}) for c, k in calls]
    numbers = []
    for timer in timers:
        number = 1
        while timer.timeit(number) < min_time:
            number *= 4
        numbers.append(number)
    samples: list[list[float]] = [[] for _ in timers]
    for _ in range(repeat):
        for timer, number, times in zip(timers, numbers, samples):
            times.append(timer.timeit(number) / number)
    return [statistics.median(times) for times in samples]


def measure(server: StubServer, *, samples: int, min_time: float) -> list[Row]:
    """Every class: plain construction (before ``install()``), then cache hits with
    simple and with dict arguments, each next to the floor with the same arguments."""
    loaded = [(spec, spec.load()) for spec in CLASSES]
    plain: dict[str, float] = {}
    for spec, cls in loaded:
        if cls is not None:
            measure_plain = functools.partial(plain_cost, cls, spec.arguments(server), samples)
            plain[spec.qualname] = _in_loop(measure_plain, spec.is_async)
    rows: list[Row] = []
    clientdedupe.install()
    try:
        for spec, cls in loaded:
            if cls is None:
                rows += _missing(spec)
                continue
            floor, hit, floor_dicts, hit_dicts, note = _hits(spec, cls, server, min_time)
            name = spec.qualname
            rows += [
                Row(
                    f"constructor.{name}.hit_vs_plain",
                    SECTION,
                    f"{name}: plain -> cache hit",
                    "s",
                    plain[name],
                    hit,
                    HIT_VS_PLAIN,
                    note,
                ),
                Row(
                    f"constructor.{name}.hit_vs_floor",
                    SECTION,
                    f"{name}: floor -> hit, kwargs",
                    "s",
                    floor,
                    hit,
                    HIT_VS_FLOOR,
                ),
                Row(
                    f"constructor.{name}.dict_hit_vs_floor",
                    SECTION,
                    f"{name}: floor -> hit, dict kwargs",
                    "s",
                    floor_dicts,
                    hit_dicts,
                    HIT_VS_FLOOR,
                ),
            ]
    finally:
        clientdedupe.uninstall()
    return rows


def _hits(
    spec: ClientClass, cls: type, server: StubServer, min_time: float
) -> tuple[float, float, float, float, str]:
    """The floor and the cache hit with simple arguments, then with dict arguments
    (median times), and a note if any timed construction was not a hit."""
    kwargs = spec.arguments(server)
    with_dicts = {**kwargs, **DICT_ARGUMENTS}

    def timed() -> tuple[list[float], int]:
        # The two misses: each key is built once, here.
        cls(**kwargs)
        cls(**with_dicts)
        built = clientdedupe.stats()[spec.qualname]["built"]
        calls = [(Floor, kwargs), (cls, kwargs), (Floor, with_dicts), (cls, with_dicts)]
        costs = call_costs(calls, min_time)
        return costs, clientdedupe.stats()[spec.qualname]["built"] - built

    costs, extra_builds = _in_loop(timed, spec.is_async)
    note = ""
    if extra_builds:
        note = f"{spec.qualname}: {extra_builds} timed constructions were not cache hits"
    floor, hit, floor_dicts, hit_dicts = costs
    return floor, hit, floor_dicts, hit_dicts, note


def _missing(spec: ClientClass) -> list[Row]:
    why = f"{spec.qualname.split('.')[0]} is not installed"
    return [
        not_run(
            f"constructor.{spec.qualname}.{kind}", SECTION, f"{spec.qualname}: {kind}", "s", why
        )
        for kind in ("hit_vs_plain", "hit_vs_floor", "dict_hit_vs_floor")
    ]
