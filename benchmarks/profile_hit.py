"""cProfile of the cache-hit path: where a hit's time goes, function by function.

``python benchmarks/run.py --profile`` prints it. cProfile's own overhead inflates
every call, so read the shares, not the absolute times (those are in the table).
"""

from __future__ import annotations

import cProfile
import io
import pstats
from typing import TYPE_CHECKING, Any

import clientdedupe

from .constructors import DICT_ARGUMENTS

if TYPE_CHECKING:
    from clientdedupe._tools.stub_server import StubServer


def profile(server: StubServer, *, calls: int = 20000, top: int = 14) -> str:
    """The profile of ``calls`` cache hits of ``openai.OpenAI``, with simple and with
    dict keyword arguments, sorted by own time."""
    try:
        import openai
    except ImportError:
        return "not run: openai is not installed"
    cls: Any = openai.OpenAI
    out = io.StringIO()
    clientdedupe.install()
    try:
        for title, kwargs in (
            ("simple keyword arguments", {"api_key": "sk", "base_url": server.openai_base_url}),
            (
                "dict keyword arguments",
                {"api_key": "sk", "base_url": server.openai_base_url, **DICT_ARGUMENTS},
            ),
        ):
            cls(**kwargs)  # the miss
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                cls(**kwargs)
            profiler.disable()
            out.write(f"--- openai.OpenAI cache hit, {title}, {calls} calls ---\n")
            stats = pstats.Stats(profiler, stream=out)
            stats.strip_dirs().sort_stats("tottime").print_stats(top)
    finally:
        clientdedupe.uninstall()
    return out.getvalue()
