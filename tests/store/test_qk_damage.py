"""Damaged query/key segments: every chunk of ``q``, ``k`` and ``mask`` carries a crc32c
like the probability segments, so a flipped byte or garbled metadata is one
:class:`StoreError`, never other numbers."""

from __future__ import annotations

import json

import pytest
import torch

import attnscope
from attnscope.store import StoreError
from tests.store.conftest import chunk_files
from tests.store.test_qk import Net


@pytest.fixture
def qk_segment(tmp_path):
    torch.manual_seed(5)
    model = Net(kv_heads=2).eval()
    mask = torch.rand(2, 1, 5, 5) > 0.3
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "q", step="s", form="qk"):
        model(torch.randn(2, 5, 32), mask=mask)
    store = attnscope.open_store(tmp_path / "q")
    seg = store.segments("attn", "s")[0].path
    assert all((seg / part / "zarr.json").exists() for part in ("q", "k", "mask"))
    return tmp_path / "q", seg, store.read("attn")


def _shard(seg, part):
    (file,) = chunk_files(seg / part)
    return file


@pytest.mark.parametrize("part", ["q", "k", "mask"])
def test_every_flipped_byte_is_a_store_error(qk_segment, part):
    root, seg, good = qk_segment
    meta = json.loads((seg / part / "zarr.json").read_text())
    assert "crc32c" in json.dumps(meta["codecs"])  # chunks and shard index checksummed
    file = _shard(seg, part)
    raw = file.read_bytes()
    for at in range(0, len(raw), 3):
        file.write_bytes(raw[:at] + bytes([raw[at] ^ 0x10]) + raw[at + 1:])
        with pytest.raises(StoreError, match="re-capture"):
            attnscope.open_store(root).read("attn")
    file.write_bytes(raw)
    assert (attnscope.open_store(root).read("attn") == good).all()


def test_the_lazy_view_raises_the_same_error(qk_segment):
    root, seg, _ = qk_segment
    file = _shard(seg, "k")
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    file.write_bytes(bytes(raw))
    view = attnscope.open_store(root).to_xarray("attn")
    with pytest.raises(StoreError, match="re-capture"):
        view.values  # noqa: B018


@pytest.mark.parametrize("attr, value", [("kv_index", [9, 9, 9, 9]), ("q", [[1], "float32"]),
                                         ("causal", None), ("mask", [[2], "bool", "?", 1]),
                                         ("scale", "big")])
def test_garbled_attributes_are_a_store_error(qk_segment, attr, value):
    root, seg, _ = qk_segment
    meta = json.loads((seg / "zarr.json").read_text())
    meta["attributes"][attr] = value
    (seg / "zarr.json").write_text(json.dumps(meta))
    store = attnscope.open_store(root)
    with pytest.raises(StoreError, match="re-capture"):
        store.read("attn")
    with pytest.raises(StoreError, match="re-capture"):
        store.to_xarray("attn").values  # noqa: B018


def test_arrays_that_do_not_fit_their_metadata_are_a_store_error(qk_segment):
    root, seg, _ = qk_segment
    meta = json.loads((seg / "zarr.json").read_text())
    meta["attributes"]["shape"][3] = 4  # keys: the journal and the arrays say 5
    (seg / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="re-capture"):
        attnscope.open_store(root).read("attn")
