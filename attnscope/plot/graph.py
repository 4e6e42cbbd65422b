"""Graph attention drawn as the graph: edge width and colour by weight (networkx layout).

Self loops are not drawn as arcs (they hide under the node); the node's colour shows its
self-loop weight on the same colour scale instead, and they rank among the top-k edges
exactly as in :func:`~attnscope.plot.plot_top_edges`. Small graphs get a layout whose
nodes do not overlap; temporal graphs a line of time steps with edges as arcs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure
from attnscope.plot.edges import check_node, edge_weights, graph_title, name_of
from attnscope.sources import Select, read_graph

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LAYOUTS = ("auto", "spring", "circular", "kamada_kawai", "shell", "line")
ARC = -0.35  # arc3 bend of line-layout edges: forward in time above, backward below


def _layout(nx: Any, graph: Any, layout: str, seed: int) -> dict[int, tuple[float, float]]:
    """Node positions; a force layout whose nodes would crowd (two closer than 15% of
    the drawing's extent, common with few nodes or disconnected parts) becomes circular."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if layout == "line":  # temporal graphs: time steps left to right
        return {n: (float(n), 0.0) for n in graph.nodes}
    if layout == "spring":
        xy = nx.spring_layout(graph, seed=seed)
    else:
        xy = getattr(nx, f"{layout}_layout")(graph)
    if layout in ("spring", "kamada_kawai") and _crowded(xy):
        xy = nx.circular_layout(graph)
    return {k: (float(v[0]), float(v[1])) for k, v in xy.items()}


def _crowded(xy: Mapping[int, Any]) -> bool:
    pts = np.array(list(xy.values()), dtype=float)
    if len(pts) < 2:
        return False
    extent = float(np.ptp(pts, axis=0).max()) or 1.0
    gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * extent
    return bool(gaps.min() < 0.15 * extent)  # room for two discs and a name between


def _line_size(edges: list[tuple[int, int, float]], n: int) -> tuple[float, float]:
    """Figure size of a line layout: wide enough for the names, tall enough for arcs
    of a readable bend over the longest span forward (above) and backward (below)."""
    width = max(6.4, 0.6 * n)
    up = max([d - s for s, d, _ in edges if d > s], default=0)
    down = max([s - d for s, d, _ in edges if s > d], default=0)
    arcs = 0.5 * abs(ARC) * (up + down) * width * 0.8 / max(n, 1)  # inches at ARC
    return width, float(np.clip(arcs + 2.2, 3.0, 9.0))  # + names, title and colour bar


def _fit_arcs(fig: Any, ax: Any, edges: list[tuple[int, int, float]], n: int) -> float:
    """Bend of the arcs so the longest fills the height the axes got (arcs are drawn in
    display space); sets the y-limits so the time line sits between the arcs above
    (forward in time) and below (backward), with room for the names under it."""
    fig.get_layout_engine().execute(fig)
    box = ax.get_position()
    w_in, h_in = box.width * fig.get_figwidth(), box.height * fig.get_figheight()
    up = max([d - s for s, d, _ in edges if d > s], default=0)
    down = max([s - d for s, d, _ in edges if s > d], default=0)
    names, pad = 0.32, 0.12  # inches under the line for names, above the highest arc
    free = max(h_in - names - 2 * pad, 0.2)
    per_step = w_in / (n + 0.6)  # inches between neighbouring time steps
    bend = 2 * free / max((up + down) * per_step, 1e-9)
    bend = float(min(bend, 0.9))
    below = names + pad + 0.5 * bend * down * per_step
    frac = below / h_in
    ax.set_ylim(-frac, 1 - frac)
    return -bend


def plot_graph(source: Any, *, module: str | int | None = None, step: str | None = None,
               sample: int = 0, select: Select = None,
               head: int | str = "mean", node_names: Sequence[Any] | None = None,
               labels: Mapping[str, Any] | None = None,
               pos: Mapping[int, tuple[float, float]] | None = None, layout: str = "auto",
               top_k: int | None = None, into: int | None = None, min_weight: float = 0.0,
               cmap: Any = "viridis",
               seed: int = 0, title: str | None = None,
               figsize: tuple[float, float] | None = None, dpi: float = 150,
               path: str | os.PathLike | None = None) -> Figure:
    """The attention graph: arrows ``src->dst`` whose width and colour give the weight.

    Example:
        >>> fig = plot_graph(rec, module="conv1", head="mean", node_names=stations,
        ...                  top_k=40, path="graph.pdf")

    Args:
        select: positions of the dims between sample and ``(edge, head)`` by name
            (``{"node": 3}``) or one index per dim (dims not named: position 0).
        node_names: node labels (default: the step's ``nodes``/``time_steps`` that fit);
            ``labels``: such lists for maps that are not in a store.
        pos: node positions (e.g. station coordinates); else ``layout``: ``"auto"``
            (``"line"`` for temporal graphs, else ``"kamada_kawai"`` up to 60 nodes and
            ``"spring"`` above), ``"spring"``, ``"circular"``, ``"kamada_kawai"``,
            ``"shell"`` or ``"line"`` (time steps left to right, edges as arcs).
        top_k: draw only the strongest edges, ranked like :func:`plot_top_edges`: self
            loops count as edges (a ranked self loop fills its node).
        into: draw only the edges into this destination node (what it listens to).
        min_weight: hide edges lighter than this.
    """
    import networkx as nx
    from matplotlib.cm import ScalarMappable

    g = read_graph(source, module, step, sample, select, labels)
    node_names = node_names if node_names is not None else g.node_names
    w, what = edge_weights(g, head)
    src, dst = (int_array.tolist() for int_array in g.edge_index)
    if into is not None:
        check_node(into, g.edge_index)
        what = f"into {name_of(into, node_names)} \u00b7 {what}".rstrip(" \u00b7")
    n = g.num_nodes
    ranked = sorted(((s, d, x) for s, d, x in zip(src, dst, w.tolist())
                     if x == x and x >= min_weight and (into is None or d == into)),
                    key=lambda e: -e[2])  # NaN (padding) never ranks
    chosen = ranked[:top_k] if top_k else ranked
    loops = np.full(n, np.nan)
    for s, d, x in chosen:
        if s == d:
            loops[s] = x
    shown = [e for e in chosen if e[0] != e[1]]
    if layout == "auto":
        layout = "line" if g.node_kind == "time" else "kamada_kawai" if n <= 60 else "spring"
    line = pos is None and layout == "line"
    frame = nx.Graph()  # positions from every edge, so they stay put whatever is shown
    frame.add_nodes_from(range(n))
    frame.add_edges_from((s, d) for s, d in zip(src, dst) if s != d)
    xy = dict(pos) if pos is not None else _layout(nx, frame, layout, seed)
    fig = _figure.new_figure(figsize or (_line_size(shown, n) if line else (6.4, 5.6)), dpi)
    ax = fig.add_subplot()
    ax.set_axis_off()
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(shown)
    cm = _figure.colormap(cmap)
    top = max([e[2] for e in chosen], default=0.0)
    norm = _figure.make_norm("linear", 0.0, float(top) or 1.0)
    weights = np.array([e[2] for e in shown])
    node_size = 420 if n <= 40 else 180
    fig.colorbar(ScalarMappable(norm, cm), ax=ax, shrink=0.8,
                 orientation="horizontal" if line else "vertical", fraction=0.05,
                 label="attention weight (edges; node fill = self loop)")
    extra = f" \u00b7 top {len(chosen)} of {len(ranked)} edges" if top_k else ""
    ax.set_title(title or graph_title(g, (what + extra).strip(" \u00b7")), fontsize=10)
    bend, limits = 0.12, None
    if line:  # arcs fill the height the axes got; the rest of the layout is fixed first
        ax.set_xlim(-0.8, n - 0.2)
        bend = _fit_arcs(fig, ax, shown, n)
        limits = ax.get_xlim(), ax.get_ylim()
    nx.draw_networkx_edges(
        graph, xy, ax=ax, edgelist=[(s, d) for s, d, _ in shown],
        width=list(0.6 + 3.4 * weights / (top or 1.0)), edge_color=list(cm(norm(weights))),
        arrows=True, arrowstyle="-|>", arrowsize=16 if into is not None else 12,
        connectionstyle=f"arc3,rad={bend}", node_size=node_size)
    face = [cm(norm(v)) if np.isfinite(v) else "white" for v in loops]
    nx.draw_networkx_nodes(graph, xy, ax=ax, node_color=face, edgecolors="0.2",
                           linewidths=0.8, node_size=node_size)
    text = {i: name_of(i, node_names) for i in range(n)}
    for i, (x, y) in xy.items():  # names under the node: fills stay readable
        ax.annotate(text[i], (x, y), xytext=(0, -13), textcoords="offset points",
                    ha="center", va="top", fontsize=7, zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.7})
    if limits is not None:  # networkx rescales the axes to the nodes: put them back
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    else:
        ax.margins(0.08)
    return _figure.save(fig, path, dpi)
