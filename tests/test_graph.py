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
from attnscope.store import StoreError, export, open_store, open_writer

pyg = pytest.importorskip("torch_geometric")
from torch_geometric import utils as pyg_utils  # noqa: E402
from torch_geometric.nn import GATConv, MessagePassing  # noqa: E402

from tests import spin_models as spin  # noqa: E402

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


# -- a SPIN-like model (tests/spin_models.py): (batch, time-edge, node, head) kept whole --

SPIN_LABELS = {"time_steps": [f"2024-01-0{i + 1}" for i in range(spin.T)],
               "nodes": ["Αθήνα", "Köln", "s2", "s3"]}


@pytest.fixture(scope="module")
def spin_store(tmp_path_factory):
    torch.manual_seed(1)
    model = spin.Imputer().eval()
    xs = [torch.randn(spin.BATCH, spin.T, spin.N), torch.randn(2, spin.T, spin.N)]
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(xs[0])
    path = tmp_path_factory.mktemp("spin") / "store"
    writer = open_writer(path, step="test", labels=SPIN_LABELS)
    with torch.no_grad(), attnscope.capture(model, store=writer, dtype="float16"):
        for x in xs:
            model(x)
    writer.close()
    return open_store(path), model, torch.cat(xs), rec


def test_node_axis_of_temporal_attention_is_its_own_dim(spin_store):
    _, model, xs, rec = spin_store
    when, where = rec.maps
    edges = model.time_edges.shape[1]
    assert when.weights.shape == (spin.BATCH, spin.N, edges, spin.HEADS)  # not 8 "heads"
    assert when.dims == ("batch", "dim2", "edge", "head") and when.num_heads == spin.HEADS
    assert where.dims == ("batch", "dim1", "edge", "head")
    with torch.no_grad():
        want = spin.when_reference(model, xs[:spin.BATCH])  # (batch, node, head, T, T)
    dense = when.to_dense(spin.T)  # (batch, node, head, T, T)
    assert (dense - want).abs().max() < 1e-6


def test_store_names_and_selects_leading_axes(spin_store):
    store, _, _, _ = spin_store
    (node,) = store.axes("stack.0.when", "test")
    (time,) = store.axes("stack.0.where", "test")
    assert (node.name, node.size, node.labels) == ("node", spin.N, SPIN_LABELS["nodes"])
    assert (time.name, time.labels) == ("time", SPIN_LABELS["time_steps"])
    full = store.read("stack.0.when", "test")  # batched graph store reads whole
    assert full.shape == (spin.BATCH + 2, spin.N, 15, spin.HEADS)
    one = store.read("stack.0.when", "test", samples=[1, 4], heads=[1], select={"node": 2})
    np.testing.assert_array_equal(one, full[[1, 4], 2][..., [1]])
    two = store.read("stack.0.where", "test", select={"time": [0, -1]})
    np.testing.assert_array_equal(two, store.read("stack.0.where", "test")[:, [0, 4]])
    for bad, text in (({"channel": 0}, "no axis 'channel'"), ({"node": 9}, "node 9 out of")):
        with pytest.raises(StoreError, match=text) as err:
            store.read("stack.0.when", "test", select=bad)
        assert "\n" not in str(err.value)


def test_dense_map_by_node_name_matches_the_model(spin_store):
    store, model, xs, _ = spin_store
    g = dense_map(store, module="stack.0.when", step="test", sample=1)
    assert [a.name for a in g.axes] == ["node"] and g.node_kind == "time"
    assert g.node_names == SPIN_LABELS["time_steps"]
    with torch.no_grad():
        want = spin.when_reference(model, xs[1:2])[0].numpy()  # (node, head, T, T)
    np.testing.assert_allclose(np.nan_to_num(g.at(node=3)), want[3], atol=2e-3)
    with pytest.raises(attnscope.SelectionError, match="no axis 'time'"):
        g.at(time=0)


def test_npz_time_steps_hold_time_steps_not_heads(spin_store, tmp_path):
    store, _, _, _ = spin_store
    (when,) = export(store, tmp_path / "when", "npz", modules=["stack.0.when"])
    (where,) = export(store, tmp_path / "where", "npz", modules=["stack.0.where"])
    z = np.load(when)
    assert z["dims"].tolist() == ["sample", "node", "edge", "head"]
    assert z["time_steps"].tolist() == SPIN_LABELS["time_steps"]  # the graph's own nodes
    assert z["nodes"].tolist() == SPIN_LABELS["nodes"]
    z = np.load(where)
    assert z["dims"].tolist() == ["sample", "time", "edge", "head"]
    assert z["time_steps"].tolist() == SPIN_LABELS["time_steps"]
    assert z["test"].shape[1] == spin.T


def test_cli_node_and_time_step_on_both_graph_kinds(spin_store, tmp_path, capsys):
    store, _, _, _ = spin_store
    root = str(store.root)
    assert main(["plot", root, "--kind", "graph", "-m", "stack.0.when", "--node", "1",
                 "--time-step", "3", "--sample", "4", "--out", str(tmp_path / "a"),
                 "--dpi", "50"]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        f"stack.0.when_test_s4_node1_into3_{v}.png" for v in ("graph", "matrix", "top-edges")]
    assert main(["plot", root, "--kind", "graph", "-m", "stack.0.where", "--time-step", "2",
                 "--node", "3", "--out", str(tmp_path / "b"), "--dpi", "50"]) == 0
    assert (tmp_path / "b" / "stack.0.where_test_s0_t2_into3_graph.png").exists()
    capsys.readouterr()
    for args, text in ((["-m", "stack.0.when", "--axis", "channel=1"], "no axis 'channel'"),
                       (["-m", "stack.0.when", "--axis", "node"], "NAME=INDEX"),
                       (["-m", "stack.0.when", "--node", "7"], "node 7 out of range"),
                       (["-m", "stack.0.where", "--time-step", "9"], "time 9 out of range")):
        assert main(["plot", root, "--kind", "graph", *args, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1, err


def test_figures_title_leading_positions_by_label(spin_store):
    from attnscope.plot import plot_edge_matrix, plot_top_edges

    store, _, _, rec = spin_store
    fig = plot_top_edges(store, module="stack.0.when", step="test", select={"node": 0}, k=3)
    title = fig.axes[0].get_title()
    assert "node Αθήνα" in title and "[0]" not in title and "mean of 2 heads" in title
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert all("->2024-01-0" in t for t in ticks)  # stored time labels name the nodes
    fig = plot_edge_matrix(rec, module="stack.0.where", select=[4], labels=SPIN_LABELS)
    assert "time step 2024-01-05" in fig.axes[0].get_title()
    assert fig.axes[0].get_xlabel() == "source node (key)"


class PerChannelSteps(MessagePassing):
    """Attention between time steps per node and channel: ``(batch, edge, node,
    channel, head)`` scores, softmax over edges along dim 1."""

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=1)
        self.score = nn.Linear(3, 2)

    def forward(self, x, edge_index):  # (batch, time, node, channel, 3)
        return self.propagate(edge_index, x=x)

    def message(self, x_i, x_j, index, size_i):
        alpha = pyg_utils.softmax(self.score(x_i * x_j), index, num_nodes=size_i, dim=1)
        return alpha.mean(-1, keepdim=True) * x_j


def test_two_leading_axes_are_named_and_picked(tmp_path, capsys):
    torch.manual_seed(0)
    layer = PerChannelSteps().eval()
    edges = temporal_edge_index(4, causal=True)
    x = torch.randn(2, 4, 3, 5, 3)  # 3 nodes, 5 channels
    path = tmp_path / "store"
    labels = {"time_steps": list("abcd"), "nodes": ["n0", "n1", "n2"],
              "channels": ["Fz", "Cz", "Pz", "Oz", "T3"]}
    writer = open_writer(path, step="test", labels=labels)
    with torch.no_grad(), attnscope.capture(layer, store=writer, keep=True) as rec:
        layer(x, edges)
    writer.close()
    (m,) = rec.maps
    assert m.weights.shape == (2, 3, 5, edges.shape[1], 2)
    store = open_store(path)
    assert [(a.name, a.size) for a in store.axes("", "test")] == [("node", 3), ("channel", 5)]
    w = store.read("", "test", select={"channel": 3, "node": [2]})
    assert w.shape == (2, 1, edges.shape[1], 2)
    np.testing.assert_allclose(w[:, 0], m.weights[:, 2, 3].numpy(), atol=1e-3)  # float16
    assert main(["plot", str(path), "--kind", "graph", "--node", "2", "--axis", "channel=3",
                 "--out", str(tmp_path / "f"), "--dpi", "50"]) == 0
    from attnscope.plot import plot_top_edges

    fig = plot_top_edges(store, step="test", select={"node": 2, "channel": 3})
    assert "node n2 \u00b7 channel Oz" in fig.axes[0].get_title()
    fig = plot_top_edges(store, step="test", select={"node": 1})  # channel: position 0
    assert "node n1 \u00b7 channel Fz" in fig.axes[0].get_title()


def test_exports_select_named_dims_and_keep_them(spin_store, tmp_path, capsys):
    store, _, _, _ = spin_store
    full = store.read("stack.0.when", "test")
    (npz,) = export(store, tmp_path / "z", "npz", modules=["stack.0.when"],
                    select={"node": [3, 1]})
    z = np.load(npz)
    assert z["dims"].tolist() == ["sample", "node", "edge", "head"]
    assert z["nodes"].tolist() == ["s3", "Köln"]
    np.testing.assert_array_equal(z["test"], full[:, [3, 1]])
    root = str(store.root)
    assert main(["export", root, "-f", "csv", "-o", str(tmp_path / "c"), "-m", "stack.0.when",
                 "--axis", "node=2", "--samples", "0"]) == 0
    rows = list(csv.DictReader((tmp_path / "c" / "attention_all_epochs.csv").open()))
    assert {r["position"] for r in rows} == {"2"} and len(rows) == 15 * spin.HEADS
    capsys.readouterr()
    assert main(["export", root, "-f", "npz", "-o", str(tmp_path / "bad"), "--axis",
                 "node=9"]) == 2
    err = capsys.readouterr().err
    assert "node 9 out of range" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
