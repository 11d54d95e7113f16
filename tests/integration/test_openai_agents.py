"""openai-agents, unmodified: the SDK's recipe for another provider, a module-level
``AsyncOpenAI`` (one for the program, or one per agent), and ``asyncio.run()`` per job.

Without clientdedupe, a client used in a second event loop finds its pool's connection
bound to the first (closed) loop: every other run fails with "Event loop is closed".
Under clientdedupe the module-level clients are one shared client with a pool per running
loop, closed as each loop ends: every run answers, one connection at a time."""

from __future__ import annotations

import pytest

from .frameworks import assert_never_worse, before_after, needs

pytestmark = needs("agents")

AGENTS, RUNS = 5, 6
ANSWERS = [f"echo: run {run} agent {agent}" for run in range(RUNS) for agent in range(AGENTS)]
ENVIRONMENT = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "{server.openai_base_url}"}


@pytest.mark.parametrize(("recipe", "clients"), [("default-client", 1), ("model-per-agent", 5)])
def test_module_level_clients_serve_every_asyncio_run(recipe: str, clients: int) -> None:
    before, after = before_after("openai_agents_app.py", recipe, **ENVIRONMENT)

    assert after["answers"] == ANSWERS
    # Plain: each call answers or fails on the closed loop, never anything else.
    for answer, expected in zip(before["answers"], ANSWERS):
        assert answer in (expected, "RuntimeError: Event loop is closed")
    assert (before["clients"], after["clients"]) == (clients, 1)
    assert after.peak == 1  # one loop's pool at a time, closed when its loop ends
    assert after["sockets"] == 0
    # A failed plain call opens no connection: count connections held, not opened.
    assert_never_worse(before, after, connections=False)
