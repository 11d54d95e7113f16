"""SPEC §3.1-3.2: install() and uninstall(), whatever the import order."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI  # bound before install(), as at the top of a user's module

import clientdedupe
from clientdedupe import _targets
from clientdedupe._tools.stub_server import StubServer

from .cases import CASES, Case
from .processes import run_python

TARGET_CLASSES = [case.cls for case in CASES]
RESOURCE_BASES = [
    getattr(importlib.import_module(path.partition(":")[0]), path.partition(":")[2])
    for sdk in (_targets.OPENAI, _targets.GROQ, _targets.CEREBRAS)
    for path in sdk.resource_bases
]
PATCHED_NAMES = ("__init__", "close", "copy", "with_options", "__setattr__")


def class_attributes() -> dict[tuple[type, str], object]:
    """What every class clientdedupe may patch has in its own ``vars()``."""
    return {
        (cls, name): vars(cls).get(name, "<absent>")
        for cls in TARGET_CLASSES + RESOURCE_BASES
        for name in PATCHED_NAMES
    }


def test_names_bound_before_install_are_deduplicated(server: StubServer) -> None:
    clientdedupe.install()
    try:
        url = server.openai_base_url
        a = OpenAI(api_key="k", base_url=url)
        assert openai.OpenAI(api_key="k", base_url=url) is a
        assert openai.Client(api_key="k", base_url=url) is a
        assert sys.modules["openai._client"].OpenAI(api_key="k", base_url=url) is a
    finally:
        clientdedupe.uninstall()


def test_install_twice_is_harmless(server: StubServer) -> None:
    clientdedupe.install()
    try:
        init_after_one = vars(openai.OpenAI)["__init__"]
        clientdedupe.install()
        assert vars(openai.OpenAI)["__init__"] is init_after_one
        assert clientdedupe.is_installed()
        url = server.openai_base_url
        assert openai.OpenAI(api_key="k", base_url=url) is openai.OpenAI(api_key="k", base_url=url)
    finally:
        clientdedupe.uninstall()
    assert not clientdedupe.is_installed()


def test_uninstall_restores_every_replaced_attribute(server: StubServer) -> None:
    before = class_attributes()
    clientdedupe.install()
    during = class_attributes()
    assert all(during[(cls, "__init__")] is not before[(cls, "__init__")] for cls in TARGET_CLASSES)
    clientdedupe.uninstall()
    after = class_attributes()
    changed = [key for key in before if after[key] is not before[key]]
    assert changed == []


def test_after_uninstall_each_construction_builds_a_fresh_client(server: StubServer) -> None:
    clientdedupe.install()
    url = server.openai_base_url
    shared = openai.OpenAI(api_key="k", base_url=url)
    clientdedupe.uninstall()
    first, second = (
        openai.OpenAI(api_key="k", base_url=url),
        openai.OpenAI(api_key="k", base_url=url),
    )
    assert first is not second and shared not in (first, second)
    # A client handed out before uninstall() keeps working.
    assert shared.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert clientdedupe.stats() == {}


def test_install_uninstall_install_works(server: StubServer) -> None:
    url = server.openai_base_url
    clientdedupe.install()
    clientdedupe.uninstall()
    clientdedupe.install()
    try:
        assert openai.OpenAI(api_key="k", base_url=url) is openai.OpenAI(api_key="k", base_url=url)
    finally:
        clientdedupe.uninstall()
    assert openai.OpenAI(api_key="k", base_url=url) is not openai.OpenAI(api_key="k", base_url=url)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_the_constructor_keeps_its_real_signature(case: Case) -> None:
    cls = case.cls
    signature, argspec = inspect.signature(cls), inspect.getfullargspec(cls.__init__)
    clientdedupe.install()
    try:
        assert inspect.signature(cls) == signature
        assert inspect.getfullargspec(cls.__init__) == argspec
    finally:
        clientdedupe.uninstall()
    assert inspect.signature(cls) == signature


def test_targets_narrow_to_some_sdks_or_classes(server: StubServer) -> None:
    import groq

    clientdedupe.install(targets=["groq.AsyncGroq", "openai"])
    try:
        assert set(clientdedupe.stats()) == {
            "groq.AsyncGroq",
            "openai.OpenAI",
            "openai.AsyncOpenAI",
            "openai.AzureOpenAI",
            "openai.AsyncAzureOpenAI",
        }
        url = server.groq_base_url
        assert groq.Groq(api_key="k", base_url=url) is not groq.Groq(api_key="k", base_url=url)
    finally:
        clientdedupe.uninstall()


def test_an_unknown_target_raises_value_error_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="nope") as raised:
        clientdedupe.install(targets=["nope"])
    message = str(raised.value)
    for valid in ("openai", "groq.AsyncGroq", "cerebras.cloud.sdk.Cerebras", "openai.AzureOpenAI"):
        assert valid in message
    assert not clientdedupe.is_installed()


@pytest.mark.parametrize(
    "order",
    ["install, then import", "import, then install", "from-import, then install"],
)
def test_import_order_does_not_matter(order: str, server: StubServer) -> None:
    steps = {
        "install, then import": "clientdedupe.install()\nimport openai\nC = openai.OpenAI",
        "import, then install": "import openai\nclientdedupe.install()\nC = openai.OpenAI",
        "from-import, then install": "from openai import OpenAI as C\nclientdedupe.install()",
    }[order]
    result = run_python(
        "import clientdedupe\n"
        + steps
        + f"\nurl = {server.openai_base_url!r}\n"
        + "print(C(api_key='k', base_url=url) is C(api_key='k', base_url=url))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_install_imports_no_sdk_and_no_wrapt() -> None:
    result = run_python(
        """
        import sys
        import clientdedupe
        clientdedupe.install()
        heavy = ("openai", "groq", "cerebras", "httpx", "httpx2", "wrapt", "asyncio", "logging")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_sdk_shaped_differently_is_skipped_with_one_warning(tmp_path: Path) -> None:
    # A "groq" whose Groq is not a class: importing it must still work, unpatched.
    package = tmp_path / "groq"
    package.mkdir()
    (package / "__init__.py").write_text("Groq = 42\nclass AsyncGroq:\n    pass\n")
    result = run_python(
        """
        import clientdedupe
        clientdedupe.install(targets=["groq"])
        import groq
        print(groq.Groq, groq.AsyncGroq() is not groq.AsyncGroq())
        """,
        PYTHONPATH=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42", "True"]
    warnings = [line for line in result.stderr.splitlines() if "not deduplicating" in line]
    assert len(warnings) == 2, result.stderr
    assert "groq.Groq" in warnings[0]


def test_a_failure_inside_the_import_hook_never_breaks_the_import(tmp_path: Path) -> None:
    # A module whose attribute access raises: patching fails, the import succeeds.
    package = tmp_path / "groq"
    package.mkdir()
    (package / "__init__.py").write_text(
        "def __getattr__(name):\n    raise RuntimeError('boom')\nanswer = 42\n"
    )
    result = run_python(
        """
        import clientdedupe
        clientdedupe.install(targets=['groq'])
        import groq
        print(groq.answer)
        """,
        PYTHONPATH=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_the_import_watcher_leaves_the_real_loader_on_the_module() -> None:
    result = run_python(
        """
        import clientdedupe
        clientdedupe.install()
        import groq
        print(type(groq.__loader__).__name__, type(groq.__spec__.loader).__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SourceFileLoader", "SourceFileLoader"]


def test_a_watched_module_compiled_to_an_extension_imports_as_without_the_watcher() -> None:
    # An SDK compiled with mypyc or Cython: its loader creates the module itself.
    result = run_python(
        """
        import sys
        from clientdedupe._importhook import ImportWatcher
        hooked = []
        sys.meta_path.insert(0, ImportWatcher(["mmap"], hooked.append))
        import mmap
        buffer = mmap.mmap(-1, 8)
        buffer.write(b"compiled")
        print(type(mmap.__loader__).__name__, buffer[:].decode(), hooked == [mmap])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ExtensionFileLoader", "compiled", "True"]


def test_the_loader_of_a_watched_module_found_before_import_answers_as_the_real_one() -> None:
    # pkgutil.get_data, importlib.resources and tools that locate packages ask the loader.
    result = run_python(
        """
        import importlib.util, pkgutil
        import clientdedupe
        clientdedupe.install()
        loader = importlib.util.find_spec("groq").loader
        print(loader.is_package("groq"), loader.get_filename("groq").endswith("__init__.py"))
        print(len(pkgutil.get_data("groq", "py.typed")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "0"]


def test_a_watched_module_served_by_a_legacy_loader_still_imports() -> None:
    # A loader from before PEP 451 (load_module only), as old import hooks still have.
    result = run_python(
        """
        import importlib.util, sys, types, warnings
        warnings.simplefilter("ignore", ImportWarning)

        class LegacyLoader:
            def load_module(self, name):
                module = sys.modules[name] = types.ModuleType(name)
                module.answer = 42
                return module

        class Finder:
            def find_spec(self, name, path=None, target=None):
                if name == "groq":
                    return importlib.util.spec_from_loader(name, LegacyLoader())
                return None

        sys.meta_path.insert(0, Finder())
        import clientdedupe
        clientdedupe.install()
        import groq
        print(groq.answer)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42"]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 dropped find_module")
def test_a_finder_without_find_spec_on_the_path_leaves_watched_imports_working(
    server: StubServer,
) -> None:
    result = run_python(
        """
        import sys, warnings
        warnings.simplefilter("ignore", ImportWarning)

        class OldFinder:
            def find_module(self, name, path=None):
                return None

        import clientdedupe
        clientdedupe.install()
        sys.meta_path.insert(1, OldFinder())
        import groq
        print(groq.Groq(api_key="k", base_url=URL) is groq.Groq(api_key="k", base_url=URL))
        """.replace("URL", repr(server.url))
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


@pytest.mark.parametrize("order", ["wrapt hook first", "install first"])
def test_wrapts_post_import_hooks_and_ours_both_run_in_either_order(order: str) -> None:
    # OpenTelemetry's and other instrumentations use wrapt's post-import hooks.
    register = "wrapt.register_post_import_hook(lambda m: seen.append(m.__name__), 'groq')"
    install = "clientdedupe.install(targets=['groq'])"
    first, second = (register, install) if order == "wrapt hook first" else (install, register)
    result = run_python(
        f"""
        import wrapt, clientdedupe
        seen = []
        {first}
        {second}
        import groq
        print(seen, groq.Groq(api_key="k") is groq.Groq(api_key="k"))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['groq']", "True"]


def test_an_sdk_served_by_a_finder_put_first_on_the_path_is_still_patched() -> None:
    # App bundlers (PyInstaller, PEX, zipapps) put their own finder first on sys.meta_path.
    result = run_python(
        """
        import importlib.machinery, sys

        class BundleFinder:
            def find_spec(self, name, path=None, target=None):
                if name == "groq" or name.startswith("groq."):
                    return importlib.machinery.PathFinder.find_spec(name, path)
                return None

        sys.meta_path.insert(0, BundleFinder())
        import clientdedupe
        clientdedupe.install(targets=["groq"])
        import groq
        print(groq.Groq(api_key="k") is groq.Groq(api_key="k"))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_uninstall_removes_the_import_watcher() -> None:
    clientdedupe.install()
    assert any(type(f).__name__ == "ImportWatcher" for f in sys.meta_path)
    clientdedupe.uninstall()
    assert not any(type(f).__name__ == "ImportWatcher" for f in sys.meta_path)


def test_max_clients_and_async_mode_arguments_are_validated() -> None:
    bad: list[dict[str, Any]] = [
        {"max_clients": 0},
        {"max_clients": "3"},
        {"async_mode": "sometimes"},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            clientdedupe.install(**kwargs)
    assert not clientdedupe.is_installed()


def test_a_broken_wrapt_leaves_the_sdk_importable_and_unpatched(tmp_path: Path) -> None:
    blocker = tmp_path / "wrapt"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('wrapt is broken here')\n")
    result = run_python(
        """
        import clientdedupe
        clientdedupe.install()
        import openai
        url = "http://127.0.0.1:9/v1"
        print(openai.OpenAI(api_key="k", base_url=url) is openai.OpenAI(api_key="k", base_url=url))
        """,
        PYTHONPATH=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    # One line, naming the missing dependency and the fix.
    assert result.stderr.splitlines() == [
        "clientdedupe: WARNING: no SDK is deduplicated: clientdedupe needs wrapt, which "
        "cannot be imported here (ImportError: wrapt is broken here); fix: "
        f"{sys.executable} -m pip install 'wrapt>=1.17'"
    ]


# ------------------------------------------------ SPEC §4: an explicit install() applies


def test_install_with_other_settings_applies_them(server: StubServer) -> None:
    import groq

    url = server.openai_base_url
    clientdedupe.install()
    try:
        before = openai.OpenAI(api_key="k", base_url=url)
        clientdedupe.install(targets=["groq"], max_clients=1, async_mode="off")
        assert clientdedupe.is_installed()
        # openai is put back as it was; groq is deduplicated, with a cache of one.
        assert openai.OpenAI(api_key="k", base_url=url) is not openai.OpenAI(
            api_key="k", base_url=url
        )
        g_url = server.groq_base_url
        assert groq.Groq(api_key="k", base_url=g_url) is groq.Groq(api_key="k", base_url=g_url)
        groq.Groq(api_key="other", base_url=g_url)
        counts = clientdedupe.stats()
        assert set(counts) == {"groq.Groq", "groq.AsyncGroq"}
        assert counts["groq.Groq"]["evicted"] == 1
        a = groq.AsyncGroq(api_key="k", base_url=g_url)
        assert groq.AsyncGroq(api_key="k", base_url=g_url) is not a  # async_mode="off"
        # The client handed out before the change keeps working.
        assert before.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    finally:
        clientdedupe.uninstall()


def test_install_with_the_same_settings_keeps_the_shared_clients(server: StubServer) -> None:
    url = server.openai_base_url
    clientdedupe.install(targets="openai", max_clients=5)
    try:
        shared = openai.OpenAI(api_key="k", base_url=url)
        clientdedupe.install(targets=["openai"], max_clients=5)
        assert openai.OpenAI(api_key="k", base_url=url) is shared
    finally:
        clientdedupe.uninstall()


@pytest.mark.slow
def test_installs_with_different_settings_from_many_threads_never_raise(
    server: StubServer,
) -> None:
    import threading

    url = server.openai_base_url
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(index: int) -> None:
        try:
            start.wait()
            for step in range(20):
                clientdedupe.install(max_clients=1 + (index + step) % 3)
                openai.OpenAI(api_key="k", base_url=url)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert clientdedupe.is_installed()
        assert openai.OpenAI(api_key="k", base_url=url) is openai.OpenAI(api_key="k", base_url=url)
    finally:
        clientdedupe.uninstall()
    assert vars(openai.OpenAI).get("__init__") is not None
    assert openai.OpenAI(api_key="k", base_url=url) is not openai.OpenAI(api_key="k", base_url=url)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cerebras-cloud-sdk", {"cerebras.cloud.sdk.Cerebras", "cerebras.cloud.sdk.AsyncCerebras"}),
        ("fireworks-ai", {"fireworks.Fireworks", "fireworks.AsyncFireworks"}),
        ("Fireworks_AI", {"fireworks.Fireworks", "fireworks.AsyncFireworks"}),
        ("cerebras.cloud.sdk", {"cerebras.cloud.sdk.Cerebras", "cerebras.cloud.sdk.AsyncCerebras"}),
    ],
)
def test_targets_accept_pip_names_as_well_as_import_names(name: str, expected: set[str]) -> None:
    import cerebras.cloud.sdk  # noqa: F401
    import fireworks  # noqa: F401

    clientdedupe.install(targets=[name])
    try:
        assert set(clientdedupe.stats()) == expected
    finally:
        clientdedupe.uninstall()


def test_an_unknown_target_suggests_the_closest_name() -> None:
    with pytest.raises(ValueError, match=r"'opneai' \(did you mean 'openai'\?\)"):
        clientdedupe.install(targets="opneai")
    assert not clientdedupe.is_installed()
