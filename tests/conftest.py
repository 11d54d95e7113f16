from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest

import clientdedupe
from clientdedupe._targets import HTTP_ENV, PROXY_VARIABLES
from clientdedupe._tools.stub_server import StubServer

# Variables the SDKs or their HTTP libraries read: the tests set what they need.
_SCRUBBED_PREFIXES = (
    "OPENAI_",
    "AZURE_OPENAI_",
    "GROQ_",
    "CEREBRAS_",
    "ANTHROPIC_",
    "TOGETHER_",
    "FIREWORKS_",
    "CLIENTDEDUPE",
)
_SCRUBBED = tuple(name for name in (*HTTP_ENV, *PROXY_VARIABLES) if name.lower() != "no_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SDK or clientdedupe variable leaks in from the machine; loopback only."""
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED:
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def installed() -> Iterator[None]:
    """clientdedupe installed for the test, uninstalled after."""
    clientdedupe.install()
    try:
        yield
    finally:
        clientdedupe.uninstall()


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as srv:
        yield srv


@pytest.fixture
def tls_server() -> Iterator[StubServer]:
    with StubServer(tls=True) as srv:
        yield srv


pytest_plugins = ["pytester"]


@pytest.fixture
def counted_init() -> Iterator[tuple[type, list[Any]]]:
    """openai.OpenAI with another library's layer around the SDK's ``__init__`` (put
    there before clientdedupe is installed) that notes every object the SDK's
    ``__init__`` runs on a second time."""
    import openai

    twice: list[Any] = []
    sdk_init = vars(openai.OpenAI)["__init__"]

    @functools.wraps(sdk_init)  # keeps the SDK's keyword-only signature visible
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        attributes = vars(self)  # not setattr: that is a holder's change
        if attributes.get("_test_initialised"):
            twice.append(self)
        attributes["_test_initialised"] = True
        sdk_init(self, *args, **kwargs)

    openai.OpenAI.__init__ = init  # type: ignore[method-assign]
    try:
        yield openai.OpenAI, twice
    finally:
        clientdedupe.uninstall()
        openai.OpenAI.__init__ = sdk_init  # type: ignore[method-assign]
