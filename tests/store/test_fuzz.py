"""Fuzzing the store reader: whatever happens to the files of a store (JSON fields of any
type, flipped, cut or inserted bytes), reading it raises nothing but AttnscopeError, and
damaged chunks never come back as numbers."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnscope.errors import AttnscopeError
from attnscope.maps import AttentionMap
from attnscope.store import open_store, open_writer

from .conftest import chunk_files, dense

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, dict[tuple[str, str], Any]]:
    """A store with dense and graph entries in two steps, and what reading it gives."""
    root = tmp_path_factory.mktemp("fuzz") / "s"
    edges = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 0]])
    for step in ("epoch_000", "test"):
        with open_writer(root, step=step, labels={"tokens": ["a", "b", "c", "d"]}) as w:
            for b in range(2):
                w.write(dense(batch=2, heads=2, q=4, k=4, seed=b))
                w.write(AttentionMap("gat", "graph", torch.rand(4, 2), edge_index=edges))
                w.commit()
    return root, _read_all(root)


def _read_all(root: Path) -> dict[tuple[str, str], Any]:
    """Everything a user can ask a store for; only AttnscopeError may escape."""
    store = open_store(root)
    got: dict[tuple[str, str], Any] = {}
    for module in store.modules:
        store.module_info(module)
        for step in store.steps:
            if not store.segments(module, step):
                continue
            store.labels(step)
            store.lengths(module, step)
            store.samples(module, step)
            store.nbytes(module, step)
            got[(module, step)] = store.read(module, step)
            store.read(module, step, samples=[0], heads=[0])
            if store.module_info(module)["graph"]:
                got[(module, step, "edges")] = store.edge_index(module, step)
    return got


def _copy(root: Path, into: str) -> Path:
    target = Path(into) / "s"
    shutil.copytree(root, target)
    return target


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


@FUZZ
@given(data=st.data())
def test_any_json_field_of_any_type(base, data):
    root, _ = base
    with tempfile.TemporaryDirectory() as tmp:
        path = _copy(root, tmp)
        journals = sorted(path.glob("steps/*/journal.jsonl"))
        files = [path / "attnscope.json", *journals, *sorted(path.rglob("zarr.json"))[:6]]
        file = data.draw(st.sampled_from(files))
        if file.name == "journal.jsonl":
            lines = file.read_text().splitlines()
            i = data.draw(st.integers(0, len(lines) - 1))
            doc = json.loads(lines[i])
            where = data.draw(st.sampled_from(_paths(doc)))
            lines[i] = json.dumps(_replace(doc, where, data.draw(json_values)))
            file.write_text("\n".join(lines) + "\n")
        else:
            doc = json.loads(file.read_text())
            where = data.draw(st.sampled_from(_paths(doc)))
            file.write_text(json.dumps(_replace(doc, where, data.draw(json_values))))
        with contextlib.suppress(AttnscopeError):
            _read_all(path)


@FUZZ
@given(data=st.data())
def test_any_damaged_bytes(base, data):
    root, expected = base
    with tempfile.TemporaryDirectory() as tmp:
        path = _copy(root, tmp)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".lock"
                       and not p.name.endswith(".lock"))
        file = data.draw(st.sampled_from(files))
        raw = bytearray(file.read_bytes())
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del raw[at:]
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            raw[at:at + 16] = bytes(len(raw[at:at + 16]))
        file.write_bytes(bytes(raw))
        try:
            got = _read_all(path)
        except AttnscopeError:
            return
        in_data = file in chunk_files(file.parent) or \
            "/c/" in f"/{file.relative_to(path).as_posix()}"
        if in_data:  # a damaged chunk or shard index must never read as other numbers
            for key, value in got.items():
                np.testing.assert_array_equal(value, expected[key])
