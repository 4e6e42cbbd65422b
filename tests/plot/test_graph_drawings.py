"""Graph drawings a reader can read, on models that are none of the demos': small graphs
never overlap their nodes, arrows into one node stay visible, the temporal line layout
fills its canvas, and "top k of N" ranks self loops alike in bars and drawings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import attnscope
from attnscope.plot import plot_graph, plot_top_edges

pytest.importorskip("torch_geometric")
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402
from torch_geometric.nn import GATv2Conv  # noqa: E402

from tests import spin_models as spin  # noqa: E402

STATIONS = ["Zürich", "Genève", "Basel", "Bern", "Chur", "Sion", "Thun", "Olten", "Aarau",
            "Brig"]
# two separate stars of five stations: force layouts pile the leaves of each up
EDGES = torch.tensor([[1, 2, 3, 4, 6, 7, 8, 9], [0, 0, 0, 0, 5, 5, 5, 5]])


class Stations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mixer = GATv2Conv(3, 4, heads=2)  # adds self loops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, EDGES)


@pytest.fixture(scope="module")
def stations():
    torch.manual_seed(2)
    model = Stations().eval()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(torch.randn(10, 3))
    return rec


@pytest.fixture(scope="module")
def spin_rec():
    torch.manual_seed(4)
    model = spin.Imputer().eval()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(torch.randn(2, spin.T, spin.N))
    return rec


def _node_xy(fig) -> np.ndarray:
    (nodes,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    return fig.axes[0].transData.transform(nodes.get_offsets())  # display pixels


def _arrows(fig) -> list[FancyArrowPatch]:
    return [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]


def _extent(fig, arrow: FancyArrowPatch):
    """The drawn arrow's bounding box in display pixels (its path is in data units)."""
    return arrow.get_path().transformed(fig.axes[0].transData).get_extents()


@pytest.mark.parametrize("layout", ["auto", "spring", "kamada_kawai"])
def test_small_graph_nodes_never_overlap(stations, layout):
    fig = plot_graph(stations, layout=layout, node_names=STATIONS, dpi=60)
    fig.canvas.draw()
    xy = _node_xy(fig)
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
    radius = np.sqrt(420 / np.pi) * fig.dpi / 72  # node_size is an area in points^2
    assert gaps.min() > 2.4 * radius  # no two node discs touch, names fit between
    assert gaps.min() > 0.15 * np.ptp(xy, axis=0).max()  # spread over the drawing


def test_top_k_counts_self_loops_like_the_bars(stations):
    bars = plot_top_edges(stations, k=5, node_names=STATIONS, dpi=60)
    drawn = plot_graph(stations, top_k=5, node_names=STATIONS, dpi=60)
    total = EDGES.shape[1] + 10  # GATv2 added one self loop per node
    assert f"top 5 of {total} edges" in bars.axes[0].get_title()
    assert f"top 5 of {total} edges" in drawn.axes[0].get_title()
    ranked = [t.get_text().split("->") for t in bars.axes[0].get_yticklabels()]
    loops = sum(a == b for a, b in ranked)
    assert len(_arrows(drawn)) == 5 - loops  # the ranked self loops fill their nodes
    (nodes,) = [c for c in drawn.axes[0].collections if isinstance(c, PathCollection)]
    white = np.all(nodes.get_facecolors()[:, :3] == 1.0, axis=1)
    assert int((~white).sum()) == loops


def test_arrows_into_one_time_step_are_arcs_clear_of_the_line(spin_rec):
    fig = plot_graph(spin_rec, module="stack.0.when", select={"node": 1}, into=4,
                     labels={"time_steps": [f"t{i}" for i in range(spin.T)]}, dpi=60)
    fig.canvas.draw()
    assert "node 1" in fig.axes[0].get_title() and "into t4" in fig.axes[0].get_title()
    arrows = _arrows(fig)
    assert len(arrows) == spin.T - 1  # causal: every earlier step, the self loop is a fill
    line_y = _node_xy(fig)[0, 1]
    radius = np.sqrt(420 / np.pi) * fig.dpi / 72
    for a in arrows:  # each arc rises clear of the nodes between its ends
        ext = _extent(fig, a)
        assert a.get_mutation_scale() >= 16
        assert abs(ext.y1 - line_y) > radius or abs(ext.y0 - line_y) > radius


def test_temporal_line_layout_fills_the_canvas():
    steps = 24
    ei = attnscope.graph.temporal_edge_index(steps, causal=True, max_distance=8)
    w = torch.rand(ei.shape[1], 1)
    m = attnscope.AttentionMap("temporal", "graph", w, edge_index=ei)
    fig = plot_graph(m, layout="line", dpi=50)
    fig.canvas.draw()
    ax = fig.axes[0].get_window_extent()
    arcs = [_extent(fig, a) for a in _arrows(fig)]
    top = max(e.y1 for e in arcs)
    bottom = _node_xy(fig)[:, 1].min()
    assert (top - bottom) > 0.5 * ax.height  # arcs use the height, no empty band
    assert top <= ax.y1 + 2  # and stay inside the axes
    width, height = fig.get_size_inches()
    assert height < 0.6 * width  # a strip, not a square of white space
