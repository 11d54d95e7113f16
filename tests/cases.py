"""One row per supported client class: how to build it against the stub server and how
to make a real request with it. The contract tests are parametrised over these rows."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from clientdedupe._tools.stub_server import StubServer

Kwargs = dict[str, Any]


class Case:
    """How the tests drive one target class."""

    def __init__(
        self,
        qualname: str,
        kwargs: Callable[[StubServer], Kwargs],
        *,
        is_async: bool,
        api_key_env: str,
        base_url_param: str,
        base_url_env: str,
    ) -> None:
        self.qualname = qualname
        self.module, _, self.name = qualname.rpartition(".")
        self._kwargs = kwargs
        self.is_async = is_async
        self.api_key_env = api_key_env
        self.base_url_param = base_url_param
        self.base_url_env = base_url_env

    def __repr__(self) -> str:
        return self.qualname

    @property
    def cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.name)  # type: ignore[no-any-return]

    def kwargs(self, server: StubServer, **overrides: Any) -> Kwargs:
        """Arguments for a client of this class talking to ``server``."""
        return {"api_key": "sk-test-key", **self._kwargs(server), **overrides}

    def build(self, server: StubServer, **overrides: Any) -> Any:
        return self.cls(**self.kwargs(server, **overrides))

    def http_client(self) -> Any:
        """A fresh HTTP client of the kind this SDK takes as ``http_client``."""
        sdk = importlib.import_module(self.module)
        factory = sdk.DefaultAsyncHttpxClient if self.is_async else sdk.DefaultHttpxClient
        return factory()

    @staticmethod
    def resource(client: Any) -> Any:
        """The resource object whose ``create`` makes a chat request."""
        messages = getattr(client, "messages", None)
        if messages is not None and hasattr(messages, "create"):  # Anthropic's API
            return messages
        return client.chat.completions

    @staticmethod
    def _call(client: Any) -> Any:
        messages = getattr(client, "messages", None)
        if messages is not None and hasattr(messages, "create"):  # Anthropic's API
            return lambda text: messages.create(
                model="stub-model", max_tokens=16, messages=[{"role": "user", "content": text}]
            )
        return lambda text: client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": text}]
        )

    @staticmethod
    def _answer(response: Any) -> str:
        if hasattr(response, "choices"):
            return response.choices[0].message.content  # type: ignore[no-any-return]
        return response.content[0].text  # type: ignore[no-any-return]

    @staticmethod
    def ask(client: Any, text: str = "hi") -> str:
        """One chat request with a sync client; returns the answer."""
        return Case._answer(Case._call(client)(text))

    @staticmethod
    async def aask(client: Any, text: str = "hi") -> str:
        """One chat request with an async client; returns the answer."""
        return Case._answer(await Case._call(client)(text))


def _openai(server: StubServer) -> Kwargs:
    return {"base_url": server.openai_base_url}


def _azure(server: StubServer) -> Kwargs:
    return {"azure_endpoint": server.azure_endpoint, "api_version": "2024-06-01"}


def _groq(server: StubServer) -> Kwargs:
    return {"base_url": server.groq_base_url}


def _cerebras(server: StubServer) -> Kwargs:
    return {"base_url": server.cerebras_base_url}


def _host(server: StubServer) -> Kwargs:
    return {"base_url": server.url}


def _case(
    qualname: str, kwargs: Callable[[StubServer], Kwargs], key_env: str, url_env: str
) -> list[Case]:
    module, _, name = qualname.rpartition(".")
    async_qualname = f"{module}.Async{name}"
    url_param = "azure_endpoint" if "Azure" in name else "base_url"
    return [
        Case(
            qualname,
            kwargs,
            is_async=False,
            api_key_env=key_env,
            base_url_param=url_param,
            base_url_env=url_env,
        ),
        Case(
            async_qualname,
            kwargs,
            is_async=True,
            api_key_env=key_env,
            base_url_param=url_param,
            base_url_env=url_env,
        ),
    ]


CASES: list[Case] = [
    *_case("openai.OpenAI", _openai, "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    *_case("openai.AzureOpenAI", _azure, "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"),
    *_case("groq.Groq", _groq, "GROQ_API_KEY", "GROQ_BASE_URL"),
    *_case("cerebras.cloud.sdk.Cerebras", _cerebras, "CEREBRAS_API_KEY", "CEREBRAS_BASE_URL"),
    *_case("anthropic.Anthropic", _host, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    *_case("together.Together", _host, "TOGETHER_API_KEY", "TOGETHER_BASE_URL"),
    *_case("fireworks.Fireworks", _host, "FIREWORKS_API_KEY", "FIREWORKS_BASE_URL"),
]
SYNC_CASES = [c for c in CASES if not c.is_async]
ASYNC_CASES = [c for c in CASES if c.is_async]
