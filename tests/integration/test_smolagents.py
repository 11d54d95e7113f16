"""smolagents, unmodified: ``OpenAIServerModel`` builds an ``OpenAI`` per model object.
Fifty models, one call each."""

from __future__ import annotations

from .frameworks import AGENTS, assert_never_worse, before_after, needs

pytestmark = needs("smolagents", "openai")


def test_fifty_openai_server_models_answer_over_one_connection_when_deduplicated() -> None:
    before, after = before_after("smolagents_app.py", "{server.openai_base_url}")

    answers = [f"echo: agent {agent}" for agent in range(AGENTS)]
    assert before["answers"] == after["answers"] == answers
    assert (before["clients"], after["clients"]) == (AGENTS, 1)
    assert (before.peak, after.peak) == (AGENTS, 1)
    assert_never_worse(before, after)
