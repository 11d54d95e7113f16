"""The benchmark command, at tiny N: it runs, prints the table and writes every row.

The benchmark's targets are not asserted here (they are measurements, reported
honestly in the table), only that every row is there and measured, and the counts
that do not depend on timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.run import QUICK

from .processes import REPO, clean_environment

CLASSES = (
    "openai.OpenAI",
    "openai.AsyncOpenAI",
    "openai.AzureOpenAI",
    "openai.AsyncAzureOpenAI",
    "groq.Groq",
    "groq.AsyncGroq",
    "cerebras.cloud.sdk.Cerebras",
    "cerebras.cloud.sdk.AsyncCerebras",
)
E2E_METRICS = (
    "clients",
    "connections",
    "wall",
    "wall_per_extra_agent",
    "fds",
    "rss",
    "rss_after_first",
)


def expected_rows() -> set[str]:
    rows = {"startup.install", "startup.heavy_imports", "cerebras.warmups", "cerebras.wall"}
    for name in CLASSES:
        rows |= {f"constructor.{name}.{kind}" for kind in ("hit_vs_plain", "hit_vs_floor")}
        rows.add(f"constructor.{name}.dict_hit_vs_floor")
    for mode in ("sync", "async"):
        rows |= {f"e2e.{mode}.http.{metric}" for metric in E2E_METRICS}
        rows |= {f"e2e.{mode}.tls.{metric}" for metric in (*E2E_METRICS, "handshakes")}
    for n in QUICK.scaling:
        rows |= {f"scaling.N{n}.{key}" for key in ("time_per_agent", "connections", "rss")}
    rows |= {
        "scaling.with_time_per_agent",
        "scaling.with_rss",
        "scaling.without_time_per_agent",
        "scaling.without_rss_per_agent",
    }
    return rows


def test_quick_benchmark_prints_and_writes_every_row(tmp_path: Path) -> None:
    output = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--json", str(output)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_environment(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(output.read_text())
    rows = {row["id"]: row for row in report["rows"]}
    assert set(rows) == expected_rows()

    for row in rows.values():
        # Every SDK and trustme are installed for the tests: nothing may be left out.
        assert row["without"] is not None and row["with"] is not None, row
        assert row["met"] in (True, False, None)
        assert row["label"] in result.stdout
    for key in ("openai", "groq", "cerebras-cloud-sdk", "wrapt"):
        assert report["machine"]["versions"][key]
    assert "target" in result.stdout and "met" in result.stdout

    # The figures that do not depend on timing: N constructions or connections become 1.
    n = QUICK.agents
    for mode in ("sync", "async"):
        for scheme in ("http", "tls"):
            for metric in ("clients", "connections"):
                row = rows[f"e2e.{mode}.{scheme}.{metric}"]
                assert (row["without"], row["with"], row["met"]) == (n, 1, True)
        assert rows[f"e2e.{mode}.tls.handshakes"]["with"] == 1
    warmups = rows["cerebras.warmups"]
    assert (warmups["without"], warmups["with"]) == (QUICK.cerebras_constructions, 1)
    assert rows["startup.heavy_imports"]["with"] == 0
    # Every cache hit was a hit: no "were not cache hits" note on any constructor row.
    assert not [row for row in rows.values() if "not cache hits" in row["note"]]
