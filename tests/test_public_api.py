"""The public API and the package's layering: what ``import attnscope`` offers, and the
core never standing on the applications built over it (demos, evaluate, the CLI)."""

from __future__ import annotations

import ast
import importlib
import typing
from pathlib import Path

import pytest

import attnscope

ROOT = Path(attnscope.__file__).parent
APPS = ("attnscope.demos", "attnscope.evaluate", "attnscope.cli")


def test_the_capture_function_does_not_hide_its_subpackage():
    import attnscope.capturing.dataset

    assert callable(attnscope.capture) and attnscope.capture.__module__ == "attnscope.capturing.api"
    assert attnscope.capturing.dataset.capture_dataset is attnscope.capture_dataset


def test_everything_in_all_is_importable():
    for name in attnscope.__all__:
        assert getattr(attnscope, name) is not None, name
    from attnscope.store import open_writer

    assert attnscope.open_writer is open_writer


def test_open_store_is_typed():
    hints = typing.get_type_hints(attnscope.open_store, globalns={
        **vars(attnscope), **vars(importlib.import_module("attnscope.store"))})
    assert hints["return"].__name__ == "Store"


def test_create_store_returns_its_path_not_a_reader(tmp_path):
    from attnscope.store import create_store

    path = create_store(tmp_path / "s", keepbits=7)
    assert path == tmp_path / "s" and (path / "attnscope.json").exists()
    with pytest.raises(attnscope.OptionError, match="keepbits=99"):
        create_store(tmp_path / "t", keepbits=99)
    assert not (tmp_path / "t").exists()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(p for p in ROOT.rglob("*.py")
                                        if p.relative_to(ROOT).parts[0] not in
                                        ("demos", "evaluate", "cli")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_core_modules_never_import_the_applications(path):
    bad = [n for n in _imports(path) if n.startswith(APPS)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_command_line_imports_demos_and_evaluate_only_when_asked():
    import subprocess
    import sys

    code = ("import sys, attnscope.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('attnscope.demos', "
            "'attnscope.evaluate'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_no_submodule_is_hidden_by_a_name_of_its_package():
    import pkgutil
    import types

    hidden = []
    for info in pkgutil.walk_packages(attnscope.__path__, "attnscope."):
        if info.name.endswith(".__main__"):
            continue  # runs the command line when imported
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional framework is missing
            continue
        parent, _, leaf = info.name.rpartition(".")
        if not isinstance(getattr(importlib.import_module(parent), leaf), types.ModuleType):
            hidden.append(info.name)
    assert not hidden
