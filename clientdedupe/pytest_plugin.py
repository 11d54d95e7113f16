"""pytest plugin (registered through the ``pytest11`` entry point).

It does nothing unless asked for:

- ``--clientdedupe`` installs clientdedupe for the whole test session;
- the ``clientdedupe_cache`` fixture turns deduplication on for one test, with a cache
  of its own: empty when the test starts, cleared when it ends;
- ``@pytest.mark.clientdedupe_bypass`` runs a test with deduplication bypassed.

Supported: pytest 7.0 and later, with pluggy 1.0 and later (declared as the ``pytest``
extra; the oldest is tested by ``nox -s plugin_oldest``, the newest by the test suite).
Hence an old-style hook wrapper, no ``config.stash``, nothing imported from pytest that
a later release added. Loaded into every test session of every environment that has
clientdedupe, it must never be what breaks one.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

import clientdedupe

_installed_by_option = False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clientdedupe")
    group.addoption(
        "--clientdedupe",
        action="store_true",
        default=False,
        help="deduplicate LLM SDK clients for the whole test session (clientdedupe.install())",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _installed_by_option
    config.addinivalue_line(
        "markers",
        "clientdedupe_bypass: build fresh SDK clients in this test (clientdedupe.bypass())",
    )
    if config.getoption("--clientdedupe") and not clientdedupe.is_installed():
        clientdedupe.install()
        _installed_by_option = True


def pytest_unconfigure(config: pytest.Config) -> None:
    global _installed_by_option
    if _installed_by_option:
        _installed_by_option = False
        clientdedupe.uninstall()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("clientdedupe_bypass") is None:
        yield
        return
    with clientdedupe.bypass("clientdedupe_bypass marker"):
        yield


@pytest.fixture
def clientdedupe_cache() -> Iterator[None]:
    """Deduplication on for this test, sharing nothing with any other test: installed
    if it was not (and uninstalled after), the cache cleared before and after."""
    installed_here = not clientdedupe.is_installed()
    if installed_here:
        clientdedupe.install()
    clientdedupe.cache_clear()
    try:
        yield
    finally:
        clientdedupe.cache_clear()
        if installed_here:
            clientdedupe.uninstall()
