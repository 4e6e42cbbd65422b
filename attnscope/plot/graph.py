"""Graph attention drawn as the graph: edge width and colour by weight (networkx layout).

Self loops are not drawn as arcs (they hide under the node); the node's colour shows its
self-loop weight on the same colour scale instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure
from attnscope.plot.edges import check_node, edge_weights, graph_title, name_of
from attnscope.sources import read_graph

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LAYOUTS = ("spring", "circular", "kamada_kawai", "shell", "line")


def _layout(nx: Any, graph: Any, layout: str, seed: int) -> dict[int, tuple[float, float]]:
    if layout == "spring":
        return nx.spring_layout(graph, seed=seed)
    if layout == "line":  # temporal graphs: time steps left to right
        return {n: (float(n), 0.0) for n in graph.nodes}
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    return getattr(nx, f"{layout}_layout")(graph)


def plot_graph(source: Any, *, module: str | int | None = None, step: str | None = None,
               sample: int = 0, select: Sequence[int] | None = None,
               head: int | str = "mean", node_names: Sequence[Any] | None = None,
               pos: Mapping[int, tuple[float, float]] | None = None, layout: str = "spring",
               top_k: int | None = None, into: int | None = None, min_weight: float = 0.0,
               cmap: Any = "viridis",
               seed: int = 0, title: str | None = None,
               figsize: tuple[float, float] = (6.4, 5.6), dpi: float = 150,
               path: str | os.PathLike | None = None) -> Figure:
    """The attention graph: arrows ``src->dst`` whose width and colour give the weight.

    Example:
        >>> fig = plot_graph(rec, module="conv1", head="mean", node_names=stations,
        ...                  top_k=40, path="graph.pdf")

    Args:
        pos: node positions (e.g. station coordinates); else ``layout``: ``"spring"``,
            ``"circular"``, ``"kamada_kawai"``, ``"shell"`` or ``"line"`` (time steps).
        top_k: draw only the strongest edges (self loops excluded), for dense graphs.
        into: draw only the edges into this destination node (what it listens to).
        min_weight: hide edges lighter than this.
    """
    import networkx as nx
    from matplotlib.cm import ScalarMappable

    g = read_graph(source, module, step, sample, select)
    w, what = edge_weights(g, head)
    src, dst = (int_array.tolist() for int_array in g.edge_index)
    if into is not None:
        check_node(into, g.edge_index)
        what = f"into {name_of(into, node_names)} \u00b7 {what}".rstrip(" \u00b7")
    n = int(g.edge_index.max()) + 1 if g.edge_index.size else 0
    loops = np.full(n, np.nan)
    edges = []
    for s, d, x in zip(src, dst, w.tolist()):
        if s == d:
            loops[s] = x
        elif x >= min_weight and (into is None or d == into):
            edges.append((s, d, x))
    edges.sort(key=lambda e: -e[2])
    shown = edges[:top_k] if top_k else edges
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(shown)
    xy = dict(pos) if pos is not None else _layout(nx, graph, layout, seed)
    fig = _figure.new_figure(figsize, dpi)
    ax = fig.add_subplot()
    cm = _figure.colormap(cmap)
    top = max([e[2] for e in shown] + [np.nanmax(loops) if np.isfinite(loops).any() else 0])
    norm = _figure.make_norm("linear", 0.0, float(top) or 1.0)
    weights = np.array([e[2] for e in shown])
    nx.draw_networkx_edges(
        graph, xy, ax=ax, edgelist=[(s, d) for s, d, _ in shown],
        width=list(0.4 + 3.6 * weights / (top or 1.0)), edge_color=list(cm(norm(weights))),
        arrows=True, arrowsize=9, connectionstyle="arc3,rad=0.12", node_size=420)
    face = [cm(norm(v)) if np.isfinite(v) else "white" for v in loops]
    nx.draw_networkx_nodes(graph, xy, ax=ax, node_color=face, edgecolors="0.2",
                           linewidths=0.8, node_size=420)
    text = {i: name_of(i, node_names) for i in range(n)}
    for i, (x, y) in xy.items():  # names under the node: fills stay readable
        ax.annotate(text[i], (x, y), xytext=(0, -13), textcoords="offset points",
                    ha="center", va="top", fontsize=7, zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.7})
    ax.set_axis_off()
    ax.margins(0.08)
    fig.colorbar(ScalarMappable(norm, cm), ax=ax, shrink=0.8,
                 label="attention weight (edges; node fill = self loop)")
    extra = f" \u00b7 top {len(shown)} of {len(edges)} edges" if top_k else ""
    ax.set_title(title or graph_title(g, (what + extra).strip(" \u00b7")), fontsize=10)
    return _figure.save(fig, path, dpi)
