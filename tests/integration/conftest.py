"""A framework a test needs and that is not installed skips the test in a development
environment, and fails it in the nox session that installs that framework
(``INTEGRATION_FRAMEWORKS_REQUIRED=1``): a session must never go green by skipping."""

from __future__ import annotations

import importlib.util
import os

import pytest

# Read once at import: the tests' own fixtures scrub the environment around each test.
REQUIRED = os.environ.get("INTEGRATION_FRAMEWORKS_REQUIRED") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*modules): the test drives these modules (tests/integration)"
    )


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (only its parents)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        missing = [module for module in mark.args if not installed(module)]
        if not missing:
            continue
        message = f"{', '.join(missing)} not installed"
        if REQUIRED:
            pytest.fail(f"{message}, yet this nox session installs it: a broken install")
        pytest.skip(f"{message} (nox -s integration, or pip install its extra)")
