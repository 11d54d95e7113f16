"""autogen, unmodified: ``OpenAIChatCompletionClient`` built, used by an
``AssistantAgent`` and closed (``await model_client.close()``) in each of thirty
``asyncio.run()`` calls, the model clients kept by the program; or one built at module
level and used in six successive ``asyncio.run()`` calls.

Each construction is a holder of one shared ``AsyncOpenAI``; each close lets go, and each
loop's pool is closed as the loop ends: 30 clients -> 1, one connection per run either
way, never two at once, nothing left open. The module-level client fails every other run
plain ("Event loop is closed"), and answers every time deduplicated."""

from __future__ import annotations

from .frameworks import assert_never_worse, before_after, needs

pytestmark = needs("autogen_agentchat", "autogen_ext")

RUNS = 30
ENVIRONMENT = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "{server.openai_base_url}"}


def test_a_model_client_built_and_closed_per_asyncio_run_is_one_shared_client() -> None:
    before, after = before_after("autogen_app.py", "per-run", **ENVIRONMENT)

    answers = [f"echo: run {run}" for run in range(RUNS)]
    assert before["answers"] == after["answers"] == answers
    assert (before["clients"], after["clients"]) == (RUNS, 1)
    assert (before.peak, after.peak) == (1, 1)
    assert before["sockets"] == after["sockets"] == 0
    assert_never_worse(before, after)


def test_a_module_level_model_client_answers_in_every_asyncio_run() -> None:
    before, after = before_after("autogen_app.py", "module-level", **ENVIRONMENT)

    answers = [f"echo: run {run}" for run in range(6)]
    assert after["answers"] == answers
    for answer, expected in zip(before["answers"], answers):
        assert answer in (expected, "RuntimeError: Event loop is closed")
    assert before["clients"] == after["clients"] == 1
    assert after.peak == 1
    assert after["sockets"] == 0
    assert_never_worse(before, after, connections=False)
