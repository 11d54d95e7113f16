"""langchain-groq, unmodified: ``ChatGroq`` builds a ``Groq`` and an ``AsyncGroq`` per
model object, outside any event loop. Fifty models, one call each: ``invoke``, ``ainvoke``
in one event loop, or ``ainvoke`` in five successive ``asyncio.run()`` calls.

The ``AsyncGroq`` clients are shared by default (SPEC §5: one shared async client per
key whatever loop is running at construction, a connection pool per running loop behind
it): 50 -> 1, every answer right, one connection held at a time."""

from __future__ import annotations

import pytest

from .frameworks import AGENTS, assert_never_worse, before_after, needs

pytestmark = needs("langchain_groq")

ANSWERS = [f"echo: agent {agent}" for agent in range(AGENTS)]


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "ainvoke-per-run"])
def test_fifty_chatgroq_models_share_one_groq_and_one_async_groq(how: str) -> None:
    before, after = before_after(
        "langchain_groq_app.py", "{server.groq_base_url}", how, GROQ_API_KEY="gsk-test"
    )

    assert before["answers"] == after["answers"] == ANSWERS
    assert (before["sync_clients"], before["async_clients"]) == (AGENTS, AGENTS)
    assert (after["sync_clients"], after["async_clients"]) == (1, 1)
    # Plain: every model's pool keeps its connection, even those of ended event loops.
    # Deduplicated: one pool (per running loop), its connection reused.
    assert (before.peak, after.peak) == (AGENTS, 1)
    assert_never_worse(before, after)
