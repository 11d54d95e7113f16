"""A user's program, unmodified: openai-agents pointed at an OpenAI-compatible server
with a module-level ``AsyncOpenAI``, as the SDK's docs show for other providers, and one
``asyncio.run()`` per job (a script, a CLI command, a worker). Key and endpoint come from
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``. The first argument picks the recipe:

- ``default-client``: one ``AsyncOpenAI`` for the whole program,
  ``set_default_openai_client(client)`` and ``set_default_openai_api("chat_completions")``;
  the agents name their model;
- ``model-per-agent``: each agent gets ``OpenAIChatCompletionsModel(model=...,
  openai_client=AsyncOpenAI(...))``, built at module level.

Each of six runs asks each of five agents once. An ``AsyncOpenAI`` used in a second event
loop finds its pool's connection bound to the first one (closed): without clientdedupe
such a call fails with "Event loop is closed" (a program would stop there; this one
records the error and goes on, to count). Prints one JSON line: per call its answer or
error, and how many distinct ``AsyncOpenAI`` the agents use."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from importlib.metadata import version

from _measure import open_sockets
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

AGENTS = 5
RUNS = 6
MODEL = "stub-model"

set_tracing_disabled(True)
RECIPE = sys.argv[1]
if RECIPE == "default-client":
    CLIENT = AsyncOpenAI(
        base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"]
    )
    set_default_openai_client(CLIENT, use_for_tracing=False)
    set_default_openai_api("chat_completions")
    AGENT_LIST = [
        Agent(name=f"agent {n}", instructions="Answer.", model=MODEL) for n in range(AGENTS)
    ]
    CLIENTS = [CLIENT]
else:
    CLIENTS = [
        AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"])
        for _ in range(AGENTS)
    ]
    AGENT_LIST = [
        Agent(
            name=f"agent {n}",
            instructions="Answer.",
            model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
        )
        for n, client in enumerate(CLIENTS)
    ]


async def job(run: int) -> list[str]:
    answers = []
    for number, agent in enumerate(AGENT_LIST):
        try:
            result = await Runner.run(agent, f"run {run} agent {number}")
            answers.append(str(result.final_output))
        except Exception as error:
            answers.append(f"{type(error).__name__}: {error}")
    return answers


def main() -> None:
    answers = []
    for run in range(RUNS):
        answers.extend(asyncio.run(job(run)))
    result = {
        "answers": answers,
        "clients": len({id(client) for client in CLIENTS}),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("openai-agents", "openai")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
