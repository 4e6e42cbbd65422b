from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from attnscope.maps import AttentionMap
from attnscope.store import StoreError, open_store, open_writer
from attnscope.store.codec import shard_shape

from .conftest import dense


def test_dense_round_trip_float16(tmp_path):
    w = open_writer(tmp_path / "s", step="epoch_000", labels={"tokens": list("abcdefgh")})
    maps = [dense(seed=i, forward_index=i) for i in range(3)]
    for m in maps:
        w.write(m)
        w.commit()
    w.close()
    store = open_store(tmp_path / "s")
    assert store.steps == ["epoch_000"] and store.modules == ["enc.attn"]
    ref = torch.cat([m.weights for m in maps]).numpy()
    got = store.read("enc.attn", step="epoch_000")
    assert got.dtype == np.float32 and got.shape == (12, 3, 8, 8)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4)
    one = store.read("enc.attn", samples=[5], heads=[2])
    np.testing.assert_allclose(one[0, 0], ref[5, 2], rtol=1e-3, atol=1e-4)
    assert store.samples("enc.attn")[5] == (1, 1)


def test_float32_is_exact(tmp_path):
    m = dense()
    with_writer = open_writer(tmp_path / "s", step="test", dtype="float32")
    with_writer.write(m)
    with_writer.close()
    np.testing.assert_array_equal(open_store(tmp_path / "s").read("enc.attn"), m.weights.numpy())


def test_chunk_layout_one_head_of_one_sample(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    w.write(dense(batch=5, heads=4, q=16, k=32))
    w.close()
    seg = open_store(tmp_path / "s").segments("enc.attn", "a")[0]
    z = zarr.open_array(str(seg.path), mode="r")  # plain zarr reads our shard files
    assert z.chunks == (1, 1, 16, 32)  # inner chunk: one head of one sample
    assert z.shards is not None and z.shards[1:] == (4, 16, 32)
    assert z.metadata.zarr_format == 3


def test_big_samples_split_shards_over_heads():
    assert shard_shape((8, 8, 3000, 3000), 2) == (1, 1, 3000, 3000)
    assert shard_shape((8, 12, 512, 512), 2)[0] >= 2


def test_varying_lengths_are_nan_padded(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    w.write(dense(batch=2, q=5, k=5))
    w.commit()
    w.write(dense(batch=3, q=7, k=9))
    w.close()
    store = open_store(tmp_path / "s")
    a = store.read("enc.attn")
    assert a.shape == (5, 3, 7, 9)
    assert np.isnan(a[0, :, 5:, :]).all() and not np.isnan(a[0, :, :5, :5]).any()
    assert store.lengths("enc.attn").tolist() == [[5, 5]] * 2 + [[7, 9]] * 3
    assert store.to_xarray("enc.attn").shape == (1, 5, 3, 7, 9)


def test_repeated_calls_and_effective_are_separate_entries(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    base = dense()
    w.write(base)
    w.write(dense(seed=1, call_index=1))
    w.write(AttentionMap("rel", "self", base.weights, effective=base.weights * 2))
    w.close()
    store = open_store(tmp_path / "s")
    assert store.modules == ["enc.attn", "enc.attn[1]", "rel", "rel@effective"]
    np.testing.assert_allclose(store.read("rel@effective"), 2 * store.read("rel"),
                               rtol=1e-3, atol=1e-6)


def test_graph_maps(tmp_path):
    ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    wts = torch.rand(4, 2)
    w = open_writer(tmp_path / "s", step="a")
    for _ in range(2):
        w.write(AttentionMap("gat", "graph", wts, edge_index=ei))
        w.commit()
    w.close()
    store = open_store(tmp_path / "s")
    assert store.read("gat").shape == (2, 4, 2)
    np.testing.assert_allclose(store.read("gat", heads=[1])[1, :, 0], wts[:, 1], rtol=1e-3)
    np.testing.assert_array_equal(store.edge_index("gat", sample=1), ei.numpy())


def test_lossy_keepbits_error_bound(tmp_path):
    m = dense(batch=2, heads=2, q=64, k=64)
    w = open_writer(tmp_path / "s", step="a", keepbits=6)
    w.write(m)
    w.close()
    x = m.weights.numpy()
    got = open_store(tmp_path / "s").read("enc.attn")
    bound = 2.0 ** -7 * np.abs(x) + 2.0 ** -(15 + 6) + 2.0 ** -11 * np.abs(x)
    assert (np.abs(got - x) <= bound).all()
    assert not np.array_equal(got, x.astype(np.float16).astype(np.float32))


def test_step_written_twice(tmp_path):
    for _ in range(2):
        with pytest.warns(UserWarning) if _ else _nullcontext():
            w = open_writer(tmp_path / "s", step="a")
        w.write(dense(batch=2))
        w.close()
    assert open_store(tmp_path / "s").num_samples("enc.attn", "a") == 4  # appended
    w = open_writer(tmp_path / "s", step="a", if_exists="overwrite")
    w.write(dense(batch=3))
    w.close()
    assert open_store(tmp_path / "s").num_samples("enc.attn", "a") == 3
    with pytest.raises(StoreError, match="already exists"):
        open_writer(tmp_path / "s", step="a", if_exists="error")


def test_several_steps_and_xarray(tmp_path):
    for step in ("epoch_000", "epoch_001", "test"):
        w = open_writer(tmp_path / "s", step=step)
        w.write(dense(batch=2 if step == "test" else 3))
        w.close()
    store = open_store(tmp_path / "s")
    assert store.steps == ["epoch_000", "epoch_001", "test"]
    xa = store.to_xarray("enc.attn")
    assert xa.dims == ("step", "sample", "head", "query", "key")
    assert xa.shape == (3, 3, 3, 8, 8)
    assert np.isnan(xa.sel(step="test").isel(sample=2).values).all()
    np.testing.assert_allclose(xa.sel(step="epoch_001").values, store.read("enc.attn", "epoch_001"))
    with pytest.raises(StoreError, match="pass step="):
        store.read("enc.attn")


def test_reader_sees_committed_snapshot(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    w.write(dense())
    w.commit()
    store = open_store(tmp_path / "s")
    w.write(dense())  # written, not committed: invisible
    assert store.num_samples("enc.attn", "a") == 4
    w.commit()
    store.refresh()
    assert store.num_samples("enc.attn", "a") == 8
    w.close()


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def test_group_nodes_are_what_zarr_writes(tmp_path):
    import zarr

    from attnscope.store.codec import group_node

    zarr.open_group(str(tmp_path / "z"), mode="a", attributes={"module": "注意.attn[1]"})
    group_node(tmp_path / "ours", {"module": "注意.attn[1]"})
    assert (tmp_path / "ours" / "zarr.json").read_bytes() == \
        (tmp_path / "z" / "zarr.json").read_bytes()
    group_node(tmp_path / "ours", {"module": "other"})  # an existing node is kept
    assert dict(zarr.open_group(str(tmp_path / "ours"), mode="r").attrs) == \
        {"module": "注意.attn[1]"}
