"""SPEC §7: no argument value in stats, logs, reprs or error messages."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import clientdedupe
from clientdedupe._tools.stub_server import StubServer

from .cases import SYNC_CASES

SECRET = "sk-RECOGNISABLE-0123456789abcdef"
SECRET_HEADER = "hdr-RECOGNISABLE-secret"


@pytest.mark.usefixtures("installed")
def test_no_argument_value_in_stats_or_debug_logs(
    server: StubServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="clientdedupe")
    monkeypatch.setenv("GROQ_API_KEY", SECRET)
    for case in SYNC_CASES:
        kwargs = case.kwargs(server, api_key=SECRET, default_headers={"X-Secret": SECRET_HEADER})
        client: Any = case.cls(**kwargs)
        case.cls(**kwargs)
        client.close()
        client.api_key = SECRET + "-changed"  # retirement is logged
        with pytest.raises(TypeError):
            case.cls(**kwargs, no_such_argument=SECRET)
    import groq

    groq.Groq(base_url=server.groq_base_url)  # the key comes from the environment
    with pytest.raises(TypeError):
        groq.Groq(SECRET)
    text = repr(clientdedupe.stats()) + "\n".join(
        record.getMessage() + repr(record.args) for record in caplog.records
    )
    assert caplog.records, "nothing was logged at DEBUG: the check would be vacuous"
    assert "retired" in text
    assert SECRET not in text
    assert SECRET_HEADER not in text
    assert server.url not in text


@pytest.mark.usefixtures("installed")
def test_fingerprints_identify_clients_without_revealing_keys(server: StubServer) -> None:
    import openai

    openai.OpenAI(api_key=SECRET, base_url=server.openai_base_url)
    openai.OpenAI(api_key=SECRET + "2", base_url=server.openai_base_url)
    fingerprints = clientdedupe.stats()["openai.OpenAI"]["clients"]
    assert len(fingerprints) == 2 and len(set(fingerprints)) == 2
    assert all(len(f) == 8 and int(f, 16) >= 0 for f in fingerprints)


def test_clientdedupes_own_errors_contain_no_argument_value() -> None:
    with pytest.raises(ValueError) as bad_target:
        clientdedupe.install(targets=["openai", "nope"])
    with pytest.raises(ValueError) as bad_bound:
        clientdedupe.install(max_clients=-31337)
    with pytest.raises(ValueError) as bad_mode:
        clientdedupe.install(async_mode=SECRET)
    assert "-31337" not in str(bad_bound.value)
    assert SECRET not in str(bad_mode.value)
    assert "openai" in str(bad_target.value)


def _our_frames_locals(error: BaseException) -> list[str]:
    """The locals of every clientdedupe frame the traceback holds, as an error tracker
    capturing locals would show them."""
    import os

    import clientdedupe as package

    ours = os.path.dirname(package.__file__)
    shown = []
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith(ours):
            shown.append(f"{frame.f_code.co_name}: {frame.f_locals!r}")
        tb = tb.tb_next
    return shown


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("path", ["shared", "bypassed", "subclass"])
def test_a_failing_construction_leaves_no_value_in_our_frames_locals(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", "ENV-CANARY")
    monkeypatch.setenv("OPENAI_ORG_ID", "ORG-CANARY")

    class Sub(openai.OpenAI):
        pass

    def construct() -> None:
        # No API key anywhere: the SDK's own __init__ raises, through our frames.
        arguments = {"base_url": "http://127.0.0.1:9/v1", "default_headers": {"X": "ARG-CANARY"}}
        if path == "bypassed":
            with clientdedupe.bypass():
                openai.OpenAI(**arguments)  # type: ignore[arg-type]
        elif path == "subclass":
            Sub(**arguments)  # type: ignore[arg-type]
        else:
            openai.OpenAI(**arguments)  # type: ignore[arg-type]

    with pytest.raises(openai.OpenAIError) as caught:
        construct()
    shown = _our_frames_locals(caught.value)
    assert shown, "the traceback goes through clientdedupe's frames"
    assert not [line for line in shown if "CANARY" in line]
