"""Targets beyond the built-in table: ``clientdedupe.register()`` and
``CLIENTDEDUPE_EXTRA_TARGETS``."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import clientdedupe
from clientdedupe import _targets
from clientdedupe._tools.stub_server import StubServer

from .processes import SITECUSTOMIZE_EXAMPLE, run_python
from .throwaway import throwaway_sdk

# A throwaway SDK shaped like the generated ones: keyword-only constructor reading its
# key from the environment, resources holding the client, a close().
ACME = {
    "__init__.py": "from ._client import Acme, AsyncAcme, AsyncPooled, OldAcme, Omit, Tuned\n",
    "_resource.py": """
        class SyncAPIResource:
            def __init__(self, client):
                self._client = client

        class AsyncAPIResource(SyncAPIResource):
            pass
    """,
    "_client.py": """
        import os
        from ._resource import SyncAPIResource

        class Completions(SyncAPIResource):
            def create(self, text):
                return f"{self._client.region}: {text}"

        class Acme:
            def __init__(self, *, api_key=None, region="eu", headers=None):
                self.api_key = api_key or os.environ.get("ACME_API_KEY")
                if not self.api_key:
                    raise ValueError("no Acme API key")
                self.region = region
                self.headers = dict(headers or {})
                self.closed = False
                self.completions = Completions(self)

            def close(self):
                self.closed = True

        class Omit:
            # This SDK's "not given" marker, as openai's NotGiven and Omit.
            pass

        class Tuned(Acme):
            # Defaults of the kinds a constructor spells: a float, a marker of its own.
            def __init__(self, *, api_key=None, region="eu", timeout=60.0, retries=Omit()):
                super().__init__(api_key=api_key, region=region)
                self.timeout = timeout

        class OldAcme:
            # An older release: any option accepted, the region only from the environment.
            def __init__(self, *, api_key=None, **options):
                self.api_key = api_key or os.environ["ACME_API_KEY"]
                self.region = os.environ.get("ACME_REGION", "eu")
                self.options = options

            def close(self):
                pass

        class AsyncAcme(Acme):
            async def close(self):
                self.closed = True

        class Pool:
            closed = False

            async def aclose(self):
                self.closed = True

        class AsyncPooled(Acme):
            # Its pool is not one clientdedupe can make one per event loop.
            def __init__(self, **options):
                super().__init__(**options)
                self._client = Pool()

            async def close(self):
                await self._client.aclose()

        class Unhashable(Acme):
            __hash__ = None

            def __eq__(self, other):
                return isinstance(other, Unhashable)
    """,
    "unsafe.py": """
        class Positional:
            def __init__(self, api_key):
                self.api_key = api_key
            def close(self):
                pass

        class OwnNew:
            def __new__(cls, **kwargs):
                return super().__new__(cls)
            def __init__(self, **kwargs):
                pass
            def close(self):
                pass

        class NoClose:
            def __init__(self, **kwargs):
                pass

        not_a_class = 42
    """,
}


def write_acme(root: Path) -> None:
    package = root / "acme"
    package.mkdir()
    for name, source in ACME.items():
        (package / name).write_text(textwrap.dedent(source))


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The throwaway SDK, importable; forgotten (and its registration) after the test."""
    monkeypatch.setenv("ACME_API_KEY", "sk-acme")
    files = {f"acme/{name}": source for name, source in ACME.items()}
    with throwaway_sdk(tmp_path, monkeypatch, "acme", files) as module:
        yield module


def test_a_class_registered_before_install_is_deduplicated_until_uninstall(acme: Any) -> None:
    clientdedupe.register("acme:Acme")
    clientdedupe.install()
    a = acme.Acme(region="us")
    assert acme.Acme(region="us") is a
    assert acme.Acme(region="eu") is not a
    assert type(a) is acme.Acme
    assert clientdedupe.stats()["acme.Acme"]["built"] == 2
    clientdedupe.uninstall()
    assert acme.Acme(region="us") is not acme.Acme(region="us")


def test_a_class_registered_after_install_is_deduplicated_at_once(acme: Any) -> None:
    clientdedupe.install(targets=["openai"])
    assert acme.Acme() is not acme.Acme()
    clientdedupe.register("acme:Acme")
    assert acme.Acme() is acme.Acme()


def test_without_env_the_whole_environment_is_in_the_key(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clientdedupe.register("acme:Acme")
    clientdedupe.install()
    first = acme.Acme()
    assert acme.Acme() is first
    monkeypatch.setenv("ACME_API_KEY", "sk-acme-2")
    second = acme.Acme()
    assert second is not first and second.api_key == "sk-acme-2"
    # Any variable, not only ACME_*: an SDK may read a differently named one.
    monkeypatch.setenv("SOME_OTHER_TOKEN", "1")
    assert acme.Acme() is not second


def test_with_env_only_the_named_variables_are_in_the_key(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clientdedupe.register("acme:Acme", env={"api_key": "ACME_API_KEY"})
    clientdedupe.install()
    first = acme.Acme()
    monkeypatch.setenv("ACME_UNRELATED_SETTING", "1")
    assert acme.Acme() is first
    monkeypatch.setenv("ACME_API_KEY", "sk-acme-2")
    assert acme.Acme() is not first
    assert acme.Acme(api_key="explicit") is acme.Acme(api_key="explicit")


def test_a_variable_of_a_parameter_the_class_lacks_is_read_whatever_the_arguments(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # env= names the parameters of a newer release; this one reads ACME_REGION always.
    clientdedupe.register("acme:OldAcme", env={"api_key": "ACME_API_KEY", "region": "ACME_REGION"})
    clientdedupe.install()
    first = acme.OldAcme(region="us", timeout=5)
    assert acme.OldAcme(region="us", timeout=5) is first  # **options: any keyword is keyed
    assert acme.OldAcme(region="us", timeout=6) is not first
    monkeypatch.setenv("ACME_REGION", "ap")
    second = acme.OldAcme(region="us", timeout=5)
    assert second is not first
    assert (first.region, second.region) == ("eu", "ap")
    assert clientdedupe.stats()["acme.OldAcme"]["bypassed"] == 0


def test_registered_clients_follow_the_lifetime_contract(acme: Any) -> None:
    clientdedupe.register("acme:Acme")
    clientdedupe.register("acme:AsyncAcme")
    clientdedupe.install()
    shared = acme.Acme()
    other_holder = acme.Acme()
    shared.close()
    assert not other_holder.closed  # kept open for its other holder
    other_holder.completions.create = lambda text: "patched"
    assert acme.Acme() is not shared  # retired by the holder's assignment
    assert acme.Acme().completions.create("x") == "eu: x"
    other_holder.close()
    assert other_holder.closed  # its last holder let go of a client no longer shared
    import asyncio

    async def main() -> Any:
        async_client = acme.AsyncAcme()
        assert acme.AsyncAcme() is async_client
        await async_client.close()
        assert not async_client.closed  # one holder is left
        await async_client.close()
        assert not async_client.closed  # idle: kept for the next construction in this loop
        return async_client

    async_client = asyncio.run(main())
    assert async_client.closed  # idle as its loop ended: closed inside it
    with clientdedupe.bypass():
        own = acme.Acme()
    own.close()
    assert own.closed


def test_an_sdk_whose_pool_cannot_be_made_per_loop_shares_within_one_loop(
    acme: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clientdedupe.register("acme:AsyncAcme")
    with caplog.at_level("WARNING", logger="clientdedupe"):
        clientdedupe.install()
    assert [r.getMessage() for r in caplog.records] == [
        "acme.AsyncAcme: async clients are shared within one event loop only: "
        "this version's connection pool cannot be made one per event loop"
    ]
    outside = acme.AsyncAcme()
    assert acme.AsyncAcme() is not outside
    import asyncio

    async def main() -> Any:
        client = acme.AsyncAcme()
        assert acme.AsyncAcme() is client
        return client

    assert asyncio.run(main()) is not asyncio.run(main())


def test_an_unhashable_client_is_still_guarded_from_close(acme: Any) -> None:
    clientdedupe.register("acme._client:Unhashable")
    clientdedupe.install()
    mine, theirs = acme._client.Unhashable(), acme._client.Unhashable()
    assert mine is theirs
    mine.close()
    assert not theirs.closed


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("acme.unsafe:Positional", "positional arguments"),
        ("acme.unsafe:OwnNew", "defines its own __new__"),
        ("acme.unsafe:NoClose", "no close()"),
        ("acme.unsafe:not_a_class", "not a class"),
        ("acme.unsafe:Missing", "not a class"),
        ("no_such_package_anywhere:Client", "No module named"),
        ("acme.Acme", "expected 'package.module:ClassName'"),
    ],
)
def test_a_class_that_cannot_be_patched_safely_is_refused(acme: Any, spec: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        clientdedupe.register(spec)
    assert all(t.qualname != spec.replace(":", ".") for t in _targets.registered)


def test_registering_a_built_in_sdk_by_string_adds_it_to_a_narrowed_installation(
    acme: Any, server: StubServer
) -> None:
    import together

    clientdedupe.install(targets=["openai"])
    url = server.url
    assert together.Together(api_key="k", base_url=url) is not together.Together(
        api_key="k", base_url=url
    )
    clientdedupe.register("together:Together")
    shared = together.Together(api_key="k", base_url=url)
    assert together.Together(api_key="k", base_url=url) is shared
    clientdedupe.uninstall()
    assert together.Together(api_key="k", base_url=url) is not shared


# ------------------------------------------------------------------- from the environment

ENV_PROGRAM = """
import clientdedupe
import {module} as sdk
kwargs = {kwargs}
a, b = sdk.{name}(**kwargs), sdk.{name}(**kwargs)
clientdedupe.uninstall()
c, d = sdk.{name}(**kwargs), sdk.{name}(**kwargs)
print(a is b, c is d)
"""


@pytest.mark.parametrize(
    ("spec", "kwargs"),
    [
        ("acme:Acme", {"api_key": "k"}),
        ("together:Together", {"api_key": "k", "base_url": "http://127.0.0.1:9"}),
    ],
)
def test_extra_targets_from_the_environment(
    tmp_path: Path, spec: str, kwargs: dict[str, str]
) -> None:
    write_acme(tmp_path)
    module, name = spec.split(":")
    result = run_python(
        ENV_PROGRAM.format(module=module, name=name, kwargs=kwargs),
        PYTHONPATH=f"{SITECUSTOMIZE_EXAMPLE}:{tmp_path}",
        CLIENTDEDUPE="1",
        CLIENTDEDUPE_TARGETS="groq",  # narrowed: only the extra target adds this class
        CLIENTDEDUPE_EXTRA_TARGETS=f" {spec} ,",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_an_unsafe_or_malformed_extra_target_is_a_warning_never_a_crash(tmp_path: Path) -> None:
    write_acme(tmp_path)
    result = run_python(
        """
        import acme.unsafe
        print(acme.unsafe.Positional("k").api_key)
        """,
        PYTHONPATH=f"{SITECUSTOMIZE_EXAMPLE}:{tmp_path}",
        CLIENTDEDUPE="1",
        CLIENTDEDUPE_EXTRA_TARGETS="acme.unsafe:Positional,not a target",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "k"
    assert (
        "not deduplicating acme.unsafe.Positional: its __init__ takes positional" in result.stderr
    )
    assert "CLIENTDEDUPE_EXTRA_TARGETS entry 'not a target'" in result.stderr


def test_doctor_lists_registered_targets_with_their_source(tmp_path: Path) -> None:
    write_acme(tmp_path)
    result = run_python(
        "from clientdedupe._tools.cli import main; main(['doctor'])",
        PYTHONPATH=str(tmp_path),
        CLIENTDEDUPE_EXTRA_TARGETS="acme:Acme,acme.unsafe:OwnNew",
    )
    assert result.returncode == 0, result.stderr
    assert "acme.Acme                          environment: would be patched" in result.stdout
    assert "acme.unsafe.OwnNew" in result.stdout and "defines its own __new__" in result.stdout


def test_an_eviction_whose_close_fails_never_fails_the_construction(
    acme: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def close(self: object) -> None:
        raise OSError("the SDK's close failed")

    monkeypatch.setattr(acme.Acme, "close", close)
    clientdedupe.register("acme:Acme")
    clientdedupe.install(max_clients=1)
    acme.Acme(region="us").close()  # idle: its only holder is done with it
    caplog.set_level("DEBUG", logger="clientdedupe")
    assert acme.Acme(region="eu").region == "eu"  # evicts the idle one, whose close fails
    assert "closing an idle acme.Acme failed" in caplog.messages


def test_an_idle_async_client_evicted_in_its_event_loop_has_its_pool_closed(
    acme: Any,
) -> None:
    clientdedupe.register("acme:AsyncPooled")
    clientdedupe.install(max_clients=1)

    async def main() -> Any:
        idle = acme.AsyncPooled(region="us")
        await idle.close()  # its only holder is done: kept for the next one in this loop
        assert not idle._client.closed
        acme.AsyncPooled(region="eu")  # evicts it
        # Its pool is closed by a task of this loop, queued before this one resumes.
        await asyncio.sleep(0)
        return idle._client

    assert asyncio.run(main()).closed


def test_defaults_spelled_out_share_the_client_of_defaults_left_out(acme: Any) -> None:
    clientdedupe.register("acme:Tuned")
    clientdedupe.install()
    plain = acme.Tuned()
    # Equal to the defaults, not the same objects: a new str, float and marker.
    region, timeout = "".join(["e", "u"]), float("60")
    assert acme.Tuned(region=region, timeout=timeout, retries=acme.Omit()) is plain
    assert acme.Tuned(region="us") is not plain
    assert acme.Tuned(timeout=61.0) is not plain
