"""The lazy xarray/dask view reads through the same checks as ``Store.read``: a missing
shard or a damaged chunk is a StoreError naming it, never NaN or zarr's own error."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.store import StoreError, open_store, open_writer

from .conftest import chunk_files, dense


@pytest.fixture
def store_path(tmp_path):
    root = tmp_path / "s"
    with open_writer(root, step="a", dtype="float32") as w:
        for b in range(2):
            w.write(dense(batch=2, heads=3, q=5, k=5, seed=b, module="blk.attn"))
            w.commit()
    return root


def _shard(root, batch: int):
    seg = open_store(root).segments("blk.attn", "a")[batch].path
    return seg, chunk_files(seg)[0]


def test_the_view_equals_read(store_path):
    store = open_store(store_path)
    view = store.to_xarray("blk.attn")
    np.testing.assert_array_equal(view.values[0], store.read("blk.attn", step="a"))
    np.testing.assert_array_equal(view.isel(step=0, sample=3, head=1, query=slice(1, 3)).values,
                                  store.read("blk.attn", "a", [3], [1])[0, 0, 1:3])


def test_a_deleted_shard_is_a_store_error_naming_it(store_path):
    seg, shard = _shard(store_path, 1)
    shard.unlink()
    view = open_store(store_path).to_xarray("blk.attn")
    with pytest.raises(StoreError, match=f"{seg.name}.*missing"):
        view.values  # noqa: B018
    with pytest.raises(StoreError, match="missing"):
        view.isel(sample=2).mean().values  # noqa: B018
    assert np.isfinite(view.isel(sample=slice(0, 2)).values).all()  # batch 0 is intact


def test_a_damaged_chunk_is_a_store_error(store_path):
    seg, shard = _shard(store_path, 0)
    raw = bytearray(shard.read_bytes())
    raw[10] ^= 0x01
    shard.write_bytes(bytes(raw))
    view = open_store(store_path).to_xarray("blk.attn")
    with pytest.raises(StoreError, match=f"{seg.name}.*checksum"):
        view.sum().values  # noqa: B018
