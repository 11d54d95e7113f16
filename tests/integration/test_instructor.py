"""instructor, unmodified, handed shared clients.

``instructor.from_provider`` builds an SDK client per call and wraps its ``create``
without changing the client: fifty of them share one client, each keeping its own mode
and response model. ``instructor.patch`` replaces ``client.chat.completions.create`` on
the client it is given: that retires a shared client (SPEC §6), so the next construction
is a fresh client and no holder's ``create`` is patched twice.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from clientdedupe._stub_server import RecordedRequest, StubServer

from .frameworks import ACTIVATIONS, AGENTS, Activation, needs, run_app

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


def provider_environment(server: StubServer) -> dict[str, str]:
    """What a user exports to point every provider at ``server``."""
    return {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": server.openai_base_url,
        "GROQ_API_KEY": "gsk-test",
        "GROQ_BASE_URL": server.groq_base_url,
        "CEREBRAS_API_KEY": "csk-test",
        "CEREBRAS_BASE_URL": server.cerebras_base_url,
    }


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


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=repr)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_fifty_from_provider_clients_share_one_connection_and_keep_their_own_mode_and_model(
    provider: str, activation: Activation, server: StubServer
) -> None:
    model, modes = PROVIDERS[provider]
    server.tool_arguments = STRUCTURED_ANSWER

    result = run_app(
        "instructor_app.py", model, activation=activation, **provider_environment(server)
    )

    tasks = expected_tasks(modes)
    assert result["tasks"] == tasks
    assert_each_request_follows_its_holder(server.requests, tasks)
    expected = 1 if activation.deduplicated else AGENTS
    assert result["clients"] == expected
    assert server.connections == expected
    warm_ups = [request for request in server.requests if request.path == "/v1/tcp_warming"]
    assert len(warm_ups) == (expected if provider == "cerebras" else 0)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=repr)
def test_instructor_patch_of_a_shared_client_retires_it_so_no_holder_is_patched_twice(
    activation: Activation, server: StubServer
) -> None:
    server.tool_arguments = STRUCTURED_ANSWER

    result = run_app(
        "instructor_patch_app.py", activation=activation, **provider_environment(server)
    )

    tasks = expected_tasks((TOOLS, JSON_MODE))
    assert [{k: v for k, v in task.items() if k != "layers"} for task in result["tasks"]] == tasks
    assert [task["layers"] for task in result["tasks"]] == [1] * AGENTS
    assert_each_request_follows_its_holder(server.requests, tasks)
    # Every patch retired the client it was handed: the next OpenAI() is a fresh one,
    # with or without clientdedupe.
    assert result["clients"] == AGENTS
    assert server.connections == AGENTS
