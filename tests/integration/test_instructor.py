"""instructor, unmodified, handed shared clients.

``instructor.from_provider`` builds an SDK client per call and wraps its ``create``
without changing the client: fifty of them share one client, each keeping its own mode
and response model. ``instructor.patch`` replaces ``client.chat.completions.create`` on
the client it is given: that retires a shared client (SPEC §6), so the next construction
is a fresh client and no holder's ``create`` is patched twice.

Connections are counted as the claim is made: how many the program holds open at once
(one client's pool, or fifty). The total a pool opens is not: on a loaded machine a
keep-alive connection can expire between two calls, and the pool replaces it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from clientdedupe._tools.stub_server import RecordedRequest, StubServer

from .frameworks import (
    ACTIVATIONS,
    AGENTS,
    Activation,
    assert_never_worse,
    before_after,
    needs,
    run_app,
)

pytestmark = needs("instructor")

PERSON = {"name": "Ada Lovelace", "age": 36}
BIRTHPLACE = {"name": "Ada Lovelace", "country": "United Kingdom"}
# The stub answers every structured request (tool call or JSON mode) with these
# fields: each response model takes its own and ignores the others.
STRUCTURED_ANSWER = {**PERSON, **BIRTHPLACE}
ANSWERS = {"Person": PERSON, "Birthplace": BIRTHPLACE}

TOOLS, JSON_MODE = "tool_call", "json_mode"
#: provider → (the ``provider/model`` string, the modes the program cycles through)
PROVIDERS = {
    "openai": ("openai/stub-model", (TOOLS, JSON_MODE)),
    # from_provider gives Groq and Cerebras their default mode, tool calls.
    "groq": ("groq/llama-3.1-8b-instant", (TOOLS,)),
    "cerebras": ("cerebras/llama3.1-8b", (TOOLS,)),
}


#: What a user exports to point every provider at the server.
PROVIDER_ENVIRONMENT = {
    "OPENAI_API_KEY": "sk-test",
    "OPENAI_BASE_URL": "{server.openai_base_url}",
    "GROQ_API_KEY": "gsk-test",
    "GROQ_BASE_URL": "{server.groq_base_url}",
    "CEREBRAS_API_KEY": "csk-test",
    "CEREBRAS_BASE_URL": "{server.cerebras_base_url}",
}


def structured(server: StubServer) -> None:
    server.tool_arguments = STRUCTURED_ANSWER


def expected_tasks(modes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Task ``n`` asks for Person or Birthplace (alternately), in the modes in turn
    (two tasks each), so every combination occurs."""
    tasks = []
    for task in range(AGENTS):
        response_model = ("Person", "Birthplace")[task % 2]
        tasks.append(
            {
                "mode": modes[(task // 2) % len(modes)],
                "response_model": response_model,
                "answer": ANSWERS[response_model],
            }
        )
    return tasks


def assert_each_request_follows_its_holder(
    requests: list[RecordedRequest], tasks: list[dict[str, Any]]
) -> None:
    """Request ``n`` was shaped by task ``n``'s own mode and response model."""
    chat = [request for request in requests if request.path.endswith("/chat/completions")]
    assert len(chat) == len(tasks)  # one request per task: no retry
    for task, request in zip(tasks, chat):
        body = json.loads(request.body)
        if task["mode"] == TOOLS:
            assert [tool["function"]["name"] for tool in body["tools"]] == [task["response_model"]]
            assert "response_format" not in body
        else:
            assert body["response_format"] == {"type": "json_object"}
            assert "tools" not in body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fifty_from_provider_clients_share_one_connection_and_keep_their_own_mode_and_model(
    provider: str,
) -> None:
    model, modes = PROVIDERS[provider]

    before, after = before_after(
        "instructor_app.py", model, setup=structured, **PROVIDER_ENVIRONMENT
    )

    tasks = expected_tasks(modes)
    for run in (before, after):
        assert run["tasks"] == tasks
        assert_each_request_follows_its_holder(run.requests, tasks)
    assert (before["clients"], after["clients"]) == (AGENTS, 1)
    assert (before.peak, after.peak) == (AGENTS, 1)
    # Cerebras warms a connection up when a client is built: once per client built.
    warm_ups = [
        len([request for request in run.requests if request.path == "/v1/tcp_warming"])
        for run in (before, after)
    ]
    assert warm_ups == ([AGENTS, 1] if provider == "cerebras" else [0, 0])
    assert_never_worse(before, after)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=repr)
def test_instructor_patch_of_a_shared_client_retires_it_so_no_holder_is_patched_twice(
    activation: Activation,
) -> None:
    result = run_app(
        "instructor_patch_app.py", activation=activation, setup=structured, **PROVIDER_ENVIRONMENT
    )

    tasks = expected_tasks((TOOLS, JSON_MODE))
    assert [{k: v for k, v in task.items() if k != "layers"} for task in result["tasks"]] == tasks
    assert [task["layers"] for task in result["tasks"]] == [1] * AGENTS
    assert_each_request_follows_its_holder(result.requests, tasks)
    # Every patch retired the client it was handed: the next OpenAI() is a fresh one,
    # with or without clientdedupe, each with its own pool.
    assert result["clients"] == AGENTS
    assert result.peak == AGENTS
