"""Many agents, one OpenAI client each: the way agent frameworks are often written.

Each ``Agent`` builds its own ``openai.OpenAI()`` (configured from ``OPENAI_BASE_URL``
and ``OPENAI_API_KEY``, as real programs are) and asks one question. Nothing here knows
about clientdedupe: ``clientdedupe demo`` runs this file as it is, once plainly and once
under ``clientdedupe run``, and compares.

    python many_agents.py --agents 100 [--async]

The agents run one after the other. At the end it prints one JSON line on stdout with
what it measured itself: ``agents``, ``mode``, ``wall_seconds`` (building the agents and
their requests) and ``first_agent_seconds`` (the first one alone), ``clients_built``
(distinct client objects among the agents), ``replies``, ``peak_rss_bytes``,
``rss_growth_bytes`` (peak RSS minus RSS before the first agent),
``rss_growth_after_first_bytes`` (minus RSS after the first agent) and
``peak_open_fds``; -1 for what cannot be measured here.
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


def _proc_status(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (Linux), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, or -1 where unknown."""
    # On Linux, getrusage's ru_maxrss starts from the peak of the process that ran
    # exec (the parent, after fork or vfork), so a big parent inflates it: VmHWM is
    # this program's own peak.
    peak = _proc_status("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return -1
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Kilobytes on Linux, bytes on macOS.
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def rss_bytes() -> int:
    """Current resident set size where the system tells it (Linux), else the peak."""
    current = _proc_status("VmRSS")
    return peak_rss_bytes() if current is None else current


def open_fds() -> int:
    """Open file descriptors of this process, or -1 where they cannot be counted."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder)) - 1  # minus the one listdir itself opens
        except OSError:
            continue
    return -1


class Meter:
    """Wall time, RSS growth and peak open file descriptors around the agents.

    The first agent is also measured on its own: it pays what any program pays for its
    first request (the SDK's lazy imports), with or without clientdedupe.
    """

    def __init__(self) -> None:
        self.rss_before = rss_bytes()
        self.peak_fds = open_fds()
        self.started = time.perf_counter()
        self.first: tuple[float, int] | None = None

    def sample(self) -> None:
        """Call after each agent."""
        if self.first is None:
            self.first = (time.perf_counter(), rss_bytes())
        self.peak_fds = max(self.peak_fds, open_fds())

    def result(self, clients: list[object], replies: list[str]) -> dict[str, object]:
        """The figures, once every agent is done."""
        ended = time.perf_counter()
        peak = peak_rss_bytes()
        first_at, first_rss = self.first or (ended, peak)
        return {
            "agents": len(clients),
            "wall_seconds": round(ended - self.started, 6),
            "first_agent_seconds": round(first_at - self.started, 6),
            "clients_built": len({id(client) for client in clients}),
            "replies": sum(1 for reply in replies if reply),
            "peak_rss_bytes": peak,
            "rss_growth_bytes": peak - self.rss_before if peak >= 0 else -1,
            "rss_growth_after_first_bytes": peak - first_rss if peak >= 0 else -1,
            "peak_open_fds": self.peak_fds,
        }


def run_sync(count: int) -> dict[str, object]:
    """``count`` agents, one after the other; returns the figures."""
    meter = Meter()
    agents: list[Agent] = []
    replies: list[str] = []
    for i in range(count):
        agent = Agent(f"agent-{i}")
        agents.append(agent)
        replies.append(agent.run("say hello"))
        meter.sample()
    return {"mode": "sync", **meter.result([a.client for a in agents], replies)}


async def run_async(count: int) -> dict[str, object]:
    """``count`` async agents, one after the other in this event loop."""
    meter = Meter()
    agents: list[AsyncAgent] = []
    replies: list[str] = []
    for i in range(count):
        agent = AsyncAgent(f"agent-{i}")
        agents.append(agent)
        replies.append(await agent.run("say hello"))
        meter.sample()
    return {"mode": "async", **meter.result([a.client for a in agents], replies)}


def main(argv: list[str] | None = None) -> int:
    """Run the agents and print the JSON line; returns the exit code."""
    parser = argparse.ArgumentParser(description="Many agents, one OpenAI client each.")
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
