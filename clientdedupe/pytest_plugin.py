"""pytest plugin (registered through the ``pytest11`` entry point).

It does nothing unless asked for:

- ``--clientdedupe`` installs clientdedupe for the whole test session;
- the ``clientdedupe_cache`` fixture gives a test its own empty cache and puts the
  previous state back after it;
- ``@pytest.mark.clientdedupe_bypass`` runs a test with deduplication bypassed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

import clientdedupe
from clientdedupe import _api


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clientdedupe")
    group.addoption(
        "--clientdedupe",
        action="store_true",
        default=False,
        help="deduplicate LLM SDK clients for the whole test session (clientdedupe.install())",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "clientdedupe_bypass: build fresh SDK clients in this test (clientdedupe.bypass())",
    )
    if config.getoption("--clientdedupe") and not clientdedupe.is_installed():
        clientdedupe.install()
        config.stash[_INSTALLED_BY_US] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_INSTALLED_BY_US, False):
        clientdedupe.uninstall()


_INSTALLED_BY_US = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("clientdedupe_bypass") is None:
        return (yield)
    with clientdedupe.bypass("clientdedupe_bypass marker"):
        return (yield)


@pytest.fixture
def clientdedupe_cache() -> Iterator[None]:
    """An empty clientdedupe cache for this test; the previous one is back after it."""
    saved = _api.SavedState()
    clientdedupe.cache_clear()
    try:
        yield
    finally:
        saved.restore()
