"""A user's program, unmodified: one langchain-groq ``ChatGroq`` per agent, one question
each, as langchain's docs show. The key comes from ``GROQ_API_KEY``; the endpoint is the
first argument. Prints one JSON line: the answers, and how many distinct SDK clients the
models hold."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from langchain_groq import ChatGroq

AGENTS = 50


def main(base_url: str) -> None:
    models = []
    answers = []
    for agent in range(AGENTS):
        llm = ChatGroq(model="llama-3.1-8b-instant", temperature=0, base_url=base_url)
        answers.append(llm.invoke(f"agent {agent}").content)
        models.append(llm)
    # ChatGroq keeps the resources ``groq.Groq(...).chat.completions`` and
    # ``groq.AsyncGroq(...).chat.completions``; each knows its client as ``_client``.
    result = {
        "answers": answers,
        "sync_clients": len({id(llm.client._client) for llm in models}),
        "async_clients": len({id(llm.async_client._client) for llm in models}),
        "versions": {name: version(name) for name in ("langchain-groq", "groq")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
