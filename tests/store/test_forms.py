"""Segment forms: one conformance suite every registered form passes (write, describe,
read heads, take rows and join them again), segments written before forms were named
still read, and the store stays independent of the capture engine."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import attnscope
from attnscope.kernels import from_sdpa, qk_probabilities
from attnscope.maps import AttentionMap
from attnscope.store import StoreError, forms, open_store, open_writer

from .conftest import dense

EDGES = torch.tensor([[0, 1, 2], [1, 2, 0]])


def _qk_map(batch: int, seed: int) -> AttentionMap:
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(batch, 2, 4, 8, generator=g), torch.randn(batch, 2, 6, 8, generator=g)
    inputs = from_sdpa(q, k, None, False, None)
    m = AttentionMap("blk.attn", "self", torch.empty(inputs.shape, device="meta"))
    m.qk = inputs
    return m


MAKERS = {
    "dense": lambda b, s: dense(batch=b, heads=2, q=4, k=6, seed=s, module="blk.attn"),
    "graph": lambda b, s: AttentionMap("blk.attn", "graph", torch.rand(b, 3, 2),
                                       edge_index=EDGES),
    "qk": _qk_map,
}


def _want(m: AttentionMap) -> np.ndarray:
    if getattr(m, "qk", None) is not None:
        return qk_probabilities(m.qk).numpy()
    return m.weights.numpy()


def test_every_registered_form_is_tested():
    assert set(forms.form_names()) == set(MAKERS)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_conformance(tmp_path, name):
    parts = [MAKERS[name](3, 0), MAKERS[name](2, 1)]
    with open_writer(tmp_path / "s", step="a", dtype="float32") as w:
        for m in parts:
            w.write(m)
            w.commit()
    store = open_store(tmp_path / "s")
    segs = store.segments("blk.attn", "a")
    assert [s.form.name for s in segs] == [name, name]
    form = forms.get_form(name)
    meta = segs[0].meta()
    assert meta["attributes"]["module"] == "blk.attn" and meta["shape"] == list(segs[0].shape)
    want = np.concatenate([_want(m) for m in parts])
    np.testing.assert_allclose(store.read("blk.attn", "a"), want, atol=1e-6)
    block = form.read_heads(segs[0].path, np.array([2, 0]), np.array([1]), meta)
    np.testing.assert_allclose(block, want[[2, 0]][..., [1]] if form.head_axis == -1
                               else want[[2, 0]][:, [1]], atol=1e-6)
    info = store.module_info("blk.attn")
    taken = [form.take(s.path, [s.shape[0] - 1], s.meta(), info) for s in segs]
    joinable = form.key(segs[0].meta()) is not None and \
        form.key(segs[0].meta()) == form.key(segs[1].meta())
    pieces = [form.join(taken)] if joinable else taken
    with open_writer(tmp_path / "t", step="b", dtype="float32") as w:
        for m in pieces:
            w.write_entry("blk.attn", m, m.weights)
            w.commit()
    again = open_store(tmp_path / "t")
    assert {s.form.name for s in again.segments("blk.attn", "b")} == {name}
    np.testing.assert_allclose(again.read("blk.attn", "b"), want[[2, 4]], atol=1e-6)


def test_segments_without_a_form_name_are_inferred(tmp_path):
    """Stores written before forms were named: the journal records carry no ``form``."""
    root = tmp_path / "s"
    with open_writer(root, step="b", dtype="float32") as w:
        for module, name in (("d", "dense"), ("g", "graph"), ("q", "qk")):
            m = MAKERS[name](2, 0)
            m.module = module
            w.write(m)
        w.commit()
    want = {n: open_store(root).read(n, "b") for n in ("d", "g", "q")}
    journal = root / "steps" / "b" / "journal.jsonl"
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    for line in lines:
        for rec in line["maps"]:
            rec.pop("form")
    journal.write_text("".join(json.dumps(x) + "\n" for x in lines))
    store = open_store(root)
    for n in ("d", "g", "q"):
        assert store.segments(n, "b")[0].form_name is None
        np.testing.assert_array_equal(store.read(n, "b"), want[n])


def test_an_unknown_form_is_one_clear_error(tmp_path):
    root = tmp_path / "s"
    with open_writer(root, step="a") as w:
        w.write(dense(module="x"))
    journal = root / "steps" / "a" / "journal.jsonl"
    journal.write_text(journal.read_text().replace('"form":"dense"', '"form":"sparse"'))
    with pytest.raises(StoreError, match="form 'sparse'.*upgrade attnscope"):
        open_store(root).read("x", "a")


def test_the_store_never_imports_the_capture_engine():
    pkg = Path(attnscope.__file__).parent / "store"
    for path in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("attnscope.capturing") for n in names), path


@pytest.mark.parametrize("causal", [False, True])
def test_masked_keys_read_as_negative_zero_in_every_dense_form(tmp_path, causal):
    """A key the call masked is -0.0 whether the map was captured in memory, stored as
    probabilities or recomputed from a q/k segment: figures and metrics read one mark."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cls, cfg = ((transformers.GPT2Model, transformers.GPT2Config(
        n_embd=32, n_layer=1, n_head=2, n_positions=16)) if causal else
        (transformers.BertModel, transformers.BertConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64)))
    cfg._attn_implementation = "sdpa"
    model = cls(cfg).eval()
    ids = torch.randint(5, 100, (2, 6))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # sample 1: two padded keys
    marks = {}
    with torch.no_grad():
        with attnscope.capture(model) as rec:
            model(input_ids=ids, attention_mask=mask)
        for form in ("probs", "qk"):
            with attnscope.capture(model, store=tmp_path / form, step="s", form=form):
                model(input_ids=ids, attention_mask=mask)
    w = rec.maps[0].weights.numpy()
    marks["memory"] = (w == 0) & np.signbit(w)
    for form in ("probs", "qk"):
        store = open_store(tmp_path / form)
        got = store.read(store.modules[0], "s")
        marks[form] = (got == 0) & np.signbit(got)
    want = np.zeros_like(marks["memory"])
    want[1, :, :, 4:] = True  # every query of sample 1 masks keys 4 and 5
    if causal:
        want |= np.triu(np.ones((6, 6), bool), 1)
    for where, got in marks.items():
        np.testing.assert_array_equal(got, want, err_msg=where)


def test_qk_segments_with_compressed_queries_and_keys_still_read(tmp_path):
    """Queries and keys are stored raw (they do not compress); segments written when
    they were blosc-compressed read back the same, through the same fast reader."""
    from attnscope.store.forms import qk as qk_form

    m = _qk_map(3, 4)
    with open_writer(tmp_path / "s", step="a", dtype="float32") as w:
        w.write(m)
        w.commit()
    store = open_store(tmp_path / "s")
    seg = store.segments("blk.attn", "a")[0].path
    meta = json.loads((seg / "q" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]] == \
        ["bytes", "crc32c"]
    raw = store.read("blk.attn", "a")
    for part, t in (("q", m.qk.query), ("k", m.qk.key)):
        qk_form._write_array(seg / part, t, durable=False, compress=True)
        meta = json.loads((seg / part / "zarr.json").read_text())
        assert "blosc" in json.dumps(meta["codecs"])
    np.testing.assert_array_equal(open_store(tmp_path / "s").read("blk.attn", "a"), raw)


@pytest.mark.parametrize("name", ["dense", "qk"])
def test_segments_with_nested_chunk_folders_still_read(tmp_path, name):
    """Shard files are ``c.0.0.0.0`` beside ``zarr.json`` now; segments written with
    zarr's nested keys (``c/0/0/0/0``, before) read the same, by the fast reader too."""
    m = MAKERS[name](3, 2)
    with open_writer(tmp_path / "s", step="a", dtype="float32") as w:
        w.write(m)
        w.commit()
    store = open_store(tmp_path / "s")
    want = store.read("blk.attn", "a")
    seg = store.segments("blk.attn", "a")[0].path
    moved = 0
    for meta_file in seg.rglob("zarr.json"):
        meta = json.loads(meta_file.read_text())
        if meta.get("node_type") != "array":
            continue
        assert meta["chunk_key_encoding"]["configuration"]["separator"] == "."
        meta["chunk_key_encoding"]["configuration"]["separator"] = "/"
        meta_file.write_text(json.dumps(meta))
        for file in meta_file.parent.glob("c.*"):
            nested = meta_file.parent.joinpath(*file.name.split("."))
            nested.parent.mkdir(parents=True)
            file.rename(nested)
            moved += 1
    assert moved >= 1
    np.testing.assert_array_equal(open_store(tmp_path / "s").read("blk.attn", "a"), want)
    import zarr  # zarr itself reads both layouts from their metadata

    part = seg / ("q" if name == "qk" else "")
    assert zarr.open_array(str(part), mode="r").shape[0] == 3
