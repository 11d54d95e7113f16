"""A user's program, unmodified: autogen's documented per-run pattern, in each of thirty
``asyncio.run()`` calls: build an ``OpenAIChatCompletionClient`` (which builds an
``AsyncOpenAI``), give it to an ``AssistantAgent``, run one task, ``await
model_client.close()``. Key and endpoint come from ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL``; ``model_info`` describes a model autogen does not know, as its docs
say for OpenAI-compatible servers. The program keeps its model clients (closed), as an
application keeping its agents would.

Prints one JSON line: the answers, and how many distinct ``AsyncOpenAI`` were used."""

from __future__ import annotations

import asyncio
import json
import os
from importlib.metadata import version
from typing import Any

from _measure import open_sockets
from autogen_agentchat.agents import AssistantAgent
from autogen_ext.models.openai import OpenAIChatCompletionClient

RUNS = 30
MODEL_INFO: Any = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": "unknown",
    "structured_output": True,
}


async def job(run: int, kept: list[Any]) -> str:
    model_client = OpenAIChatCompletionClient(
        model="stub-model",
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key=os.environ["OPENAI_API_KEY"],
        model_info=MODEL_INFO,
    )
    kept.append(model_client)
    agent = AssistantAgent("assistant", model_client=model_client)
    result = await agent.run(task=f"run {run}")
    await model_client.close()
    return str(result.messages[-1].content)


def main() -> None:
    kept: list[Any] = []
    answers = [asyncio.run(job(run, kept)) for run in range(RUNS)]
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
    main()
