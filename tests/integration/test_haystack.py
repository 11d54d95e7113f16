"""haystack, unmodified: ``OpenAIChatGenerator`` built, run and closed per job: with
``run_async`` + ``close_async`` in each of thirty ``asyncio.run()`` calls, or with
``run`` + ``close`` thirty times.

Each close lets one holder go; the shared client stays for the next construction (the
cache keeps it idle), and an async one's pool per loop is closed as its loop ends:
30 clients -> 1, never two connections at once, nothing left open by async runs.

One generator for the program, ``run_async`` in six successive ``asyncio.run()`` calls:
plain fails every other run ("Event loop is closed"), deduplicated every run answers."""

from __future__ import annotations

import pytest

from .frameworks import assert_never_worse, before_after, needs

pytestmark = needs("haystack")

RUNS = 30


@pytest.mark.parametrize("how", ["async", "sync"])
def test_a_generator_built_run_and_closed_per_job_uses_one_shared_client(how: str) -> None:
    before, after = before_after(
        "haystack_app.py", "{server.openai_base_url}", how, OPENAI_API_KEY="sk-test"
    )

    answers = [f"echo: run {run}" for run in range(RUNS)]
    assert before["answers"] == after["answers"] == answers
    assert (before["clients"], after["clients"]) == (RUNS, 1)
    assert (before.peak, after.peak) == (1, 1)
    # Plain closes every client. Deduplicated: an async client's pools are closed with
    # their loops; the sync one stays idle in the cache, its connection kept alive.
    idle = 0 if how == "async" else 1
    assert (before["sockets"], after["sockets"]) == (0, idle)
    assert_never_worse(before, after, idle=idle)


def test_one_generator_answers_in_every_asyncio_run() -> None:
    before, after = before_after(
        "haystack_app.py", "{server.openai_base_url}", "module-level", OPENAI_API_KEY="sk-test"
    )

    answers = [f"echo: run {run}" for run in range(6)]
    assert after["answers"] == answers
    for answer, expected in zip(before["answers"], answers):
        assert answer in (expected, "RuntimeError: Event loop is closed")
    assert after["clients"] == 1
    assert after.peak == 1
    assert after["sockets"] == 0
    assert_never_worse(before, after, connections=False)
