"""A user's program, unmodified: one langchain-groq ``ChatGroq`` per agent, one question
each, as langchain's docs show. The key comes from ``GROQ_API_KEY``; the endpoint is the
first argument; the second says how the models are invoked:

- ``invoke``: ``llm.invoke(...)``, one model after the other;
- ``ainvoke``: ``await llm.ainvoke(...)``, every model in one ``asyncio.run()``;
- ``ainvoke-per-run``: ``await llm.ainvoke(...)`` in five successive ``asyncio.run()``
  calls, ten models each (a script or a worker that calls ``asyncio.run()`` per job).

The models are all built first, outside any event loop, as a module would build them.
Prints one JSON line: the answers, and how many distinct SDK clients the models hold."""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version

from _measure import open_sockets
from langchain_groq import ChatGroq

AGENTS = 50
RUNS = 5


def main(base_url: str, how: str) -> None:
    models = [
        ChatGroq(model="llama-3.1-8b-instant", temperature=0, base_url=base_url)
        for _ in range(AGENTS)
    ]
    answers: list[str] = []

    async def ask(first: int, last: int) -> None:
        for agent in range(first, last):
            answers.append((await models[agent].ainvoke(f"agent {agent}")).content)

    if how == "invoke":
        for agent, llm in enumerate(models):
            answers.append(llm.invoke(f"agent {agent}").content)
    elif how == "ainvoke":
        asyncio.run(ask(0, AGENTS))
    else:
        per_run = AGENTS // RUNS
        for run in range(RUNS):
            asyncio.run(ask(run * per_run, (run + 1) * per_run))
    # ChatGroq keeps the resources ``groq.Groq(...).chat.completions`` and
    # ``groq.AsyncGroq(...).chat.completions``; each knows its client as ``_client``.
    result = {
        "answers": answers,
        "sync_clients": len({id(llm.client._client) for llm in models}),
        "async_clients": len({id(llm.async_client._client) for llm in models}),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("langchain-groq", "groq")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
