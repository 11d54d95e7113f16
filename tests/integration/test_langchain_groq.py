"""langchain-groq, unmodified: ``ChatGroq`` builds a ``Groq`` and an ``AsyncGroq`` per
model object. Fifty models, one ``invoke`` each."""

from __future__ import annotations

import pytest

from clientdedupe._stub_server import StubServer

from .frameworks import AGENTS, LAUNCHER, LAUNCHER_ASYNC_GLOBAL, PLAIN, Activation, needs, run_app

pytestmark = needs("langchain_groq")


@pytest.mark.parametrize(
    ("activation", "async_clients"),
    [
        pytest.param(PLAIN, AGENTS, id=PLAIN.name),
        # ChatGroq builds its AsyncGroq outside any event loop: by default such a client
        # is not shared (SPEC §5), with --async-mode global it is.
        pytest.param(LAUNCHER, AGENTS, id=LAUNCHER.name),
        pytest.param(LAUNCHER_ASYNC_GLOBAL, 1, id=LAUNCHER_ASYNC_GLOBAL.name),
    ],
)
def test_fifty_chatgroq_models_answer_over_one_connection_when_deduplicated(
    activation: Activation, async_clients: int, server: StubServer
) -> None:
    result = run_app(
        "langchain_groq_app.py",
        server.groq_base_url,
        activation=activation,
        GROQ_API_KEY="gsk-test",
    )

    assert result["answers"] == [f"echo: agent {agent}" for agent in range(AGENTS)]
    expected = 1 if activation.deduplicated else AGENTS
    assert result["sync_clients"] == expected
    assert server.connections == expected
    assert result["async_clients"] == async_clients
