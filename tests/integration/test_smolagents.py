"""smolagents, unmodified: ``OpenAIServerModel`` builds an ``OpenAI`` per model object.
Fifty models, one call each."""

from __future__ import annotations

import pytest

from clientdedupe._stub_server import StubServer

from .frameworks import ACTIVATIONS, AGENTS, Activation, needs, run_app

pytestmark = needs("smolagents", "openai")


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=repr)
def test_fifty_openai_server_models_answer_over_one_connection_when_deduplicated(
    activation: Activation, server: StubServer
) -> None:
    result = run_app("smolagents_app.py", server.openai_base_url, activation=activation)

    assert result["answers"] == [f"echo: agent {agent}" for agent in range(AGENTS)]
    expected = 1 if activation.deduplicated else AGENTS
    assert result["clients"] == expected
    assert server.connections == expected
