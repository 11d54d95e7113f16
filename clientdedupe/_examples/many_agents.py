"""Many agents, one OpenAI client each: the way agent frameworks are often written.

Each ``Agent`` builds its own ``openai.OpenAI()`` (configured from ``OPENAI_BASE_URL``
and ``OPENAI_API_KEY``, as real programs are) and asks one question. Nothing here knows
about clientdedupe: ``clientdedupe demo`` runs this file as it is, once plainly and once
under ``clientdedupe run``, and compares.

    python many_agents.py --agents 100 [--async]

At the end it prints one JSON line on stdout with what it measured itself: ``agents``,
``mode``, ``wall_seconds`` (building the agents and their requests), ``clients_built``
(distinct client objects among the agents), ``replies``, ``peak_rss_bytes``,
``rss_growth_bytes`` (peak RSS at the end minus before the first agent) and
``peak_open_fds`` (-1 where it cannot be counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import openai

MODEL = "gpt-4o-mini"


class Agent:
    """An agent with its own client, as frameworks build them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = openai.OpenAI()

    def run(self, task: str) -> str:
        reply = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"{self.name}: {task}"}]
        )
        return reply.choices[0].message.content or ""


class AsyncAgent:
    """The same agent on ``AsyncOpenAI``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = openai.AsyncOpenAI()

    async def run(self, task: str) -> str:
        reply = await self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"{self.name}: {task}"}]
        )
        return reply.choices[0].message.content or ""


# -- measuring (not part of the "framework") -----------------------------------------


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, or -1 where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return -1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Kilobytes on Linux, bytes on macOS.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def open_fds() -> int:
    """Open file descriptors of this process, or -1 where they cannot be counted."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder)) - 1  # minus the one listdir itself opens
        except OSError:
            continue
    return -1


class Meter:
    """Wall time, peak RSS and peak open file descriptors around the agents."""

    def __init__(self) -> None:
        self.rss_before = peak_rss_bytes()
        self.peak_fds = open_fds()
        self.started = time.perf_counter()

    def sample(self) -> None:
        self.peak_fds = max(self.peak_fds, open_fds())

    def result(
        self, agents: list[Agent] | list[AsyncAgent], replies: list[str]
    ) -> dict[str, object]:
        wall = time.perf_counter() - self.started
        peak = peak_rss_bytes()
        return {
            "agents": len(agents),
            "wall_seconds": round(wall, 6),
            "clients_built": len({id(agent.client) for agent in agents}),
            "replies": sum(1 for reply in replies if reply),
            "peak_rss_bytes": peak,
            "rss_growth_bytes": peak - self.rss_before if peak >= 0 else -1,
            "peak_open_fds": self.peak_fds,
        }


def run_sync(count: int) -> dict[str, object]:
    meter = Meter()
    agents: list[Agent] = []
    replies: list[str] = []
    for i in range(count):
        agent = Agent(f"agent-{i}")
        agents.append(agent)
        replies.append(agent.run("say hello"))
        meter.sample()
    return {"mode": "sync", **meter.result(agents, replies)}


async def run_async(count: int) -> dict[str, object]:
    meter = Meter()
    agents: list[AsyncAgent] = []
    replies: list[str] = []
    for i in range(count):
        agent = AsyncAgent(f"agent-{i}")
        agents.append(agent)
        replies.append(await agent.run("say hello"))
        meter.sample()
    return {"mode": "async", **meter.result(agents, replies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100, help="number of agents (default 100)")
    parser.add_argument(
        "--async", dest="use_async", action="store_true", help="use AsyncOpenAI in one event loop"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run_async(args.agents)) if args.use_async else run_sync(args.agents)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
