"""attnscope.graph on a SPIN-style model that is not the zoo's: a windowed (not causal)
multi-head temporal graph per sensor and a GATConv over 5 sensors, captured into a
store, rebuilt densely, plotted per node/time step from the CLI and exported."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

import attnscope
from attnscope.cli import main
from attnscope.graph import dense_map, temporal_edge_index, to_dense
from attnscope.store import export, open_store, open_writer

pyg = pytest.importorskip("torch_geometric")
from torch_geometric import utils as pyg_utils  # noqa: E402
from torch_geometric.nn import GATConv, MessagePassing  # noqa: E402

T, SENSORS, D, HEADS, WINDOW = 6, 5, 8, 2, 2
SENSOR_EDGES = torch.tensor([[1, 2, 0, 3, 4, 0], [0, 0, 1, 2, 3, 4]])


class TimeMix(MessagePassing):
    """Two-head additive attention between time steps, on ``(batch, sensor, time, d)``."""

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=-2)
        self.q, self.k = nn.Linear(D, D), nn.Linear(D, D, bias=False)
        self.v = nn.Linear(D, HEADS, bias=False)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.propagate(edge_index, h=h)

    def message(self, h_i, h_j, index, size_i):
        alpha = pyg_utils.softmax(self.v(torch.tanh(self.q(h_i) + self.k(h_j))), index,
                                  num_nodes=size_i, dim=-2)  # (batch, sensor, edge, head)
        return alpha.mean(-1, keepdim=True) * h_j


class SensorNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(1, D)
        self.blocks = nn.ModuleDict({"time_mix": TimeMix(),
                                     "neighbour_mix": GATConv(D, D, heads=3, concat=False)})
        self.register_buffer("time_edges", temporal_edge_index(T, max_distance=WINDOW))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, time, sensor)
        h = self.embed(x.transpose(1, 2)[..., None])  # (1, sensor, time, d)
        z = self.blocks["time_mix"](h, self.time_edges)[0, :, -1]  # (sensor, d)
        return self.blocks["neighbour_mix"](z, SENSOR_EDGES).sum(-1)


def time_mix_reference(model: SensorNet, x: torch.Tensor) -> np.ndarray:
    """``(sensor, head, T, T)`` by a dense masked softmax, computed without PyG."""
    tm = model.blocks["time_mix"]
    h = model.embed(x.transpose(1, 2)[..., None])[0]  # (sensor, time, d)
    s = tm.v(torch.tanh(tm.q(h)[:, :, None] + tm.k(h)[:, None]))  # (sensor, q, k, head)
    t = torch.arange(T)
    s = s.masked_fill(((t[:, None] - t[None]).abs() > WINDOW)[None, :, :, None], -torch.inf)
    return torch.softmax(s, dim=2).permute(0, 3, 1, 2).detach().numpy()


@pytest.fixture(scope="module")
def sensor_store(tmp_path_factory):
    torch.manual_seed(0)
    model = SensorNet().eval()
    xs = torch.randn(3, 1, T, SENSORS)
    path = tmp_path_factory.mktemp("g") / "store"
    writer = open_writer(path, step="test", labels={
        "time_steps": [f"t{i}" for i in range(T)], "nodes": [f"s{i}" for i in range(SENSORS)]})
    with torch.no_grad(), attnscope.capture(model, store=writer):
        for x in xs:
            model(x)
    writer.close()
    return open_store(path), model, xs


def test_temporal_edge_index_rules():
    full = temporal_edge_index(4)
    causal = temporal_edge_index(4, causal=True)
    window = temporal_edge_index(5, causal=True, max_distance=1, self_loops=False)
    assert full.shape == (2, 16) and causal.shape == (2, 10)
    assert bool((causal[0] <= causal[1]).all())
    assert window.T.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    with pytest.raises(attnscope.SelectionError):
        temporal_edge_index(0)


def test_to_dense_masks_absent_edges_and_adds_duplicates():
    ei = np.array([[0, 0, 1, 1], [1, 1, 0, 2]])
    w = np.array([[0.2, 1.0], [0.3, 0.0], [0.5, 0.5], [0.7, 0.1]])  # (edge, head)
    dense, present = to_dense(w, ei, 3)
    assert dense.shape == (2, 3, 3)
    assert dense[0, 1, 0] == pytest.approx(0.5) and dense[1, 1, 0] == pytest.approx(1.0)
    assert present.sum() == 3 and np.isnan(dense[:, 0, 0]).all()


def test_dense_rebuild_matches_a_dense_masked_softmax(sensor_store):
    store, model, xs = sensor_store
    for sample in range(3):
        g = dense_map(store, module="blocks.time_mix", step="test", sample=sample)
        assert g.weights.shape == (SENSORS, HEADS, T, T)
        want = time_mix_reference(model, xs[sample])
        outside = want == 0
        assert np.isnan(g.weights[outside]).all()  # no edge: NaN, never 0
        np.testing.assert_allclose(g.weights[~outside], want[~outside], atol=2e-3)
        np.testing.assert_allclose(np.nan_to_num(g.incoming(5, 3)[1]), want[3, 1, 5], atol=2e-3)


def test_dense_rebuild_of_gat_matches_returned_weights(sensor_store):
    store, model, xs = sensor_store
    gat = model.blocks["neighbour_mix"]
    with torch.no_grad():
        h = model.embed(xs[1].transpose(1, 2)[..., None])
        z = model.blocks["time_mix"](h, model.time_edges)[0, :, -1]
        _, (ei, alpha) = gat(z, SENSOR_EDGES, return_attention_weights=True)
    g = dense_map(store, module="blocks.neighbour_mix", step="test", sample=1)
    for (src, dst), a in zip(ei.T.tolist(), alpha.tolist()):
        np.testing.assert_allclose(g.weights[:, dst, src], a, atol=2e-3)
    assert int(g.present.sum()) == ei.shape[1]


def test_cli_node_time_step_top_k(sensor_store, tmp_path, capsys):
    store, _, _ = sensor_store
    code = main(["plot", str(store.root), "--kind", "graph", "--module", "blocks.time_mix",
                 "--node", "2", "--time-step", "4", "--top-k", "3", "--sample", "1",
                 "--out", str(tmp_path), "--dpi", "60"])
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"blocks.time_mix_test_s1_node2_into4_{v}.png"
                     for v in ("graph", "matrix", "top-edges")]
    from attnscope.plot import plot_top_edges

    fig = plot_top_edges(store, module="blocks.time_mix", step="test", sample=1, select=[2],
                         into=4, k=3, node_names=[f"t{i}" for i in range(T)])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 3 and all(lab.endswith("->t4") for lab in labels)
    g = dense_map(store, module="blocks.time_mix", step="test", sample=1).weights[2]
    bars = sorted((p.get_width() for p in fig.axes[0].patches), reverse=True)
    row = g[:, 4].mean(0)  # head mean of what time step 4 attends to; NaN: no edge
    np.testing.assert_allclose(bars, np.sort(row[~np.isnan(row)])[::-1][:3], atol=1e-6)
    # spatial map: --node is the destination sensor; no time dim, so --time-step refuses
    assert main(["plot", str(store.root), "--kind", "graph", "--module",
                 "blocks.neighbour_mix", "--node", "0", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["plot", str(store.root), "--kind", "graph", "--module",
                 "blocks.neighbour_mix", "--time-step", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--time-step" in err and err.count("\n") == 1
    assert main(["plot", str(store.root), "--kind", "graph", "--module", "blocks.time_mix",
                 "--node", "9", "--out", str(tmp_path)]) == 2


def test_exports_keep_edge_index(sensor_store, tmp_path):
    store, model, _ = sensor_store
    (npz,) = export(store, tmp_path, "npz", modules=["blocks.time_mix"])
    z = np.load(npz)
    np.testing.assert_array_equal(z["edge_index"], model.time_edges.numpy())
    assert z["test"].shape == (3, SENSORS, model.time_edges.shape[1], HEADS)
    (path,) = export(store, tmp_path, "csv", modules=["blocks.neighbour_mix"], samples=[0])
    rows = list(csv.DictReader(path.read_text().splitlines()))
    ei = store.edge_index("blocks.neighbour_mix", step="test")
    assert len(rows) == ei.shape[1] * 3
    w = store.read("blocks.neighbour_mix", step="test", samples=[0])[0]
    for r in rows[:12]:
        e = int(r["edge"])
        assert (int(r["source"]), int(r["target"])) == (ei[0, e], ei[1, e])
        assert float(r["weight"]) == pytest.approx(w[e, int(r["head"])], rel=1e-3)
    both = export(store, tmp_path / "both", "csv")
    assert [p.name for p in both] == ["attention_all_epochs.csv"]
