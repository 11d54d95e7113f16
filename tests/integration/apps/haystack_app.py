"""A user's program, unmodified: haystack's ``OpenAIChatGenerator`` built, run and
closed per job, as haystack's docs show for components that own a client. Key and
endpoint come from ``OPENAI_API_KEY`` and the ``api_base_url`` argument (the first
argument). The second says how:

- ``async``: in each of thirty ``asyncio.run()`` calls, ``await
  generator.run_async(...)`` (which builds an ``AsyncOpenAI`` on the serving loop), then
  ``await generator.close_async()``;
- ``sync``: thirty times ``generator.run(...)`` (its ``warm_up()`` builds an ``OpenAI``),
  then ``generator.close()``;
- ``module-level``: one generator for the program, ``await generator.run_async(...)`` in
  each of six ``asyncio.run()`` calls, ``close_async()`` in a last one. Its
  ``AsyncOpenAI`` is built in the first run's loop: without clientdedupe its pool's
  connection stays bound to that loop, and the program records each error and goes on.

The program keeps each generator's client before closing it (a close drops it from the
generator), to count them. Prints one JSON line: the answers and how many distinct
clients were used."""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version
from typing import Any

from _measure import open_sockets
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage

RUNS = 30
MODULE_LEVEL_RUNS = 6


def generator(base_url: str) -> OpenAIChatGenerator:
    return OpenAIChatGenerator(model="stub-model", api_base_url=base_url)


async def job(base_url: str, run: int, kept: list[Any]) -> str:
    chat = generator(base_url)
    reply = await chat.run_async(messages=[ChatMessage.from_user(f"run {run}")])
    kept.append(chat.async_client)
    await chat.close_async()
    return str(reply["replies"][0].text)


def sync_job(base_url: str, run: int, kept: list[Any]) -> str:
    chat = generator(base_url)
    chat.warm_up()
    reply = chat.run(messages=[ChatMessage.from_user(f"run {run}")])
    kept.append(chat.client)
    chat.close()
    return str(reply["replies"][0].text)


async def shared_job(chat: OpenAIChatGenerator, run: int, kept: list[Any]) -> str:
    try:
        reply = await chat.run_async(messages=[ChatMessage.from_user(f"run {run}")])
    except Exception as error:  # counted, as a batch runner would
        return f"{type(error).__name__}: {error}"
    kept.append(chat.async_client)
    return str(reply["replies"][0].text)


def main(base_url: str, how: str) -> None:
    kept: list[Any] = []
    if how == "async":
        answers = [asyncio.run(job(base_url, run, kept)) for run in range(RUNS)]
    elif how == "module-level":
        chat = generator(base_url)
        answers = [asyncio.run(shared_job(chat, run, kept)) for run in range(MODULE_LEVEL_RUNS)]
        asyncio.run(chat.close_async())
    else:
        answers = [sync_job(base_url, run, kept) for run in range(RUNS)]
    result = {
        "answers": answers,
        "clients": len({id(client) for client in kept}),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("haystack-ai", "openai")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
