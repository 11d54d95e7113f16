"""A tiny loopback server speaking just enough of the OpenAI-compatible chat (and
embeddings) API.

It lets the real ``openai`` (including Azure OpenAI), ``groq`` and
``cerebras-cloud-sdk`` clients make genuine HTTP(S) requests without touching
the network, while counting TCP connections, TLS handshakes and requests so
tests (and ``clientdedupe demo``) can see how many connections a program opens.

Standard library only; ``trustme`` is imported lazily when ``tls=True``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["RecordedRequest", "StubServer", "stub_embedding"]

_Json = dict[str, Any]
_STUB_MODEL = "stub-model"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as seen by the server (recorded before it is answered)."""

    method: str
    path: str
    """The path without the query string, e.g. ``/v1/chat/completions``."""
    query: str = ""
    """The raw query string (without ``?``), e.g. ``api-version=2024-06-01``."""
    headers: dict[str, str] = field(default_factory=dict)
    """Request headers, names lower-cased."""
    body: bytes = b""


class StubServer:
    """An embedded OpenAI-compatible HTTP(S) server on ``127.0.0.1`` (random port).

    Use as a context manager (``with StubServer() as srv: ...``) or call
    :meth:`start` and :meth:`stop`. All counters are thread-safe and may be
    read at any time; they are updated before the response is sent, so they
    are already current once a client has received its response.
    """

    def __init__(self, *, tls: bool = False) -> None:
        """Create a (not yet started) server; ``tls=True`` serves HTTPS with a throwaway CA."""
        self.tls = tls
        self.delay: float = 0.0
        """Seconds to wait before answering a chat completion."""
        self.tool_arguments: Any = {}
        """JSON value returned as tool-call arguments or as JSON-mode content."""
        self.ca_cert_path: str | None = None
        """PEM file of the throwaway CA (only when ``tls=True`` and started)."""
        self._lock = threading.Lock()
        self._all_closed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._open: set[socket.socket] = set()
        self._connections = 0
        self._tls_handshakes = 0
        self._max_open = 0
        self._max_client_open = 0
        self._requests: list[RecordedRequest] = []

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> StubServer:
        """Bind ``127.0.0.1:0`` and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("StubServer already started")
        ssl_context = self._make_tls_context() if self.tls else None
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.stub = self
        httpd.ssl_context = ssl_context
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"StubServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open client connection and clean up. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()  # no new connections are accepted after this returns
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            # Base-class call: cut the TCP stream without touching SSL state
            # that the handler thread may be using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        httpd.server_close()
        with self._all_closed:
            # Handler threads are daemons (not joined): wait for them to let go.
            self._all_closed.wait_for(lambda: not self._open, timeout=5)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self.ca_cert_path = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _make_tls_context(self) -> ssl.SSLContext:
        import trustme  # lazy: only needed for TLS

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self._tmpdir = tempfile.mkdtemp(prefix="clientdedupe-stub-")
        path = Path(self._tmpdir) / "ca.pem"
        ca.cert_pem.write_to_path(str(path))
        self.ca_cert_path = str(path)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side SSLContext trusting this server's CA (``tls=True`` only)."""
        if self.ca_cert_path is None:
            raise RuntimeError("no CA certificate: server not started with tls=True")
        return ssl.create_default_context(cafile=self.ca_cert_path)

    # -- addresses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("StubServer not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT`` (``https`` when ``tls=True``)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` (it posts to ``/chat/completions`` under it)."""
        return self.url + "/v1"

    @property
    def groq_base_url(self) -> str:
        """``base_url`` for ``groq.Groq`` (it appends ``/openai/v1/...`` itself)."""
        return self.url

    @property
    def cerebras_base_url(self) -> str:
        """``base_url`` for ``Cerebras`` (it appends ``/v1/...`` itself)."""
        return self.url

    @property
    def azure_endpoint(self) -> str:
        """``azure_endpoint`` for ``openai.AzureOpenAI``."""
        return self.url

    # -- counters ----------------------------------------------------------------

    @property
    def connections(self) -> int:
        """TCP connections accepted."""
        with self._lock:
            return self._connections

    @property
    def tls_handshakes(self) -> int:
        """Completed server-side TLS handshakes."""
        with self._lock:
            return self._tls_handshakes

    @property
    def open_connections(self) -> int:
        """Client connections currently open."""
        with self._lock:
            return len(self._open)

    def settled_open_connections(self, at_most: int = 0, timeout: float = 10.0) -> int:
        """The open connections once at most ``at_most`` are open, or after ``timeout``
        seconds: a client's close reaches the server's handler thread a moment later."""
        with self._all_closed:
            self._all_closed.wait_for(lambda: len(self._open) <= at_most, timeout=timeout)
            return len(self._open)

    @property
    def max_open_connections(self) -> int:
        """Peak number of simultaneously open connections."""
        with self._lock:
            return self._max_open

    @property
    def max_client_open_connections(self) -> int:
        """Peak number of connections the clients had open at once, counted as each
        request arrives and leaving out the connections their client has already closed.

        Unlike :attr:`max_open_connections` this does not depend on how soon the server
        notices a close: a client that replaces a connection (an expired keep-alive one,
        or the pool of an event loop that has ended) closes the old one before it sends
        on the new one, so load on the machine cannot make one connection at a time read
        as two. Over TLS a closed connection may still count until the server sees the
        close (its close alert is data, not an end of stream).
        """
        with self._lock:
            return self._max_client_open

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        """Zero the counters; the peak restarts from the currently open count."""
        with self._lock:
            self._connections = 0
            self._tls_handshakes = 0
            self._max_open = len(self._open)
            self._max_client_open = 0
            self._requests.clear()

    def _on_accept(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(sock)
            self._max_open = max(self._max_open, len(self._open))

    def _on_close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
            self._all_closed.notify_all()

    def _on_handshake(self) -> None:
        with self._lock:
            self._tls_handshakes += 1

    def _on_request(self, request: RecordedRequest, sock: socket.socket | None = None) -> None:
        with self._lock:
            self._requests.append(request)
            if sock is not None:
                held = sum(1 for other in self._open if other is sock or _held(other))
                self._max_client_open = max(self._max_client_open, held)

    # -- responses ---------------------------------------------------------------

    def _respond(self, method: str, path: str, body: bytes) -> tuple[int, _Json]:
        answers = {
            "/chat/completions": self._chat_completion,
            "/v1/messages": self._message,
            "/embeddings": self._embeddings,
        }
        answer = next((a for suffix, a in answers.items() if path.endswith(suffix)), None)
        if method == "POST" and answer is not None:
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                return 400, _error("request body is not valid JSON", "invalid_json")
            if not isinstance(payload, dict):
                return 400, _error("request body must be a JSON object", "invalid_json")
            if payload.get("stream"):
                return 400, _error("the stub server does not support streaming", "unsupported")
            if self.delay > 0 and self._stopping.wait(self.delay):
                raise ConnectionAbortedError("stub server stopping")  # drop, don't answer
            return 200, answer(payload)
        if method == "GET" and path == "/v1/tcp_warming":
            return 200, {}
        if method == "GET" and path.endswith("/models"):
            model = {"id": _STUB_MODEL, "object": "model", "created": 0, "owned_by": "stub"}
            return 200, {"object": "list", "data": [model]}
        return 404, _error(f"Unknown request URL: {method} {path}", "unknown_url")

    def _chat_completion(self, req: _Json) -> _Json:
        message: _Json = {"role": "assistant", "content": None}
        finish_reason = "stop"
        tool = _tool_name(req)
        if tool is not None:
            message["tool_calls"] = [
                {
                    "id": "call_stub_0",
                    "type": "function",
                    "function": {"name": tool, "arguments": json.dumps(self.tool_arguments)},
                }
            ]
            finish_reason = "tool_calls"
        elif _wants_json(req):
            message["content"] = json.dumps(self.tool_arguments)
        else:
            message["content"] = "echo: " + _last_user_text(req)
        prompt_tokens = sum(len(str(m).split()) for m in req.get("messages") or [])
        completion_tokens = len(str(message["content"] or message.get("tool_calls")).split())
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(req.get("model") or _STUB_MODEL),
            "system_fingerprint": "fp_stub",
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _message(self, req: _Json) -> _Json:
        """An Anthropic Messages API answer (``POST /v1/messages``)."""
        text = "echo: " + _last_user_text(req)
        return {
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "model": str(req.get("model") or _STUB_MODEL),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": len(text.split())},
        }

    def _embeddings(self, req: _Json) -> _Json:
        """An embeddings answer (``POST .../embeddings``): :func:`stub_embedding` of each
        input, as floats or, when asked (the openai SDK's default), base64."""
        given = req.get("input")
        if isinstance(given, str) or (
            isinstance(given, list) and given and all(isinstance(t, int) for t in given)
        ):
            inputs: list[Any] = [given]
        else:
            inputs = list(given) if isinstance(given, list) else [given]
        data = []
        for index, value in enumerate(inputs):
            vector = stub_embedding(value)
            embedding: Any = vector
            if req.get("encoding_format") == "base64":
                packed = struct.pack(f"<{len(vector)}f", *vector)
                embedding = base64.b64encode(packed).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(_embedded_text(value).split()) for value in inputs)
        return {
            "object": "list",
            "data": data,
            "model": str(req.get("model") or _STUB_MODEL),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def stub_embedding(value: Any) -> list[float]:
    """The vector the stub server answers for one embeddings input (a string, or a list
    of token ids): its length in characters, its number of words and the sum of its
    bytes modulo 1000, so that tests can tell which input a vector belongs to. Each is a
    small integer, exact as a float32."""
    text = _embedded_text(value)
    return [float(len(text)), float(len(text.split())), float(sum(text.encode()) % 1000)]


def _embedded_text(value: Any) -> str:
    if isinstance(value, list):  # token ids
        return " ".join(str(token) for token in value)
    return "" if value is None else str(value)


def _held(sock: socket.socket) -> bool:
    """Whether the client still holds ``sock`` open: it has not sent its end of stream
    (which the server may not have read yet). Peeks without blocking or consuming."""
    try:
        return socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except (BlockingIOError, InterruptedError):
        return True  # open, nothing to read
    except (OSError, ValueError):
        return False  # reset, or already closed on this side


def _error(message: str, code: str) -> _Json:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def _last_user_text(req: _Json) -> str:
    for msg in reversed(req.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # content parts
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return "" if content is None else str(content)
    return ""


def _tool_name(req: _Json) -> str | None:
    """The function to "call": the forced ``tool_choice`` if any, else the first tool."""
    tools = req.get("tools")
    choice = req.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return str(choice["function"].get("name"))
    first = tools[0] if isinstance(tools, list) else None
    if isinstance(first, dict) and isinstance(first.get("function"), dict):
        return str(first["function"].get("name"))
    return None


def _wants_json(req: _Json) -> bool:
    fmt = req.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubServer
    ssl_context: ssl.SSLContext | None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # No I/O here: the handshake runs in the handler thread (see _Handler.setup).
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        self.stub._on_accept(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self.stub._on_close(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: dropped connections and failed handshakes are expected."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
            self.server.stub._on_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Never write to stderr."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol errors (bad request line, unknown method...) in OpenAI's JSON shape."""
        self.close_connection = True
        self._send_json(code, _error(message or f"HTTP {code}", "bad_request"))

    def _dispatch(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send_json(411, _error("Content-Length required", "length_required"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send_json(400, _error("invalid Content-Length", "bad_request"))
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        stub = self.server.stub
        stub._on_request(RecordedRequest(self.command, path, query, headers, body), self.request)
        status, payload = stub._respond(self.command, path, body)
        self._send_json(status, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _send_json(self, status: int, payload: _Json) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
