"""autogen, unmodified: ``OpenAIChatCompletionClient`` built, used by an
``AssistantAgent`` and closed (``await model_client.close()``) in each of thirty
``asyncio.run()`` calls, the model clients kept by the program.

Each construction is a holder of one shared ``AsyncOpenAI``; each close lets go, and each
loop's pool is closed as the loop ends: 30 clients -> 1, one connection per run either
way, never two at once, nothing left open."""

from __future__ import annotations

from .frameworks import assert_never_worse, before_after, needs

pytestmark = needs("autogen_agentchat", "autogen_ext")

RUNS = 30


def test_a_model_client_built_and_closed_per_asyncio_run_is_one_shared_client() -> None:
    before, after = before_after(
        "autogen_app.py", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="{server.openai_base_url}"
    )

    answers = [f"echo: run {run}" for run in range(RUNS)]
    assert before["answers"] == after["answers"] == answers
    assert (before["clients"], after["clients"]) == (RUNS, 1)
    assert (before.peak, after.peak) == (1, 1)
    assert before["sockets"] == after["sockets"] == 0
    assert_never_worse(before, after)
