"""langchain-openai, unmodified: ``ChatOpenAI`` and ``OpenAIEmbeddings`` build an
``OpenAI`` and an ``AsyncOpenAI`` per model object, outside any event loop. Fifty
objects, one call each, sync or async (five successive ``asyncio.run()`` calls).

``ChatOpenAI`` hands its clients an HTTP client that langchain-openai itself caches per
endpoint, so plain already holds one connection: clientdedupe shares the fifty clients
around it (50 -> 1) and never touches that caller's pool. ``OpenAIEmbeddings`` leaves
the SDK its own pool per client: 50 pools -> 1 (one per running loop)."""

from __future__ import annotations

import pytest

from clientdedupe._tools.stub_server import stub_embedding

from .frameworks import AGENTS, assert_never_worse, before_after, needs

pytestmark = needs("langchain_openai")

PROMPTS = [f"agent {agent}" for agent in range(AGENTS)]
ENVIRONMENT = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "{server.openai_base_url}"}


@pytest.mark.parametrize("how", ["chat", "chat-async"])
def test_fifty_chatopenai_models_share_their_clients(how: str) -> None:
    before, after = before_after("langchain_openai_app.py", how, **ENVIRONMENT)

    answers = [f"echo: {prompt}" for prompt in PROMPTS]
    assert before["answers"] == after["answers"] == answers
    side = "async_clients" if how.endswith("async") else "sync_clients"
    assert (before[side], after[side]) == (AGENTS, 1)
    if how == "chat":
        # langchain-openai's own cached HTTP client: one connection either way.
        assert (before.peak, after.peak) == (1, 1)
    assert_never_worse(before, after)


@pytest.mark.parametrize("how", ["embeddings", "embeddings-async"])
def test_fifty_openai_embeddings_share_one_client_and_one_pool(how: str) -> None:
    before, after = before_after("langchain_openai_app.py", how, **ENVIRONMENT)

    vectors = [stub_embedding(prompt) for prompt in PROMPTS]
    assert before["answers"] == after["answers"] == vectors
    side = "async_clients" if how.endswith("async") else "sync_clients"
    assert (before[side], after[side]) == (AGENTS, 1)
    assert (before.peak, after.peak) == (AGENTS, 1)
    assert_never_worse(before, after)
