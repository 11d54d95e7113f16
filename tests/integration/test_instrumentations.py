"""Observability instrumentations, unmodified, around shared clients (SPEC §9): each
records every call exactly once, as it does with one client per agent, while thirty
``OpenAI()`` and thirty ``AsyncOpenAI()`` are one client each (30 -> 1).

And the two ways to stack ``clientdedupe run`` with ``opentelemetry-instrument``: its
start-up hook goes first on the path and never chains, so only
``opentelemetry-instrument clientdedupe run -- python app.py`` can work; the other order
is refused before the program runs, naming the one that works."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .frameworks import (
    LAUNCHER,
    PLAIN,
    Activation,
    assert_never_worse,
    before_after,
    needs,
    run_app,
)

AGENTS = 30
ANSWERS = [f"echo: agent {n}" for n in range(AGENTS)] + [
    f"echo: async agent {n}" for n in range(AGENTS)
]
#: OpenTelemetry on (the other tests turn it off), exporting nowhere but in memory.
ENVIRONMENT = {
    "OPENAI_API_KEY": "sk-test",
    "OPENAI_BASE_URL": "{server.openai_base_url}",
    "OTEL_SDK_DISABLED": "false",
}
INSTRUMENTATIONS = {
    "opentelemetry": ("opentelemetry.instrumentation.openai_v2", "opentelemetry.sdk"),
    "openinference": ("openinference.instrumentation.openai", "opentelemetry.sdk"),
    "logfire": ("logfire",),
    "sentry": ("sentry_sdk",),
}
OPENTELEMETRY_INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")
LAUNCHERS = ("opentelemetry.instrumentation.auto_instrumentation", "opentelemetry.distro")


@pytest.mark.parametrize(
    "instrumentation",
    [pytest.param(name, marks=needs(*modules)) for name, modules in INSTRUMENTATIONS.items()],
)
def test_every_call_is_recorded_exactly_once_around_one_shared_client(
    instrumentation: str,
) -> None:
    before, after = before_after("instrumented_app.py", instrumentation, **ENVIRONMENT)

    assert before["answers"] == after["answers"] == ANSWERS
    assert [len(spans) for spans in after["spans"]] == [1] * len(ANSWERS)
    assert after["spans"] == before["spans"]
    assert (before["sync_clients"], before["async_clients"]) == (AGENTS, AGENTS)
    assert (after["sync_clients"], after["async_clients"]) == (1, 1)
    # One sync pool, and the event loop's pool behind the shared async client.
    assert (before.peak, after.peak) == (2 * AGENTS, 2)
    assert_never_worse(before, after)


@needs(*LAUNCHERS, "opentelemetry.instrumentation.openai_v2")
def test_opentelemetry_instrument_then_clientdedupe_run_records_spans_and_shares_clients() -> None:
    prefix = (OPENTELEMETRY_INSTRUMENT,)
    before = run_app(
        "instrumented_app.py", "launcher", activation=PLAIN, prefix=prefix, **ENVIRONMENT
    )
    after = run_app(
        "instrumented_app.py", "launcher", activation=LAUNCHER, prefix=prefix, **ENVIRONMENT
    )

    assert before["answers"] == after["answers"] == ANSWERS
    # Every OpenAI instrumentation installed here records each call, once.
    assert all(spans and len(set(spans)) == len(spans) for spans in before["spans"])
    assert after["spans"] == before["spans"]
    assert (after["sync_clients"], after["async_clients"]) == (1, 1)  # clientdedupe is on
    assert_never_worse(before, after)


@needs(*LAUNCHERS)
def test_clientdedupe_run_then_opentelemetry_instrument_is_refused_naming_the_order_that_works() -> (
    None
):
    stacked = Activation(
        "clientdedupe run -- opentelemetry-instrument",
        (*LAUNCHER.command, OPENTELEMETRY_INSTRUMENT),
        deduplicated=True,
    )

    refused = run_app(
        "instrumented_app.py", "launcher", activation=stacked, check=False, **ENVIRONMENT
    )

    assert refused.returncode == 2, refused.describe()
    assert "opentelemetry-instrument clientdedupe run" in refused.stderr
    assert refused.requests == []  # refused before the program ran
