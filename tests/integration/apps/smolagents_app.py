"""A user's program, unmodified: one smolagents ``OpenAIServerModel`` per agent, one
question each, as smolagents' docs show. The endpoint is the first argument. Prints one
JSON line: the answers, and how many distinct OpenAI clients the models hold."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from _measure import open_sockets
from smolagents import OpenAIServerModel

AGENTS = 50


def main(api_base: str) -> None:
    models = []
    answers = []
    for agent in range(AGENTS):
        model = OpenAIServerModel(model_id="stub-model", api_base=api_base, api_key="sk-test")
        messages = [{"role": "user", "content": [{"type": "text", "text": f"agent {agent}"}]}]
        answers.append(model(messages).content)
        models.append(model)
    result = {
        "answers": answers,
        "clients": len({id(model.client) for model in models}),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("smolagents", "openai")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
