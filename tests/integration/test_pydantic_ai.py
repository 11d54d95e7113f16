"""pydantic-ai, unmodified: fifty agents in one long-lived event loop, each with a
provider of its own, dropped when done.

``OpenAIProvider(base_url=..., api_key=...)`` gives each ``AsyncOpenAI`` an HTTP client
of its own: no construction can reuse another's client, so clientdedupe shares nothing
and must keep nothing alive (SPEC §6: such entries are held weakly): never worse than
plain. ``OpenAIProvider(openai_client=AsyncOpenAI(...))`` leaves the pool to the SDK:
50 clients -> 1, one connection."""

from __future__ import annotations

from .frameworks import AGENTS, assert_never_worse, before_after, needs

pytestmark = needs("pydantic_ai")

ANSWERS = [f"echo: agent {agent}" for agent in range(AGENTS)]
ENVIRONMENT = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "{server.openai_base_url}"}


def test_a_provider_per_agent_with_its_own_http_client_is_never_worse_than_plain() -> None:
    before, after = before_after("pydantic_ai_app.py", "provider", **ENVIRONMENT)

    assert before["answers"] == after["answers"] == ANSWERS
    assert before["clients"] == after["clients"] == AGENTS
    assert_never_worse(before, after)


def test_a_provider_per_agent_given_an_sdk_client_shares_one_client_and_connection() -> None:
    before, after = before_after("pydantic_ai_app.py", "openai-client", **ENVIRONMENT)

    assert before["answers"] == after["answers"] == ANSWERS
    assert (before["clients"], after["clients"]) == (AGENTS, 1)
    assert after.peak == 1
    assert after["sockets"] == 0  # the loop's pool is closed as asyncio.run() ends
    assert_never_worse(before, after)
