"""Cerebras: each ``Cerebras()`` sends a warm-up request (``GET /v1/tcp_warming``) at
construction. N constructions, without and with clientdedupe, in this process."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import clientdedupe

from .report import Row, Target, not_run

if TYPE_CHECKING:
    from clientdedupe._tools.stub_server import StubServer

SECTION = "Cerebras: warm-up requests at construction"


def _constructions(server: StubServer, cls: type, n: int) -> tuple[int, float]:
    """Warm-up requests the server received and seconds taken for ``n`` constructions,
    kept alive together as agents would keep them."""
    server.reset_counters()
    started = time.perf_counter()
    clients = [cls(api_key="csk-bench", base_url=server.cerebras_base_url) for _ in range(n)]
    seconds = time.perf_counter() - started
    warm_ups = sum(1 for request in server.requests if request.path == "/v1/tcp_warming")
    del clients
    return warm_ups, seconds


def measure(server: StubServer, n: int) -> list[Row]:
    """The warm-up requests and wall time of ``n`` constructions."""
    warm_ups_label = f"warm-up requests, {n} constructions"
    wall_label = f"wall time of {n} constructions"
    try:
        from cerebras.cloud.sdk import Cerebras
    except ImportError:
        why = "cerebras-cloud-sdk is not installed"
        return [
            not_run("cerebras.warmups", SECTION, warm_ups_label, "count", why),
            not_run("cerebras.wall", SECTION, wall_label, "s", why),
        ]
    warm_ups_without, seconds_without = _constructions(server, Cerebras, n)
    clientdedupe.install()
    try:
        warm_ups_with, seconds_with = _constructions(server, Cerebras, n)
    finally:
        clientdedupe.uninstall()
    return [
        Row(
            "cerebras.warmups",
            SECTION,
            warm_ups_label,
            "count",
            warm_ups_without,
            warm_ups_with,
            Target("to_one", n=n),
        ),
        Row("cerebras.wall", SECTION, wall_label, "s", seconds_without, seconds_with),
    ]
