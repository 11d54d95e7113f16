"""SPEC §5: the environment the constructor reads when an argument is left out is part
of the key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import CASES, Case

pytestmark = pytest.mark.usefixtures("installed")


def build(case: Case, **kwargs: Any) -> Any:
    if not case.is_async:
        return case.cls(**kwargs)

    async def inside_a_loop() -> Any:
        return case.cls(**kwargs)

    return asyncio.run(inside_a_loop())


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_changing_the_api_key_variable_gives_a_new_client_with_the_new_key(
    case: Case, server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.is_async:
        # Both constructions must happen in one loop for the async ones to be comparable.
        async def both() -> tuple[Any, Any]:
            kwargs = case.kwargs(server)
            del kwargs["api_key"]
            monkeypatch.setenv(case.api_key_env, "sk-first")
            first = case.cls(**kwargs)
            monkeypatch.setenv(case.api_key_env, "sk-second")
            return first, case.cls(**kwargs)

        first, second = asyncio.run(both())
    else:
        kwargs = case.kwargs(server)
        del kwargs["api_key"]
        monkeypatch.setenv(case.api_key_env, "sk-first")
        first = case.cls(**kwargs)
        monkeypatch.setenv(case.api_key_env, "sk-second")
        second = case.cls(**kwargs)
    assert first is not second
    assert (first.api_key, second.api_key) == ("sk-first", "sk-second")


def test_changing_the_base_url_variable_gives_a_new_client_with_the_new_url(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    with StubServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        first = openai.OpenAI(api_key="k")
        assert openai.OpenAI(api_key="k") is first
        monkeypatch.setenv("OPENAI_BASE_URL", other.openai_base_url)
        second = openai.OpenAI(api_key="k")
        assert second is not first
        assert str(second.base_url).rstrip("/") == other.openai_base_url
        second.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert other.connections == 1


def test_an_explicit_argument_makes_its_variable_irrelevant(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    first = openai.OpenAI(api_key="explicit", base_url=server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-second")
    assert openai.OpenAI(api_key="explicit", base_url=server.openai_base_url) is first


def test_an_explicit_none_still_reads_the_variable(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    first = openai.OpenAI(api_key=None, base_url=server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-second")
    assert openai.OpenAI(api_key=None, base_url=server.openai_base_url) is not first
    # base_url's default is a sentinel (openai 3.x), yet None also means "read the variable".
    with StubServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        first = openai.OpenAI(api_key="k", base_url=None)
        monkeypatch.setenv("OPENAI_BASE_URL", other.openai_base_url)
        second = openai.OpenAI(api_key="k", base_url=None)
        assert second is not first
        assert str(second.base_url).rstrip("/") == other.openai_base_url


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "no_proxy", "SSL_CERT_FILE"])
def test_the_http_clients_variables_are_in_the_key_unless_an_http_client_is_given(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    import certifi
    import openai

    value = certifi.where() if variable == "SSL_CERT_FILE" else "http://127.0.0.1:9"
    http_client = openai.DefaultHttpxClient()
    url = server.openai_base_url
    first = openai.OpenAI(api_key="k", base_url=url)
    given = openai.OpenAI(api_key="k", base_url=url, http_client=http_client)
    monkeypatch.setenv(variable, value)
    assert openai.OpenAI(api_key="k", base_url=url) is not first
    assert openai.OpenAI(api_key="k", base_url=url, http_client=http_client) is given


@pytest.mark.parametrize("variable", ["GROQ_CUSTOM_HEADERS", "CEREBRAS_CUSTOM_HEADERS"])
def test_custom_header_variables_are_in_the_key(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    case = next(
        c for c in CASES if c.api_key_env.startswith(variable.split("_")[0]) and not c.is_async
    )
    first = case.build(server)
    monkeypatch.setenv(variable, "X-Team: b")
    assert case.build(server) is not first
    assert case.build(server) is case.build(server)


def test_azure_endpoint_and_api_version_variables_are_in_the_key(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.azure_endpoint)
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-06-01")
    first = openai.AzureOpenAI(api_key="k")
    assert openai.AzureOpenAI(api_key="k") is first
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    second = openai.AzureOpenAI(api_key="k")
    assert second is not first
    with StubServer() as other:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", other.azure_endpoint)
        assert openai.AzureOpenAI(api_key="k") is not second


def test_a_proxy_variable_in_any_case_is_part_of_the_key(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    import openai

    url = server.openai_base_url
    direct = openai.OpenAI(api_key="k", base_url=url)
    monkeypatch.setenv("Http_Proxy", "http://127.0.0.1:9")
    assert urllib.request.getproxies()["http"] == "http://127.0.0.1:9"  # what httpx reads
    proxied = openai.OpenAI(api_key="k", base_url=url)
    assert proxied is not direct
    monkeypatch.setenv("Http_Proxy", "http://127.0.0.1:8")
    assert openai.OpenAI(api_key="k", base_url=url) is not proxied
    monkeypatch.delenv("Http_Proxy")
    assert openai.OpenAI(api_key="k", base_url=url) is direct
    # Removed while another variable was set after it: seen too.
    monkeypatch.setenv("Http_Proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("UNRELATED_SETTING", "1")
    assert openai.OpenAI(api_key="k", base_url=url) is proxied
    monkeypatch.delenv("Http_Proxy")
    assert openai.OpenAI(api_key="k", base_url=url) is direct
    # Replaced by another variable, so that their number stays the same: seen too.
    monkeypatch.setenv("Http_Proxy", "http://127.0.0.1:9")
    assert openai.OpenAI(api_key="k", base_url=url) is proxied
    monkeypatch.delenv("Http_Proxy")
    monkeypatch.setenv("OTHER_UNRELATED_SETTING", "1")
    assert openai.OpenAI(api_key="k", base_url=url) is direct


def test_an_environment_replaced_by_a_mapping_that_is_not_a_dict_still_shares(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    from collections.abc import Iterator, MutableMapping

    import openai

    class Environment(MutableMapping[str, str]):  # neither a dict nor reversible
        def __init__(self, values: dict[str, str]) -> None:
            self._values = values

        def __getitem__(self, name: str) -> str:
            return self._values[name]

        def __setitem__(self, name: str, value: str) -> None:
            self._values[name] = value

        def __delitem__(self, name: str) -> None:
            del self._values[name]

        def __iter__(self) -> Iterator[str]:
            return iter(self._values)

        def __len__(self) -> int:
            return len(self._values)

    values = {"OPENAI_API_KEY": "sk-a", "https_proxy": "http://127.0.0.1:9"}
    monkeypatch.setattr(os, "environ", Environment(values))
    url = server.openai_base_url
    first = openai.OpenAI(base_url=url)
    assert openai.OpenAI(base_url=url) is first
    del os.environ["https_proxy"]
    assert openai.OpenAI(base_url=url) is not first
    assert clientdedupe.stats()["openai.OpenAI"]["bypassed"] == 0


def test_an_emptied_environment_still_shares(server: StubServer) -> None:
    # A test suite's mock.patch.dict(os.environ, clear=True): no variable at all.
    import os
    from unittest import mock

    import openai

    url = server.openai_base_url
    with mock.patch.dict(os.environ, clear=True):
        first = openai.OpenAI(api_key="k", base_url=url)
        assert openai.OpenAI(api_key="k", base_url=url) is first
        os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
        assert openai.OpenAI(api_key="k", base_url=url) is not first
    assert clientdedupe.stats()["openai.OpenAI"]["bypassed"] == 0
