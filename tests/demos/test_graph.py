"""The graph demo: GATv2 edge attention with self loops and its edge_index in the store."""

from __future__ import annotations

from attnscope import open_store
from attnscope.demos.families.graph import NEIGHBOURS, NODES


def test_store_holds_graph_maps_with_self_loops(demo_run):
    out, _ = demo_run("graph")
    store = open_store(out / "store")
    info = store.module_info("net.spatial")
    assert info["graph"] and info["kind"] == "graph"
    src, dst = store.edge_index("net.spatial", step="test")
    assert len(src) == NODES * (NEIGHBOURS + 1)  # self loops included
    assert (src == dst).sum() == NODES
    weights = store.read("net.spatial", step="test", samples=[0])[0]  # (edge, head)
    assert weights.shape == (len(src), 2)
    assert store.read("net.temporal", step="test").shape[1] == NODES  # (sample, node, edge, head)
    assert len(store.labels("test")["driver_edges"]) == NODES


def test_figures_include_the_top_edges(demo_run):
    out, result = demo_run("graph")
    assert (out / "graph_top_edges.png") in result.files
