"""``clientdedupe doctor``: what clientdedupe would do here."""

from __future__ import annotations

import sys
import sysconfig

from clientdedupe._targets import BUILTIN_TARGETS

from .processes import REPO, SITECUSTOMIZE_EXAMPLE, run


def test_doctor_with_every_sdk_installed() -> None:
    result = run([sys.executable, "-m", "clientdedupe", "doctor"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for distribution in {t.sdk.distribution for t in BUILTIN_TARGETS}:
        assert f"\n  {distribution} " in out
    for qualname in (t.qualname for t in BUILTIN_TARGETS):
        line = next(line for line in out.splitlines() if line.strip().startswith(qualname + " "))
        assert line.endswith("would be patched")
    assert "WARNING" not in out
    assert "CLIENTDEDUPE: (unset) (unset: only an explicit clientdedupe.install() activates)" in out
    assert "launcher: no" in out


def test_doctor_sees_the_sitecustomize_and_the_launcher() -> None:
    result = run(
        [
            sys.executable,
            "-m",
            "clientdedupe",
            "run",
            "--",
            sys.executable,
            "-m",
            "clientdedupe",
            "doctor",
        ],
        PYTHONPATH=SITECUSTOMIZE_EXAMPLE,
    )
    assert result.returncode == 0, result.stderr
    assert "CLIENTDEDUPE: 1 (on: activated at start-up" in result.stdout
    assert (
        f"sitecustomize: {SITECUSTOMIZE_EXAMPLE}/sitecustomize.py (activates clientdedupe"
        in result.stdout
    )
    assert "launcher: yes" in result.stdout


def test_doctor_with_no_sdk_installed() -> None:
    # No site-packages at all (-S): only the standard library and clientdedupe itself.
    code = f"import sys; sys.path.insert(0, {REPO!r}); from clientdedupe._cli import main; main(['doctor'])"
    result = run([sys.executable, "-S", "-c", code])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "wrapt not installed" in out
    for distribution in {t.sdk.distribution for t in BUILTIN_TARGETS}:
        assert f"  {distribution}: not installed (pip install {distribution})" in out
    assert "would be" not in out
    assert sysconfig.get_paths()["purelib"] not in out
