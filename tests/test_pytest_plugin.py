"""SPEC §7: the pytest plugin, run in real pytest subprocesses (it is loaded through its
``pytest11`` entry point, as for any user)."""

from __future__ import annotations

import pytest

URL = "http://127.0.0.1:9/v1"

SUITE = f"""
import openai
import pytest
import clientdedupe

URL = {URL!r}
seen = {{}}

def build():
    return openai.OpenAI(api_key="k", base_url=URL)

def test_0_before():
    seen["before"] = build()
    assert build() is seen["before"]

def test_1_own_cache(clientdedupe_cache):
    seen["own"] = build()
    assert seen["own"] is not seen["before"]
    assert build() is seen["own"]
    assert clientdedupe.stats()["openai.OpenAI"]["live"] == 1

def test_2_own_cache_again(clientdedupe_cache):
    assert build() is not seen["own"]

def test_3_nothing_from_a_fixture_test_is_left():
    assert build() is not seen["own"]
    assert build() is not seen["before"]  # cleared after the fixture's test

@pytest.mark.clientdedupe_bypass
def test_4_bypass_marker():
    assert build() is not build()

def test_5_after_the_marker():
    assert build() is build()
"""


def test_the_option_activates_and_the_fixture_and_marker_isolate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--clientdedupe", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_installed_but_not_asked_for_the_plugin_changes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain=f"""
        import openai
        import clientdedupe

        def test_classes_are_unpatched():
            assert not clientdedupe.is_installed()
            assert "__new__" not in vars(openai.OpenAI)
            a = openai.OpenAI(api_key="k", base_url={URL!r})
            assert a is not openai.OpenAI(api_key="k", base_url={URL!r})
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_fixture_works_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixture_only=f"""
        import openai
        import clientdedupe

        def test_the_fixture_turns_deduplication_on(clientdedupe_cache):
            assert clientdedupe.is_installed()
            assert openai.OpenAI(api_key="k", base_url={URL!r}) is openai.OpenAI(
                api_key="k", base_url={URL!r}
            )

        def test_and_off_again_after_its_test():
            assert not clientdedupe.is_installed()
            assert openai.OpenAI(api_key="k", base_url={URL!r}) is not openai.OpenAI(
                api_key="k", base_url={URL!r}
            )

        def test_an_install_inside_a_fixture_test_is_kept_by_the_test(clientdedupe_cache):
            clientdedupe.install()
            assert clientdedupe.is_installed()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
