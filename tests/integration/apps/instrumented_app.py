"""A user's program, unmodified: an instrumentation set up as its docs show, then thirty
agents that each build an ``OpenAI()`` and ask one question, and thirty that each build
an ``AsyncOpenAI()`` and ask one in an event loop. Key and endpoint come from
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``. The first argument names the instrumentation:

- ``opentelemetry``: ``OpenAIInstrumentor().instrument(tracer_provider=...)`` from
  opentelemetry-instrumentation-openai-v2, spans kept by an in-memory exporter;
- ``openinference``: openinference-instrumentation-openai's ``OpenAIInstrumentor``, the same;
- ``logfire``: ``logfire.configure(send_to_logfire=False, ...)`` and
  ``logfire.instrument_openai()``, spans kept by an in-memory exporter;
- ``sentry``: ``sentry_sdk.init(..., integrations=[OpenAIIntegration()])`` with a
  transport that keeps envelopes in memory, one transaction per agent;
- ``launcher``: nothing in code: ``opentelemetry-instrument`` set OpenTelemetry up before
  the program; the program only adds an in-memory exporter to read the spans back.

Prints one JSON line: the answers, how many distinct clients served them, and per
call how many spans (Sentry: spans of its OpenAI integration) the instrumentation made."""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from _measure import open_sockets

AGENTS = 30
INSTRUMENTATION = sys.argv[1]
PACKAGES = {
    "opentelemetry": ("opentelemetry-instrumentation-openai-v2", "opentelemetry-sdk"),
    "openinference": ("openinference-instrumentation-openai", "opentelemetry-sdk"),
    "logfire": ("logfire",),
    "sentry": ("sentry-sdk",),
    "launcher": ("opentelemetry-distro", "opentelemetry-instrumentation-openai-v2"),
}


def in_memory_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    return exporter, SimpleSpanProcessor(exporter)


def set_up() -> Any:
    """Instrument as the instrumentation's docs show; returns a function that lists,
    per span or event recorded since the last call, its name."""
    if INSTRUMENTATION in ("opentelemetry", "openinference"):
        from opentelemetry.sdk.trace import TracerProvider

        if INSTRUMENTATION == "opentelemetry":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        else:
            from openinference.instrumentation.openai import OpenAIInstrumentor

        exporter, processor = in_memory_exporter()
        provider = TracerProvider()
        provider.add_span_processor(processor)
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return lambda: [span.name for span in take(exporter)]
    if INSTRUMENTATION == "logfire":
        import logfire

        exporter, processor = in_memory_exporter()
        logfire.configure(
            send_to_logfire=False, console=False, additional_span_processors=[processor]
        )
        logfire.instrument_openai()
        return lambda: [span.name for span in take(exporter)]
    if INSTRUMENTATION == "sentry":
        import sentry_sdk
        from sentry_sdk.integrations.openai import OpenAIIntegration
        from sentry_sdk.transport import Transport

        envelopes: list[Any] = []

        class InMemory(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                envelopes.append(envelope)

        sentry_sdk.init(
            dsn="http://public@127.0.0.1:9/1",
            transport=InMemory,
            traces_sample_rate=1.0,
            integrations=[OpenAIIntegration()],
            default_integrations=False,
        )

        def spans() -> list[str]:
            """The operations of the AI spans sent: inside transactions, or (newer
            SDKs) as span items of their own."""
            sentry_sdk.flush()
            operations = []
            for envelope in envelopes:
                for item in envelope.items:
                    payload = item.payload.json or {}
                    if item.type == "transaction":
                        operations += [span.get("op") or "" for span in payload.get("spans", [])]
                    elif item.type == "span":
                        operations += [
                            span.get("attributes", {}).get("sentry.op", {}).get("value", "")
                            for span in payload.get("items", [])
                        ]
            envelopes.clear()
            return [operation for operation in operations if operation.startswith("gen_ai")]

        return spans
    # launcher: opentelemetry-instrument configured the SDK and instrumented openai.
    from opentelemetry import trace

    exporter, processor = in_memory_exporter()
    trace.get_tracer_provider().add_span_processor(processor)
    return lambda: [span.name for span in take(exporter)]


def take(exporter: Any) -> list[Any]:
    spans = list(exporter.get_finished_spans())
    exporter.clear()
    return spans


def transaction(name: str) -> Any:
    """One transaction per agent for Sentry (spans are only recorded inside one)."""
    if INSTRUMENTATION == "sentry":
        import sentry_sdk

        return sentry_sdk.start_transaction(name=name)
    import contextlib

    return contextlib.nullcontext()


def main() -> None:
    spans = set_up()
    import openai

    answers, per_call, clients = [], [], []
    for agent in range(AGENTS):
        with transaction(f"agent {agent}"):
            client = openai.OpenAI()
            reply = client.chat.completions.create(
                model="stub-model", messages=[{"role": "user", "content": f"agent {agent}"}]
            )
        clients.append(client)
        answers.append(reply.choices[0].message.content)
        per_call.append(spans())

    async def serve() -> None:
        for agent in range(AGENTS):
            with transaction(f"async agent {agent}"):
                client = openai.AsyncOpenAI()
                reply = await client.chat.completions.create(
                    model="stub-model",
                    messages=[{"role": "user", "content": f"async agent {agent}"}],
                )
            async_clients.append(client)
            answers.append(reply.choices[0].message.content)
            per_call.append(spans())

    async_clients: list[Any] = []
    asyncio.run(serve())

    versions = {"openai": version("openai")}
    for name in PACKAGES[INSTRUMENTATION]:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    result = {
        "answers": answers,
        "spans": per_call,
        "sync_clients": len({id(client) for client in clients}),
        "async_clients": len({id(client) for client in async_clients}),
        "sockets": open_sockets(),
        "versions": versions,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
