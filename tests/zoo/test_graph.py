"""The graph demo: GATv2 edge attention finds each node's driving neighbour."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")
pytest.importorskip("torch_geometric")

from attnscope import open_store  # noqa: E402
from attnscope.zoo.graph import NEIGHBOURS, NODES  # noqa: E402
from attnscope.zoo.registry import get_family  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("graph")
    return out, get_family("graph").run(out, seed=0, quick=True)


def test_driver_edges_get_top_weight(trained):
    _, result = trained
    assert result.passed, result


def test_untrained_control_fails(tmp_path):
    result = get_family("graph").run(tmp_path, seed=0, quick=True, trained=False)
    assert not result.passed, result


def test_store_holds_graph_maps_with_self_loops(trained):
    out, _ = trained
    store = open_store(out / "store")
    assert store.steps[0] == "epoch_000" and store.steps[-1] == "test"
    info = store.module_info("net.spatial")
    assert info["graph"] and info["kind"] == "graph"
    src, dst = store.edge_index("net.spatial", step="test")
    assert len(src) == NODES * (NEIGHBOURS + 1)  # self loops included
    assert (src == dst).sum() == NODES
    weights = store.read("net.spatial", step="test", samples=[0])[0]  # (edge, head)
    assert weights.shape == (len(src), 2)
    assert store.read("net.temporal", step="test").shape[1] == NODES  # (sample, node, edge, head)
    assert len(store.labels("test")["driver_edges"]) == NODES


def test_figures_and_summary(trained):
    out, result = trained
    assert all(p.exists() for p in result.files)
    assert (out / "graph_top_edges.png") in result.files
