"""A user's program, unmodified: autogen with an ``OpenAIChatCompletionClient`` (which
builds an ``AsyncOpenAI``) and one ``asyncio.run()`` per task. Key and endpoint come from
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``; ``model_info`` describes a model autogen does
not know, as its docs say for OpenAI-compatible servers. The first argument says where
the model client is built:

- ``per-run``: autogen's documented pattern in each of thirty runs: build the model
  client, give it to an ``AssistantAgent``, run one task, ``await model_client.close()``;
  the program keeps its model clients (closed), as an application keeping its agents
  would;
- ``module-level``: one model client built at module level (no loop running), used by
  the agents of six runs, closed in a last one. Without clientdedupe its pool's
  connection is bound to the first run's loop: the program records each error and goes
  on.

Prints one JSON line: the answers, and how many distinct ``AsyncOpenAI`` were used."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from importlib.metadata import version
from typing import Any

from _measure import open_sockets
from autogen_agentchat.agents import AssistantAgent
from autogen_ext.models.openai import OpenAIChatCompletionClient

RUNS = 30
MODULE_LEVEL_RUNS = 6
MODEL_INFO: Any = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": "unknown",
    "structured_output": True,
}


def model_client() -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(
        model="stub-model",
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key=os.environ["OPENAI_API_KEY"],
        model_info=MODEL_INFO,
    )


async def job(run: int, kept: list[Any]) -> str:
    client = model_client()
    kept.append(client)
    agent = AssistantAgent("assistant", model_client=client)
    result = await agent.run(task=f"run {run}")
    await client.close()
    return str(result.messages[-1].content)


async def shared_job(run: int, client: OpenAIChatCompletionClient) -> str:
    agent = AssistantAgent("assistant", model_client=client)
    try:
        result = await agent.run(task=f"run {run}")
    except Exception as error:  # counted, as a batch runner would
        return f"{type(error).__name__}: {error}"
    return str(result.messages[-1].content)


def main(how: str) -> None:
    kept: list[Any] = []
    if how == "per-run":
        answers = [asyncio.run(job(run, kept)) for run in range(RUNS)]
    else:
        kept.append(model_client())
        answers = [asyncio.run(shared_job(run, kept[0])) for run in range(MODULE_LEVEL_RUNS)]
        asyncio.run(kept[0].close())
    result = {
        "answers": answers,
        "clients": len({id(model_client._client) for model_client in kept}),
        "sockets": open_sockets(),
        "versions": {
            name: version(name) for name in ("autogen-agentchat", "autogen-ext", "openai")
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
