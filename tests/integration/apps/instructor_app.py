"""A user's program, unmodified: one instructor client per task, made with
``instructor.from_provider`` as instructor's docs show, each asked for a different
response model (and, for OpenAI, in a different mode). Keys and endpoints come from the
provider's environment variables; the first argument is the ``provider/model`` string.

Prints one JSON line: per task its mode, response model and parsed answer, and how many
distinct SDK clients the instructor clients hold."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import instructor
from _measure import open_sockets
from pydantic import BaseModel

TASKS = 50


class Person(BaseModel):
    name: str
    age: int


class Birthplace(BaseModel):
    name: str
    country: str


RESPONSE_MODELS = (Person, Birthplace)
# instructor lets the caller choose the mode for OpenAI; for Groq and Cerebras
# from_provider uses the provider's default (tools).
MODES = {"openai": (instructor.Mode.TOOLS, instructor.Mode.JSON)}
SDKS = {"openai": "openai", "groq": "groq", "cerebras": "cerebras-cloud-sdk"}


def main(model: str) -> None:
    provider = model.split("/", 1)[0]
    modes = MODES.get(provider, (None,))
    holders = []
    tasks = []
    for task in range(TASKS):
        response_model = RESPONSE_MODELS[task % 2]
        mode = modes[(task // 2) % len(modes)]
        if mode is None:
            client = instructor.from_provider(model)
        else:
            client = instructor.from_provider(model, mode=mode)
        answer = client.create(
            response_model=response_model,
            messages=[{"role": "user", "content": f"task {task}: who is it?"}],
        )
        holders.append(client)
        tasks.append(
            {
                "mode": client.mode.value,
                "response_model": type(answer).__name__,
                "answer": answer.model_dump(),
            }
        )
    result = {
        "tasks": tasks,
        "clients": len({id(holder.client) for holder in holders}),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("instructor", SDKS[provider])},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
