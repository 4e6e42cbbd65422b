"""The public API: what ``import attnscope`` offers, and what it loads (the layering
rules are in tests/test_layering.py)."""

from __future__ import annotations

import importlib
import typing

import pytest

import attnscope


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
    store = importlib.import_module("attnscope.store")  # Store: a lazy attribute there
    hints = typing.get_type_hints(attnscope.open_store, globalns={
        **vars(attnscope), **vars(store), "Store": store.Store})
    assert hints["return"].__name__ == "Store"


def test_create_store_returns_its_path_not_a_reader(tmp_path):
    from attnscope.store import create_store

    path = create_store(tmp_path / "s", keepbits=7)
    assert path == tmp_path / "s" and (path / "attnscope.json").exists()
    with pytest.raises(attnscope.OptionError, match="keepbits=99"):
        create_store(tmp_path / "t", keepbits=99)
    assert not (tmp_path / "t").exists()


def test_import_attnscope_loads_no_optional_framework_nor_application():
    import subprocess
    import sys

    heavy = ("zarr", "xarray", "dask", "matplotlib", "transformers", "lightning",
             "torch_geometric", "networkx", "attnscope.text", "attnscope.hierarchy",
             "attnscope.demos", "attnscope.evaluate", "attnscope.cli", "attnscope.store",
             "attnscope.plot", "attnscope.viewer", "attnscope.analysis")
    code = f"import sys, attnscope; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_subpackages_are_attributes_after_a_plain_import():
    import subprocess
    import sys

    code = ("import attnscope; "
            "print(attnscope.store.create_store.__name__, attnscope.store.tune_allocator."
            "__name__, attnscope.plot.plot_heatmap.__name__, attnscope.analysis.head_stats."
            "__name__, attnscope.viewer.render_html.__name__, attnscope.sources.resolve."
            "__name__, attnscope.graph.dense_map.__name__, attnscope.translate.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["create_store", "tune_allocator", "plot_heatmap", "head_stats",
                   "render_html", "resolve", "dense_map", "translate"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        attnscope.nope  # noqa: B018


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
