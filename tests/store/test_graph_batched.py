"""Graph stores whose layer ran on several samples per call, with leading axes (time
step, node) before the edges: every selection shape reads, exports keep the numbers,
and only real damage (a missing chunk, a checksum) is called damage."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import attnscope
from attnscope.maps import AttentionMap
from attnscope.store import StoreError, export, open_store, open_writer

EDGES = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 0]])  # includes a self loop 0 -> 0


def _weights(batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, EDGES.shape[1], 2, generator=g)  # (batch, time, edge, head)


@pytest.fixture
def batched(tmp_path):
    """Two model calls of 3 and 2 samples; a graph entry with a time axis."""
    root = tmp_path / "s"
    parts = [_weights(3, 0), _weights(2, 1)]
    with open_writer(root, step="val", dtype="float32") as w:
        for p in parts:
            w.write(AttentionMap("net.space_att", "graph", p, edge_index=EDGES))
            w.commit()
    return root, torch.cat(parts).numpy()


SELECTIONS = [(None, None), ([0], None), ([4, 1], None), (slice(1, 4), None), (2, None),
              (None, [1]), (None, 0), ([3, 0], [1, 0]), (slice(None, None, 2), slice(0, 1))]


@pytest.mark.parametrize("samples, heads", SELECTIONS)
def test_every_selection_reads_the_written_numbers(batched, samples, heads):
    root, full = batched
    got = open_store(root).read("net.space_att", step="val", samples=samples, heads=heads)
    rows = np.arange(5)[samples] if samples is not None else np.arange(5)
    cols = np.arange(2)[heads] if heads is not None else np.arange(2)
    want = full[np.atleast_1d(rows)][..., np.atleast_1d(cols)]
    assert got.shape == want.shape  # (sample, time, edge, head)
    np.testing.assert_array_equal(got, want)


def test_npz_and_csv_exports(batched, tmp_path):
    root, full = batched
    store = open_store(root)
    (npz,) = export(store, tmp_path / "out", "npz")
    z = np.load(npz)
    np.testing.assert_array_equal(z["val"], full)
    assert z["edge_index"].tolist() == EDGES.tolist()
    (path,) = export(store, tmp_path / "csv", "csv")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert len(rows) == full.size
    r = rows[-1]
    assert (r["sample"], r["position"], r["source"], r["target"], r["head"]) == (
        "4", "2", "0", "0", "1")
    assert float(r["weight"]) == pytest.approx(float(full[4, 2, 4, 1]), rel=1e-6)


def test_a_missing_chunk_is_damage_named(batched):
    root, _ = batched
    seg = open_store(root).segments("net.space_att", "val")[0].path
    chunk = next(p for p in (seg / "weights" / "c").rglob("*") if p.is_file())
    chunk.unlink()
    store = open_store(root)
    with pytest.raises(StoreError, match=r"damaged: .*missing"):
        store.read("net.space_att", step="val")
    store.read("net.space_att", step="val", samples=[3, 4])  # the other batch is fine


def test_a_flipped_byte_is_damage(batched):
    root, full = batched
    seg = open_store(root).segments("net.space_att", "val")[1].path
    chunk = next(p for p in (seg / "weights" / "c").rglob("*") if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    chunk.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="checksum"):
        open_store(root).read("net.space_att", step="val", samples=[3])


def test_an_internal_error_is_not_called_damage(batched, monkeypatch):
    """A bug below the reader stays a bug: never reported as a damaged store."""
    root, _ = batched
    from attnscope.store.forms import graph

    def broken(*args, **kwargs):
        raise IndexError("a bug")

    monkeypatch.setattr(graph.shards, "read_zarr", broken)
    with pytest.raises(IndexError, match="a bug"):
        open_store(root).read("net.space_att", step="val")


def test_a_real_batched_pyg_capture_reads_and_exports(tmp_path):
    pyg = pytest.importorskip("torch_geometric")
    from torch_geometric.nn import MessagePassing

    class StationMixer(MessagePassing):  # x: (batch, time, node, channel)
        def __init__(self) -> None:
            super().__init__(aggr="add", node_dim=-2)
            self.score = torch.nn.Linear(8, 2)

        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

        def message(self, x_i, x_j, index, size_i):
            alpha = pyg.utils.softmax(self.score(x_i + x_j), index, num_nodes=size_i,
                                      dim=-2)  # (batch, time, edge, head)
            return (alpha.mean(-1, keepdim=True)) * x_j

    torch.manual_seed(0)
    layer = StationMixer().eval()
    edges = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    x = torch.randn(3, 4, 3, 8)
    with torch.no_grad(), attnscope.capture(layer, include=["*"], store=tmp_path / "g", keep=True,
                                            step="val") as rec:
        layer(x, edges)
    store = open_store(tmp_path / "g")
    (name,) = store.modules
    whole = store.read(name, step="val")
    assert whole.shape == (3, 4, edges.shape[1], 2)  # (sample, time, edge, head)
    np.testing.assert_allclose(whole, rec.maps[0].weights.numpy(), atol=1e-3)
    np.testing.assert_array_equal(store.read(name, step="val", samples=[2, 0], heads=[1]),
                                  whole[[2, 0]][..., [1]])
    (npz,) = export(store, tmp_path / "out", "npz")
    assert np.load(npz)["val"].shape == whole.shape
