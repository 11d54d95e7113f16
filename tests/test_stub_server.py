"""The stub server against the real openai, groq and cerebras SDKs (no clientdedupe)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import groq
import httpx
import openai
import pytest
from cerebras.cloud.sdk import Cerebras

from clientdedupe._tools.stub_server import StubServer

USER: Any = [{"role": "user", "content": "hello there"}]

# conftest.py keeps the SDKs' and the proxies' variables out of these tests.


@pytest.fixture
def srv() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def _openai(srv: StubServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.openai_base_url, api_key="k", max_retries=0, **kw)


def _paths(srv: StubServer) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in srv.requests]


def test_openai_sync(srv: StubServer) -> None:
    with _openai(srv) as client:
        resp = client.chat.completions.create(model="gpt-x", messages=USER)
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-x"
    assert resp.usage is not None and resp.usage.total_tokens > 0
    assert _paths(srv) == [("POST", "/v1/chat/completions")]
    headers = srv.requests[0].headers
    assert headers["authorization"] == "Bearer k"
    assert json.loads(srv.requests[0].body)["model"] == "gpt-x"


def test_async_openai(srv: StubServer) -> None:
    async def main() -> str | None:
        async with openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="k") as client:
            resp = await client.chat.completions.create(model="m", messages=USER)
        return resp.choices[0].message.content

    assert asyncio.run(main()) == "echo: hello there"
    assert srv.connections == 1


def test_groq_sync(srv: StubServer) -> None:
    with groq.Groq(base_url=srv.groq_base_url, api_key="k", max_retries=0) as client:
        resp = client.chat.completions.create(model="llama", messages=USER)
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.model == "llama"
    assert _paths(srv) == [("POST", "/openai/v1/chat/completions")]


def test_cerebras_sync_and_warmup(srv: StubServer) -> None:
    with Cerebras(base_url=srv.cerebras_base_url, api_key="k", max_retries=0) as client:
        assert _paths(srv) == [("GET", "/v1/tcp_warming")]
        resp: Any = client.chat.completions.create(model="llama3.1-8b", messages=USER)
    assert type(resp).__name__ == "ChatCompletionResponse"  # not the chunk/error variants
    assert resp.choices[0].message.content == "echo: hello there"
    assert _paths(srv) == [("GET", "/v1/tcp_warming"), ("POST", "/v1/chat/completions")]
    assert srv.connections == 1  # the warm-up connection is reused


def test_azure_openai(srv: StubServer) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=srv.azure_endpoint, api_version="2024-06-01", api_key="k", max_retries=0
    ) as client:
        resp = client.chat.completions.create(model="my-deployment", messages=USER)
    assert resp.choices[0].message.content == "echo: hello there"
    (req,) = srv.requests
    assert (req.method, req.path) == ("POST", "/openai/deployments/my-deployment/chat/completions")
    assert req.query == "api-version=2024-06-01"
    assert req.headers["api-key"] == "k"


def test_one_client_reuses_one_connection(srv: StubServer) -> None:
    with _openai(srv) as client:
        for _ in range(3):
            client.chat.completions.create(model="m", messages=USER)
        assert srv.connections == 1
        assert len(srv.requests) == 3
        assert srv.open_connections == 1


def test_two_clients_two_connections(srv: StubServer) -> None:
    with _openai(srv) as a, _openai(srv) as b:
        a.chat.completions.create(model="m", messages=USER)
        b.chat.completions.create(model="m", messages=USER)
        assert srv.connections == 2
        assert srv.max_open_connections == 2


def test_reset_counters(srv: StubServer) -> None:
    with _openai(srv) as client:
        client.chat.completions.create(model="m", messages=USER)
        srv.reset_counters()
        assert (srv.connections, srv.requests, srv.max_open_connections) == (0, [], 1)
        client.chat.completions.create(model="m", messages=USER)
        assert srv.connections == 0  # same keep-alive connection
        assert len(srv.requests) == 1


def test_tool_call_and_json_mode(srv: StubServer) -> None:
    srv.tool_arguments = {"city": "Paris", "n": 2}
    tool: Any = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object"}},
    }
    with _openai(srv) as client:
        resp = client.chat.completions.create(model="m", messages=USER, tools=[tool])
        (call,) = resp.choices[0].message.tool_calls or []
        assert call.type == "function"
        assert call.function.name == "lookup"
        assert json.loads(call.function.arguments) == {"city": "Paris", "n": 2}
        assert resp.choices[0].finish_reason == "tool_calls"

        resp = client.chat.completions.create(
            model="m", messages=USER, response_format={"type": "json_object"}
        )
        assert json.loads(resp.choices[0].message.content or "") == {"city": "Paris", "n": 2}


def test_models_and_not_found(srv: StubServer) -> None:
    with _openai(srv) as client:
        assert [m.id for m in client.models.list()] == ["stub-model"]
        with pytest.raises(openai.NotFoundError) as info:
            client.get("/nope", cast_to=object)
    assert info.value.status_code == 404
    assert isinstance(info.value.body, dict) and "message" in info.value.body


def test_delay(srv: StubServer) -> None:
    srv.delay = 0.05
    with _openai(srv) as client:
        start = time.monotonic()
        client.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - start >= 0.05


def test_stop_closes_idle_keepalive_connections() -> None:
    srv = StubServer().start()
    with _openai(srv) as client:
        client.chat.completions.create(model="m", messages=USER)
        assert srv.open_connections == 1
        srv.stop()
        assert srv.open_connections == 0
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=USER)
    srv.stop()  # idempotent


def test_raw_http_keepalive_and_content_length(srv: StubServer) -> None:
    with httpx.Client(base_url=srv.url) as client:
        r1 = client.get("/v1/tcp_warming")
        r2 = client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
        r3 = client.post("/v1/chat/completions", content=b"not json")
    assert (r1.status_code, r1.json()) == (200, {})
    assert r1.headers["content-length"] == str(len(r1.content))
    assert r2.json()["choices"][0]["message"]["content"] == "echo: hello there"
    assert r3.status_code == 400 and "error" in r3.json()
    assert srv.connections == 1


def test_tls_openai() -> None:
    with StubServer(tls=True) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        ca_path = srv.ca_cert_path
        assert ca_path is not None and os.path.exists(ca_path)
        http_client = openai.DefaultHttpxClient(verify=srv.client_ssl_context())
        with _openai(srv, http_client=http_client) as client:
            for _ in range(3):
                resp = client.chat.completions.create(model="m", messages=USER)
                assert resp.choices[0].message.content == "echo: hello there"
        assert srv.connections == 1
        assert srv.tls_handshakes == 1
    assert not os.path.exists(ca_path)
    assert srv.ca_cert_path is None


def test_tls_rejects_untrusting_client() -> None:
    with StubServer(tls=True) as srv, _openai(srv) as client:
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=USER)
        assert srv.tls_handshakes == 0
        assert srv.requests == []


def test_embeddings_as_floats_and_as_base64(srv: StubServer) -> None:
    from clientdedupe._tools.stub_server import stub_embedding

    with _openai(srv) as client:
        floats = client.embeddings.create(
            model="emb", input=["hello there", "a"], encoding_format="float"
        )
        # The SDK asks for base64 by default and decodes it.
        default = client.embeddings.create(model="emb", input="hello there")
        tokens = client.embeddings.create(model="emb", input=[[1, 2, 3]], encoding_format="float")
    assert [d.embedding for d in floats.data] == [
        stub_embedding("hello there"),
        stub_embedding("a"),
    ]
    assert [d.index for d in floats.data] == [0, 1]
    assert stub_embedding("hello there") == [11.0, 2.0, float(sum(b"hello there") % 1000)]
    assert default.data[0].embedding == stub_embedding("hello there")
    assert json.loads(srv.requests[1].body).get("encoding_format") == "base64"
    assert tokens.data[0].embedding == stub_embedding([1, 2, 3]) == stub_embedding("1 2 3")
    assert floats.usage.prompt_tokens == 3
    assert _paths(srv) == [("POST", "/v1/embeddings")] * 3


def _raw_request(sock: socket.socket) -> bytes:
    """One keep-alive request on a raw socket; the whole response."""
    sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: stub\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    head, _, body = response.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_client_open_connections_count_connections_held_together(srv: StubServer) -> None:
    address = ("127.0.0.1", srv.port)
    with socket.create_connection(address) as first, socket.create_connection(address) as second:
        _raw_request(first)
        _raw_request(second)
        assert srv.max_client_open_connections == 2
    srv.settled_open_connections(0)
    srv.reset_counters()
    assert srv.max_client_open_connections == 0


def test_client_open_connections_leave_out_a_connection_closed_before_the_next_one(
    srv: StubServer,
) -> None:
    # One connection at a time, each closed by the client right before the next one is
    # opened, as a pool replacing an expired keep-alive connection does: whether or not
    # the server has noticed a close when the next request arrives, they were never held
    # together.
    address = ("127.0.0.1", srv.port)
    for _ in range(20):
        with socket.create_connection(address) as sock:
            _raw_request(sock)
    assert srv.connections == 20
    assert srv.max_client_open_connections == 1
