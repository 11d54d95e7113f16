"""A user's program, unmodified: one langchain-openai model object per agent, one call
each, as langchain's docs show. Key and endpoint come from ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL``. The first argument says which object and how it is called:

- ``chat``: ``ChatOpenAI(...).invoke(...)``;
- ``chat-async``: ``await ChatOpenAI(...).ainvoke(...)``;
- ``embeddings``: ``OpenAIEmbeddings(...).embed_query(...)``;
- ``embeddings-async``: ``await OpenAIEmbeddings(...).aembed_query(...)``.

The async calls run in five successive ``asyncio.run()`` calls, ten agents each. The
objects are all built first, outside any event loop. ``check_embedding_ctx_length=False``
is what langchain's docs say to pass for an OpenAI-compatible server: it sends the text
instead of tiktoken's token ids (tiktoken would download its tables).

Prints one JSON line: the answers, and how many distinct SDK clients the objects hold
(``root_client``, ``root_async_client``; for embeddings the resources' ``_client``)."""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version
from typing import Any

from _measure import open_sockets
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

AGENTS = 50
RUNS = 5


def build(kind: str) -> Any:
    if kind == "chat":
        return ChatOpenAI(model="stub-model", temperature=0)
    return OpenAIEmbeddings(model="stub-embedding", check_embedding_ctx_length=False)


async def acall(kind: str, model: Any, prompt: str) -> Any:
    if kind == "chat":
        return (await model.ainvoke(prompt)).content
    return await model.aembed_query(prompt)


def call(kind: str, model: Any, prompt: str) -> Any:
    if kind == "chat":
        return model.invoke(prompt).content
    return model.embed_query(prompt)


def main(how: str) -> None:
    kind = how.split("-")[0]
    models = [build(kind) for _ in range(AGENTS)]
    answers: list[Any] = []

    async def ask(first: int, last: int) -> None:
        for agent in range(first, last):
            answers.append(await acall(kind, models[agent], f"agent {agent}"))

    if how.endswith("-async"):
        per_run = AGENTS // RUNS
        for run in range(RUNS):
            asyncio.run(ask(run * per_run, (run + 1) * per_run))
    else:
        for agent, model in enumerate(models):
            answers.append(call(kind, model, f"agent {agent}"))
    if kind == "chat":
        sync = {id(model.root_client) for model in models}
        asynchronous = {id(model.root_async_client) for model in models}
    else:
        sync = {id(model.client._client) for model in models}
        asynchronous = {id(model.async_client._client) for model in models}
    result = {
        "answers": answers,
        "sync_clients": len(sync),
        "async_clients": len(asynchronous),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("langchain-openai", "openai")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
