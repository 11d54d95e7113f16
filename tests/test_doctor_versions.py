"""``clientdedupe doctor`` warns about an SDK version outside the supported range that
clientdedupe declares once (``Sdk.supported`` in the targets table), and only then."""

from __future__ import annotations

import sys
from pathlib import Path

from clientdedupe._targets import GROQ, OPENAI, Sdk

from .processes import run

# The ranges are half-open ``(first, end)`` major versions.
OPENAI_FIRST, _ = OPENAI.supported
_, GROQ_END = GROQ.supported


def fake_distribution(site: Path, sdk: Sdk, version: str) -> None:
    """An installed-looking ``sdk`` at ``version``: its dist-info and an empty package."""
    name = sdk.distribution.replace("-", "_")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {sdk.distribution}\nVersion: {version}\n",
        encoding="utf-8",
    )
    package = site.joinpath(*sdk.package.split("."))
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")


def doctor_lines(site: Path, *sdks: Sdk) -> dict[str, str]:
    """doctor's version line about each of ``sdks``, run with ``site`` first on the path."""
    result = run([sys.executable, "-m", "clientdedupe", "doctor"], PYTHONPATH=str(site))
    assert result.returncode == 0, result.stderr
    lines = {}
    for sdk in sdks:
        found = [
            line for line in result.stdout.splitlines() if line.startswith(f"  {sdk.distribution} ")
        ]
        assert len(found) == 1, result.stdout
        lines[sdk.distribution] = found[0]
    return lines


def test_doctor_warns_about_versions_just_outside_the_declared_ranges(tmp_path: Path) -> None:
    below, above = f"{OPENAI_FIRST - 1}.28.1", f"{GROQ_END}.0.0"
    fake_distribution(tmp_path, OPENAI, below)
    fake_distribution(tmp_path, GROQ, above)

    lines = doctor_lines(tmp_path, OPENAI, GROQ)

    assert lines["openai"].startswith(f"  openai {below} ")
    assert "WARNING: outside the tested" in lines["openai"]
    assert lines["groq"].startswith(f"  groq {above} ")
    assert "WARNING: outside the tested" in lines["groq"]


def test_doctor_does_not_warn_about_the_ends_of_the_declared_ranges(tmp_path: Path) -> None:
    first, last = f"{OPENAI_FIRST}.0.0", f"{GROQ_END - 1}.99.0"
    fake_distribution(tmp_path, OPENAI, first)
    fake_distribution(tmp_path, GROQ, last)

    lines = doctor_lines(tmp_path, OPENAI, GROQ)

    assert lines["openai"].startswith(f"  openai {first} ")
    assert "WARNING" not in lines["openai"]
    assert lines["groq"].startswith(f"  groq {last} ")
    assert "WARNING" not in lines["groq"]
