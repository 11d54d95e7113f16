"""A user's program, unmodified: ``instructor.patch(OpenAI(), mode=...)`` per task, as
instructor's docs show: ``patch`` replaces ``client.chat.completions.create`` on the
client it is given. Each task asks for a different response model, in a different mode.
Key and endpoint come from ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``.

Prints one JSON line: per task its mode, response model, parsed answer and how many
instructor layers wrap its ``create``, and how many distinct clients were patched."""

from __future__ import annotations

import inspect
import json
from importlib.metadata import version

import instructor
from _measure import open_sockets
from openai import OpenAI
from pydantic import BaseModel

TASKS = 50


class Person(BaseModel):
    name: str
    age: int


class Birthplace(BaseModel):
    name: str
    country: str


RESPONSE_MODELS = (Person, Birthplace)
MODES = (instructor.Mode.TOOLS, instructor.Mode.JSON)


def instructor_layers(create: object) -> int:
    """How many functions wrap the SDK's own ``create`` (a bound method)."""
    layers = 0
    while not inspect.ismethod(create):
        layers += 1
        create = create.__wrapped__  # type: ignore[attr-defined]
    return layers


def main() -> None:
    clients = []
    tasks = []
    for task in range(TASKS):
        response_model = RESPONSE_MODELS[task % 2]
        mode = MODES[(task // 2) % 2]
        client = instructor.patch(OpenAI(), mode=mode)
        answer = client.chat.completions.create(
            model="stub-model",
            response_model=response_model,
            messages=[{"role": "user", "content": f"task {task}: who is it?"}],
        )
        clients.append(client)
        tasks.append(
            {
                "mode": mode.value,
                "response_model": type(answer).__name__,
                "answer": answer.model_dump(),
                "layers": instructor_layers(client.chat.completions.create),
            }
        )
    result = {
        "tasks": tasks,
        "clients": len({id(client) for client in clients}),
        "sockets": open_sockets(),
        "versions": {name: version(name) for name in ("instructor", "openai")},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
