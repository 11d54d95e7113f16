"""SPEC §1: many constructions, one connection pool — counted by a real server."""

from __future__ import annotations

import asyncio

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import ASYNC_CASES, SYNC_CASES, Case

N = 30


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_thirty_constructions_and_requests_open_one_connection(
    case: Case, server: StubServer
) -> None:
    answers = [case.ask(case.build(server), f"agent {i}") for i in range(N)]
    assert answers == [f"echo: agent {i}" for i in range(N)]
    assert server.connections == 1
    assert clientdedupe.stats()[case.qualname]["built"] == 1


@pytest.mark.parametrize("case", SYNC_CASES[:1], ids=repr)
def test_without_clientdedupe_each_construction_opens_its_own_connection(
    case: Case, server: StubServer
) -> None:
    # The baseline the test above is measured against.
    for i in range(5):
        case.ask(case.build(server), f"agent {i}")
    assert server.connections == 5


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_async_constructions_open_one_connection_per_event_loop(
    case: Case, server: StubServer
) -> None:
    async def agents() -> list[str]:
        return [await case.aask(case.build(server), f"agent {i}") for i in range(N)]

    assert asyncio.run(agents()) == [f"echo: agent {i}" for i in range(N)]
    first_loop = server.connections
    assert asyncio.run(agents()) == [f"echo: agent {i}" for i in range(N)]
    # AsyncCerebras warms up by building (and closing) a sync Cerebras with the same
    # key and URL: that one is shared too, so its connection is opened once in all.
    warm_up = 1 if "Cerebras" in case.qualname else 0
    assert first_loop == 1 + warm_up
    assert server.connections == 2 + warm_up


@pytest.mark.usefixtures("installed")
def test_ten_cerebras_constructions_send_one_warm_up_request(server: StubServer) -> None:
    from cerebras.cloud.sdk import Cerebras

    for _ in range(10):
        Cerebras(api_key="k", base_url=server.cerebras_base_url)
    warmups = [r for r in server.requests if r.path == "/v1/tcp_warming"]
    assert len(warmups) == 1


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_over_tls_one_handshake_serves_every_construction(
    case: Case, tls_server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK builds its own HTTP client, trusting the throwaway CA through the environment.
    assert tls_server.ca_cert_path is not None
    monkeypatch.setenv("SSL_CERT_FILE", tls_server.ca_cert_path)
    for i in range(N):
        assert case.ask(case.build(tls_server), str(i)) == f"echo: {i}"
    assert tls_server.tls_handshakes == 1
    assert tls_server.connections == 1
