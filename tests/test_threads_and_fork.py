"""SPEC §5-§6: single flight across threads, nested construction, fork safety."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import SYNC_CASES, Case
from .processes import in_forked_child

pytestmark = pytest.mark.usefixtures("installed")


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_sixteen_threads_constructing_one_key_at_once_get_one_instance(
    case: Case, server: StubServer
) -> None:
    start = threading.Barrier(16)
    results: list[Any] = []

    def construct() -> None:
        start.wait()
        results.append(case.build(server))

    threads = [threading.Thread(target=construct) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    assert len({id(r) for r in results}) == 1
    assert clientdedupe.stats()[case.qualname]["built"] == 1


@pytest.mark.parametrize("case", SYNC_CASES, ids=repr)
def test_a_shared_sync_client_serves_many_threads(case: Case, server: StubServer) -> None:
    answers: dict[int, str] = {}

    def agent(i: int) -> None:
        answers[i] = case.ask(case.build(server), f"thread {i}")

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: f"echo: thread {i}" for i in range(8)}
    assert clientdedupe.stats()[case.qualname]["built"] == 1


def test_nested_construction_inside_a_constructor_does_not_deadlock(server: StubServer) -> None:
    # AsyncCerebras builds a sync Cerebras inside its own constructor.
    from cerebras.cloud.sdk import AsyncCerebras, Cerebras

    async def main() -> Any:
        return AsyncCerebras(api_key="k", base_url=server.cerebras_base_url)

    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(asyncio.run(main())), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "AsyncCerebras() deadlocked"
    assert type(done[0]) is AsyncCerebras
    assert clientdedupe.stats()["cerebras.cloud.sdk.Cerebras"]["built"] == 1
    assert Cerebras(api_key="k", base_url=server.cerebras_base_url).api_key == "k"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
def test_after_fork_the_child_never_gets_the_parents_client(server: StubServer) -> None:
    import openai

    url = server.openai_base_url
    parent_client = openai.OpenAI(api_key="k", base_url=url)

    def child() -> str:
        child_client = openai.OpenAI(api_key="k", base_url=url)
        again = openai.OpenAI(api_key="k", base_url=url)
        return f"{child_client is parent_client} {again is child_client}"

    verdict = in_forked_child(child)
    # The child built its own client (and shares it within the child).
    assert verdict == "False True"
    assert openai.OpenAI(api_key="k", base_url=url) is parent_client
    assert sys.modules["openai"] is openai


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads
def test_a_client_whose_build_a_fork_split_is_never_shared_in_the_child(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    from clientdedupe import _constructor

    url = server.openai_base_url
    detach = _constructor.detach
    forks: list[int] = []

    def forking_inside(value: object) -> object:
        # As a layer inside the SDK's constructor that forks (a worker pool started
        # lazily): parent and child both go on with the same build.
        if not forks:
            forks.append(os.fork())
        return detach(value)

    monkeypatch.setattr(_constructor, "detach", forking_inside)
    read_end, write_end = os.pipe()
    built = openai.OpenAI(api_key="k", base_url=url)
    if forks[0] == 0:  # the child: report, then leave without running pytest's teardown
        try:
            again = openai.OpenAI(api_key="k", base_url=url)
            verdict = f"{again is built} {Case.ask(again, 'child')}"
            os.write(write_end, verdict.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        verdict = pipe.read()
    os.waitpid(forks[0], 0)
    # The child's build began in the parent, whose client it may share state with: its
    # holder has it, and the next construction in the child builds a fresh one.
    assert verdict == "False echo: child"
    assert openai.OpenAI(api_key="k", base_url=url) is built  # the parent's is shared
