"""Real interpreters in subprocesses, for start-up and activation tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITECUSTOMIZE_EXAMPLE = os.path.join(REPO, "sitecustomize_example")


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any CLIENTDEDUPE or SDK variable, plus overrides."""
    prefixes = (
        "CLIENTDEDUPE",
        "OPENAI_",
        "GROQ_",
        "CEREBRAS_",
        "AZURE_OPENAI_",
        "ANTHROPIC_",
        "TOGETHER_",
        "FIREWORKS_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("PYTHONPATH", None)
    env.update(overrides)
    return env


def run(
    argv: Sequence[str], *, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with a clean environment plus ``env``; never hangs."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        input=input,
        env=clean_environment(**env),
        timeout=120,
    )


def run_python(
    code: str, *, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` (dedented) in a fresh interpreter."""
    return run([sys.executable, "-c", textwrap.dedent(code)], input=input, **env)


def in_forked_child(verdict: Callable[[], object]) -> str:
    """Run ``verdict()`` in a forked child, which then leaves without running pytest's
    teardown; what it returns, as a string, or '' if it never does."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            signal.alarm(30)  # a child that hangs dies, and says nothing
            os.close(read_end)
            os.write(write_end, str(verdict()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        said = pipe.read()
    os.waitpid(pid, 0)
    return said
