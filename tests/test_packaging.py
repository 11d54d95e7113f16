"""Ready for a package index (issue 11, 10): what ``python -m build`` makes of the project.

The project is copied to a temporary folder and built there (without isolation, with
the setuptools and build of the test environment), so the checkout gets no build files.
"""

from __future__ import annotations

import email
import email.message
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import clientdedupe

from .processes import REPO, clean_environment

HOME = "https://github.com/clientdedupe/clientdedupe"
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".nox", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache"
)


class Built:
    def __init__(self, folder: Path, log: str) -> None:
        self.folder = folder
        self.log = log
        version = clientdedupe.__version__
        self.wheel = folder / "dist" / f"clientdedupe-{version}-py3-none-any.whl"
        self.sdist = folder / "dist" / f"clientdedupe-{version}.tar.gz"

    def metadata(self) -> email.message.Message:
        with zipfile.ZipFile(self.wheel) as wheel:
            text = wheel.read(f"clientdedupe-{clientdedupe.__version__}.dist-info/METADATA")
        return email.message_from_bytes(text)

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.namelist()

    def sdist_names(self) -> set[str]:
        prefix = f"clientdedupe-{clientdedupe.__version__}/"
        with tarfile.open(self.sdist) as sdist:
            return {name.removeprefix(prefix) for name in sdist.getnames()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("build")
    source = folder / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES)
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(folder / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Built(folder, done.stdout + done.stderr)


def test_setuptools_does_not_warn(built: Built) -> None:
    assert "absent from the `packages` configuration" not in built.log  # _launch_path
    assert "SetuptoolsDeprecationWarning" not in built.log
    assert "_DeprecatedConfig" not in built.log


def test_the_wheel_has_the_license_classifiers_urls_and_one_version(built: Built) -> None:
    meta = built.metadata()
    assert meta["Version"] == clientdedupe.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = set(meta.get_all("Classifier") or ())
    for minor in range(9, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert {"Typing :: Typed", "Framework :: Pytest"} <= classifiers
    assert any(c.startswith("Topic :: ") for c in classifiers)
    assert not any(c.startswith("License :: ") for c in classifiers)  # PEP 639: the expression
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or ())
    assert urls["Homepage"] == HOME
    assert {"Source", "Issues", "Changelog", "Documentation"} <= set(urls)
    assert meta["Requires-Python"] == ">=3.9"
    assert 'pytest>=7.0; extra == "pytest"' in (meta.get_all("Requires-Dist") or ())


def test_the_version_is_written_once() -> None:
    pyproject = Path(REPO, "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r'(?m)^version\s*=\s*"', pyproject)
    assert clientdedupe.__version__ in Path(REPO, "CHANGELOG.md").read_text(encoding="utf-8")


def test_the_wheel_ships_the_launcher_the_example_and_the_types(built: Built) -> None:
    names = built.wheel_names()
    version = clientdedupe.__version__
    for name in (
        "clientdedupe/_tools/launch_path/sitecustomize.py",
        "clientdedupe/_tools/examples/many_agents.py",
        "clientdedupe/py.typed",
        f"clientdedupe-{version}.dist-info/licenses/LICENSE",
    ):
        assert name in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]


def test_every_link_of_the_long_description_is_absolute(built: Built) -> None:
    # A package index shows the README without the repository: relative links break.
    description = built.metadata().get_payload()
    assert isinstance(description, str) and description.startswith("# clientdedupe")
    links = re.findall(r"\]\(([^)\s]+)", description) + re.findall(r'href="([^"]+)"', description)
    assert links
    assert [link for link in links if not link.startswith("https://")] == []


def test_the_sdist_carries_the_whole_test_suite(built: Built) -> None:
    names = built.sdist_names()
    ours = {
        path.relative_to(REPO).as_posix()
        for path in Path(REPO, "tests").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert ours - names == set()
    assert {
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        ".ci/run",
        "sitecustomize_example/sitecustomize.py",
    } <= names


def test_the_tests_of_the_sdist_run(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.sdist) as sdist:
        if hasattr(tarfile, "data_filter"):  # 3.11.4 and later: say what is trusted
            sdist.extractall(tmp_path, filter="data")
        else:
            sdist.extractall(tmp_path)
    root = tmp_path / f"clientdedupe-{clientdedupe.__version__}"
    env = clean_environment(PYTHONPATH=str(root))
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "error" not in collected.stdout.lower().split("\n")[-2]
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_secrets.py"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # The tests ran the sdist's clientdedupe, not the checkout's.
    probe = subprocess.run(
        [sys.executable, "-c", "import clientdedupe; print(clientdedupe.__file__)"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    assert probe.stdout.strip().startswith(str(root) + os.sep)


# ------------------------------------------------------------------------ the README


def test_the_readme_fits_on_a_page() -> None:
    lines = Path(REPO, "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200


def quick_start() -> list[str]:
    """The commands of the README's quick start."""
    readme = Path(REPO, "README.md").read_text(encoding="utf-8")
    section = readme.split("### Quick start", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_quick_start_is_two_commands_user_path_then_tests() -> None:
    setup, tests = quick_start()
    assert setup == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[openai]' "
        "&& .venv/bin/clientdedupe demo"
    )
    assert tests == ".venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest -n 2"


def test_ci_runs_the_readmes_test_command() -> None:
    test_command = quick_start()[1].split(" && ")[-1]
    ci = Path(REPO, ".ci", "run").read_text(encoding="utf-8")
    assert f"{test_command} || status=$?" in ci
    assert '"$status" -eq 5' in ci  # pytest collecting nothing fails CI
