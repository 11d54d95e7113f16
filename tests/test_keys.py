"""SPEC §5: two constructions share a client only if it would behave identically."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import ASYNC_CASES, CASES, SYNC_CASES, Case

pytestmark = pytest.mark.usefixtures("installed")


def construct_twice(case: Case, first: dict[str, Any], second: dict[str, Any]) -> tuple[Any, Any]:
    """Build two clients of ``case`` (inside one running loop for async classes)."""
    if not case.is_async:
        return case.cls(**first), case.cls(**second)

    async def both() -> tuple[Any, Any]:
        return case.cls(**first), case.cls(**second)

    return asyncio.run(both())


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_same_configuration_returns_the_same_instance(case: Case, server: StubServer) -> None:
    a, b = construct_twice(case, case.kwargs(server), case.kwargs(server))
    assert a is b
    assert type(a) is case.cls
    assert isinstance(a, case.cls)


@pytest.mark.parametrize(
    "override",
    [
        {"api_key": "sk-other-key"},
        {"default_headers": {"X-Team": "b"}},
        {"timeout": 7.0},
        {"max_retries": 5},
        {"default_query": {"q": "1"}},
    ],
    ids=lambda o: next(iter(o)),
)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_a_different_argument_gives_a_different_instance(
    case: Case, server: StubServer, override: dict[str, Any]
) -> None:
    a, b = construct_twice(case, case.kwargs(server), case.kwargs(server, **override))
    assert a is not b


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_a_different_base_url_gives_a_different_instance(case: Case, server: StubServer) -> None:
    with StubServer() as other:
        a, b = construct_twice(case, case.kwargs(server), case.kwargs(other))
    assert a is not b


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_http_clients_compare_by_identity(case: Case, server: StubServer) -> None:
    mine, theirs = case.http_client(), case.http_client()
    a = case.build(server, http_client=mine)
    assert case.build(server, http_client=mine) is a
    assert case.build(server, http_client=theirs) is not a
    assert case.build(server) is not a


def test_different_classes_are_never_merged(server: StubServer) -> None:
    import openai

    plain = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    azure = openai.AzureOpenAI(
        api_key="k", base_url=server.openai_base_url, api_version="2024-06-01"
    )
    assert type(azure) is openai.AzureOpenAI
    assert plain is not azure


def test_defaults_spelled_out_give_the_same_key(server: StubServer) -> None:
    import openai

    a = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    b = openai.OpenAI(
        api_key="k",
        base_url=server.openai_base_url,
        max_retries=2,
        timeout=openai.NOT_GIVEN,
        organization=None,
        default_headers=None,
    )
    assert a is b


def test_dict_and_list_arguments_compare_by_value_in_order(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    a = openai.OpenAI(api_key="k", base_url=url, default_headers={"A": "1", "B": "2"})
    same = openai.OpenAI(api_key="k", base_url=url, default_headers=dict([("A", "1"), ("B", "2")]))
    reordered = openai.OpenAI(api_key="k", base_url=url, default_headers={"B": "2", "A": "1"})
    other = openai.OpenAI(api_key="k", base_url=url, default_headers={"A": "1", "B": "3"})
    assert a is same
    assert a is not reordered  # sent in another order: never another caller's
    assert a is not other
    listed = openai.OpenAI(api_key="k", base_url=url, default_query={"tags": ["x", "y"]})
    assert openai.OpenAI(api_key="k", base_url=url, default_query={"tags": ["x", "y"]}) is listed
    assert (
        openai.OpenAI(api_key="k", base_url=url, default_query={"tags": ["y", "x"]}) is not listed
    )


def test_equal_values_built_apart_compare_by_value(server: StubServer) -> None:
    """Equal plain data held by distinct objects (built at run time, not interned
    literals) gives the same key, at any depth and of any plain container type."""
    import openai

    def query() -> dict[str, Any]:
        tenant = "".join(["ten", "ant"])
        return {
            "tenant": tenant,
            "limit": int("1000"),
            "ratio": float("0.5"),
            "ids": (int("1001"), tenant),
            "tags": {tenant, "x" + str(len(tenant))},
            "frozen": frozenset([tenant]),
        }

    first, second = query(), query()
    assert first["tenant"] is not second["tenant"] and first["limit"] is not second["limit"]
    url = server.openai_base_url
    a = openai.OpenAI(api_key="k", base_url=url, default_query=first)
    assert openai.OpenAI(api_key="k", base_url=url, default_query=second) is a
    for name, other in [("tags", {"tenant"}), ("frozen", frozenset(["other"]))]:
        changed = {**query(), name: other}
        assert openai.OpenAI(api_key="k", base_url=url, default_query=changed) is not a


def test_a_shared_client_never_keeps_a_reference_to_the_callers_containers(
    server: StubServer,
) -> None:
    import openai

    headers = {"X-Team": "a"}
    query = {"tags": ["x1", ("y1", {"z1"})], "page": {"size": 10}}
    client = openai.OpenAI(
        api_key="k", base_url=server.openai_base_url, default_query=query, default_headers=headers
    )
    headers["X-Team"] = "changed"
    query["tags"][0] = "changed"  # type: ignore[index]
    query["tags"][1][1].add("changed")  # type: ignore[index]
    query["page"]["size"] = 99  # type: ignore[index]
    assert client.default_headers["X-Team"] == "a"
    assert client._custom_query == {"tags": ["x1", ("y1", {"z1"})], "page": {"size": 10}}
    assert type(client._custom_query["tags"][1]) is tuple


class _Slotted:
    """An argument that cannot be weakly referenced."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def test_an_object_that_cannot_be_weakly_referenced_compares_by_identity(
    server: StubServer,
) -> None:
    import openai

    url = server.openai_base_url
    slotted = _Slotted(5.0)
    a = openai.OpenAI(api_key="k", base_url=url, default_headers={"X-Obj": slotted})
    assert openai.OpenAI(api_key="k", base_url=url, default_headers={"X-Obj": slotted}) is a
    other = _Slotted(5.0)
    assert openai.OpenAI(api_key="k", base_url=url, default_headers={"X-Obj": other}) is not a
    assert clientdedupe.stats()["openai.OpenAI"]["bypassed"] == 0


def test_identity_parts_are_equal_only_for_the_same_live_object() -> None:
    """The contract of the key part for objects without value semantics."""
    from clientdedupe._key import ByIdentity, freeze

    class Obj:
        pass

    one, two = Obj(), Obj()
    assert freeze(one) == freeze(one)
    assert freeze(one) != freeze(two)
    assert freeze(one) != (Obj, one)  # never equal to a part of another kind
    assert freeze(one) != "one"
    dead = ByIdentity(Obj())  # its object is gone: equal to nothing, itself included
    assert dead != dead


def test_header_names_differing_only_in_case_never_share(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    first = openai.OpenAI(
        api_key="k", base_url=url, default_headers={"X-Tenant": "a", "x-tenant": "b"}
    )
    second = openai.OpenAI(
        api_key="k", base_url=url, default_headers={"x-tenant": "b", "X-Tenant": "a"}
    )
    assert first is not second
    Case.ask(first)
    Case.ask(second)
    # Each sends what it would send without clientdedupe: the last spelling wins.
    assert [r.headers["x-tenant"] for r in server.requests[-2:]] == ["b", "a"]


def test_values_of_different_types_are_not_merged(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    assert openai.OpenAI(api_key="k", base_url=url, timeout=5) is not openai.OpenAI(
        api_key="k", base_url=url, timeout=5.5
    )
    assert openai.OpenAI(api_key="k", base_url=url, max_retries=1) is not openai.OpenAI(
        api_key="k", base_url=url, max_retries=True
    )


def test_a_callable_api_key_compares_by_identity(server: StubServer) -> None:
    import openai

    def provider() -> str:
        return "k"

    def other() -> str:
        return "k"

    url = server.openai_base_url
    a = openai.OpenAI(api_key=provider, base_url=url)
    assert openai.OpenAI(api_key=provider, base_url=url) is a
    assert openai.OpenAI(api_key=other, base_url=url) is not a


def test_a_subclass_is_constructed_normally_and_never_merged(server: StubServer) -> None:
    import openai

    class MyClient(openai.OpenAI):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.extra = True

    kwargs = {"api_key": "k", "base_url": server.openai_base_url}
    base = openai.OpenAI(**kwargs)
    first, second = MyClient(**kwargs), MyClient(**kwargs)
    assert first is not second
    assert base is not first
    assert type(first) is MyClient and first.extra
    assert "openai.OpenAI" in clientdedupe.stats()
    assert clientdedupe.stats()["openai.OpenAI"]["constructions"] == 1


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_the_shared_client_makes_real_requests(case: Case, server: StubServer) -> None:
    a, b = case.build(server), case.build(server)
    assert a is b
    assert case.ask(a, "first") == "echo: first"
    assert case.ask(b, "second") == "echo: second"


@pytest.mark.parametrize("case", ASYNC_CASES, ids=repr)
def test_the_shared_async_client_makes_real_requests(case: Case, server: StubServer) -> None:
    async def main() -> list[str]:
        a, b = case.build(server), case.build(server)
        assert a is b
        return [await case.aask(a, "first"), await case.aask(b, "second")]

    assert asyncio.run(main()) == ["echo: first", "echo: second"]


def test_positional_arguments_are_passed_through_untouched(server: StubServer) -> None:
    import openai

    with pytest.raises(TypeError):
        openai.OpenAI("k")
    assert clientdedupe.stats()["openai.OpenAI"]["bypass_reasons"] == {"positional arguments": 1}


def test_an_unknown_argument_raises_the_sdks_own_type_error(server: StubServer) -> None:
    import openai

    with pytest.raises(TypeError, match="no_such_argument"):
        openai.OpenAI(api_key="k", base_url=server.openai_base_url, no_such_argument=1)
    counts = clientdedupe.stats()["openai.OpenAI"]
    assert counts["live"] == 0
    assert counts["bypass_reasons"] == {"unknown keyword argument": 1}


def test_anthropic_credentials_read_from_files_are_never_shared(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import anthropic

    # No key anywhere: the constructor looks in profile files, which the key cannot see.
    monkeypatch.setenv("HOME", str(tmp_path))
    assert anthropic.Anthropic(base_url=server.url) is not anthropic.Anthropic(base_url=server.url)
    counts = clientdedupe.stats()["anthropic.Anthropic"]
    assert counts["bypass_reasons"] == {"credentials read from files": 2}
    # A key from the environment, or given, is enough to share.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    assert anthropic.Anthropic(base_url=server.url) is anthropic.Anthropic(base_url=server.url)


def test_an_argument_given_as_its_default_hides_none_of_the_others(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    # max_retries=2 is the default object itself: skipped, and the key goes on.
    a = openai.OpenAI(max_retries=2, api_key="tenant-a", base_url=url)
    b = openai.OpenAI(max_retries=2, api_key="tenant-b", base_url=url)
    assert a is not b
    assert openai.OpenAI(api_key="tenant-a", base_url=url) is a
    # A "not given" marker spelled out is skipped too, and the key goes on.
    c = openai.OpenAI(timeout=openai.NotGiven(), api_key="tenant-c", base_url=url)
    assert c is not a
    assert openai.OpenAI(api_key="tenant-c", base_url=url) is c


def test_anthropic_configuration_read_from_files_is_never_shared(
    server: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import inspect

    import anthropic

    if "profile" not in inspect.signature(anthropic.Anthropic.__init__).parameters:
        pytest.skip("this anthropic has no profiles")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))  # no profile there
    # The SDK's own error, as without us (CredentialsError since anthropic 1, a bare
    # AnthropicError before).
    with pytest.raises(anthropic.AnthropicError, match="profile 'work'"):
        anthropic.Anthropic(base_url=server.url, profile="work")
    counts = clientdedupe.stats()["anthropic.Anthropic"]
    assert counts["bypass_reasons"] == {"configuration read from files": 1}


def _key_builder(**files: tuple[str, ...]) -> Any:
    """The key builder of a class whose constructor reads configuration files as the
    ``file_params`` and ``files_unless`` of its target say."""
    from clientdedupe._key import KeyBuilder
    from clientdedupe._targets import Sdk, Target

    def __init__(
        self: object, *, api_key: str | None = None, profile: str | None = None
    ) -> None: ...

    target = Target(Sdk("acme", "acme", (1, 2)), "acme", "Acme", is_async=False, env=(), **files)
    return KeyBuilder(target, __init__)


@pytest.mark.parametrize(
    "files",
    [
        {"file_params": ("profile",)},
        {"file_params": ("profile",), "files_unless": ("api_key",)},
        {"file_params": ("profile",), "files_unless": ("ACME_API_KEY",)},
    ],
    ids=["file parameter", "and a key parameter", "and a key variable"],
)
def test_a_file_parameter_given_is_refused_whatever_else_the_class_reads(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, tuple[str, ...]]
) -> None:
    from clientdedupe._key import Unkeyable

    monkeypatch.setenv("ACME_API_KEY", "sk-acme")
    build = _key_builder(**files).build
    with pytest.raises(Unkeyable, match="configuration read from files"):
        build((), {"api_key": "k", "profile": "work"})
    build((), {"api_key": "k"})  # keyed


@pytest.mark.parametrize(
    ("files_unless", "sharing_arguments"),
    [(("api_key",), {"api_key": "k"}), (("ACME_API_KEY",), {})],
    ids=["a key parameter", "a key variable"],
)
def test_credentials_are_refused_only_without_what_spares_the_files(
    monkeypatch: pytest.MonkeyPatch,
    files_unless: tuple[str, ...],
    sharing_arguments: dict[str, str],
) -> None:
    from clientdedupe._key import Unkeyable

    monkeypatch.setenv("ACME_API_KEY", "sk-acme")
    build = _key_builder(files_unless=files_unless).build
    build((), sharing_arguments)  # keyed
    monkeypatch.delenv("ACME_API_KEY")
    with pytest.raises(Unkeyable, match="credentials read from files"):
        build((), {})
