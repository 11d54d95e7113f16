"""A user's program, unmodified: pydantic-ai agents, each with a provider of its own, as
pydantic-ai's docs show for an OpenAI-compatible server, all run in one long-lived event
loop (a web server's). Key and endpoint come from ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL``. The first argument picks how each agent's provider gets its client:

- ``provider``: ``OpenAIProvider(base_url=..., api_key=...)``: the provider builds an
  ``httpx2.AsyncClient`` of its own and hands it to the ``AsyncOpenAI`` it builds, so no
  two agents can share a client (the key holds that HTTP client by identity);
- ``openai-client``: ``OpenAIProvider(openai_client=AsyncOpenAI(base_url=...,
  api_key=...))``: the SDK builds its own pool, and agents can share the client.

Fifty agents, one run each; the program drops each agent when its request is done, as a
server drops a request's objects. Prints one JSON line: the answers, and how many
distinct ``AsyncOpenAI`` served them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import weakref
from importlib.metadata import version
from typing import Any

from _measure import open_sockets
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

AGENTS = 50


def provider(how: str) -> OpenAIProvider:
    base_url, api_key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
    if how == "provider":
        return OpenAIProvider(base_url=base_url, api_key=api_key)
    return OpenAIProvider(openai_client=AsyncOpenAI(base_url=base_url, api_key=api_key))


async def serve(how: str, seen: list[weakref.ref[Any]]) -> list[str]:
    answers = []
    for number in range(AGENTS):
        agent = Agent(OpenAIChatModel("stub-model", provider=provider(how)))
        result = await agent.run(f"agent {number}")
        answers.append(str(result.output))
        client = agent.model.client  # type: ignore[attr-defined]
        # Counted without keeping it alive: a client is new unless it is one seen before
        # and still alive (a shared one stays alive in clientdedupe's cache).
        if not any(ref() is client for ref in seen):
            seen.append(weakref.ref(client))
    return answers


def main(how: str) -> None:
    seen: list[weakref.ref[Any]] = []
    answers = asyncio.run(serve(how, seen))
    result = {
        "answers": answers,
        "clients": len(seen),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("pydantic-ai-slim", "openai")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
