"""Graph attention read from its edges: the top-k edges ranked, and the dense node x node
(or time x time) matrix rebuilt from edges with absent edges masked, not zero."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import SelectionError
from attnscope.plot import _figure, _matrix, _ticks
from attnscope.sources import Graph, Select, head_positions, read_graph

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def edge_weights(g: Graph, head: int | str) -> tuple[np.ndarray, str]:
    """``(edge,)`` weights of one head or the head mean, and a title fragment."""
    if head == "mean" and g.weights.shape[-1] == 1:
        return g.weights[:, 0], ""
    if head == "mean":
        return np.nanmean(g.weights, axis=-1), f"mean of {g.weights.shape[-1]} heads"
    h = head_positions(head, g.weights.shape[-1])[0]
    return g.weights[:, h], f"head {h}"


def graph_title(g: Graph, what: str) -> str:
    first = f"{g.module or '<root>'}{g.where}"
    line = " \u00b7 ".join(p for p in (g.step, f"sample {g.sample}", what) if p)
    return f"{first}\n{line}"


def check_node(node: int, edge_index: np.ndarray) -> None:
    """A one-line :class:`SelectionError` for a node the graph does not have."""
    n = int(np.max(edge_index)) + 1 if np.size(edge_index) else 0
    if not 0 <= node < n:
        raise SelectionError(f"node {node} out of range: the graph has nodes 0..{n - 1}")


def name_of(node: int, node_names: Sequence[Any] | None) -> str:
    return _ticks.clean(node_names[node], 12) if node_names is not None else str(node)


def dense_from_edges(edge_index: np.ndarray, weights: np.ndarray, num_nodes: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(query, key)`` matrix (row = destination, column = source) and its edge mask.

    Duplicate edges add up; cells without an edge are NaN (see :func:`attnscope.graph.to_dense`).
    """
    from attnscope.graph import to_dense

    dense, present = to_dense(np.asarray(weights, dtype=np.float32)[:, None], edge_index,
                              num_nodes)
    return dense[0], present


def plot_top_edges(source: Any, *, module: str | int | None = None, step: str | None = None,
                   sample: int = 0, select: Select = None,
                   head: int | str = "mean", k: int = 20, into: int | None = None,
                   node_names: Sequence[Any] | None = None,
                   labels: Mapping[str, Any] | None = None, self_loops: bool = True,
                   color: str = "tab:blue", title: str | None = None,
                   figsize: tuple[float, float] | None = None, dpi: float = 150,
                   path: str | os.PathLike | None = None) -> Figure:
    """The ``k`` strongest edges as a ranked horizontal bar chart labelled ``src->dst``.

    Example:
        >>> fig = plot_top_edges(rec, module="conv1", k=15, node_names=stations)

    Args:
        source: a graph AttentionMap, a Recording or a store.
        select: positions of the dims between sample and ``(edge, head)``, by name
            (``{"node": 3}``) or one index per dim; dims not named take position 0.
        head: head position or ``"mean"`` (the mean of the heads only).
        node_names: the graph's node labels (default: the step's ``nodes`` or
            ``time_steps`` list that fits); ``labels``: such lists for maps not in a store.
        into: rank only the edges into this destination node (what it listens to).
        self_loops: include ``i->i`` edges in the ranking.
    """
    g = read_graph(source, module, step, sample, select, labels)
    node_names = node_names if node_names is not None else g.node_names
    w, what = edge_weights(g, head)
    src, dst = g.edge_index
    w = w[: len(src)]  # a store pads edges to the longest batch
    keep = ~np.isnan(w) & (True if self_loops else src != dst)  # NaN: padding
    if into is not None:
        check_node(into, g.edge_index)
        keep &= dst == into
        what = f"into {name_of(into, node_names)} \u00b7 {what}".rstrip(" \u00b7")
    order = [i for i in np.argsort(np.nan_to_num(w, nan=-1.0))[::-1] if keep[i]][:k]
    ticks = [f"{name_of(src[i], node_names)}->{name_of(dst[i], node_names)}" for i in order]
    fig = _figure.new_figure(figsize or (6.0, 1.2 + 0.22 * len(order)), dpi)
    ax = fig.add_subplot()
    y = np.arange(len(order))
    ax.barh(y, w[order], color=color, alpha=0.85, zorder=2)
    ax.set_yticks(y, ticks, fontsize=8 if len(order) <= 30 else 6)
    ax.invert_yaxis()  # rank 1 on top
    for yi, i in zip(y, order):
        ax.annotate(f"{w[i]:.3f}", (w[i], yi), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_xlim(0, float(np.nanmax(w[order])) * 1.15 if order else 1)
    ax.set_xlabel("attention weight (share of the destination's incoming attention)")
    ax.grid(axis="x", alpha=0.3, zorder=0)
    what = f"top {len(order)} of {int(keep.sum())} edges \u00b7 {what}".rstrip(" \u00b7")
    ax.set_title(title or graph_title(g, what), fontsize=10)
    return _figure.save(fig, path, dpi)


def plot_edge_matrix(source: Any, *, module: str | int | None = None, step: str | None = None,
                     sample: int = 0, select: Select = None,
                     head: int | str = "mean", num_nodes: int | None = None,
                     into: int | None = None, node_names: Sequence[Any] | None = None,
                     labels: Mapping[str, Any] | None = None, axis_name: str | None = None,
                     cmap: Any = "viridis", norm: Any = "linear", vmax: float | None = None,
                     title: str | None = None, figsize: tuple[float, float] | None = None,
                     dpi: float = 150, path: str | os.PathLike | None = None) -> Figure:
    """Dense destination x source matrix rebuilt from edges; cells without an edge are
    masked, so full, causal and max-distance temporal graphs show their true shape.

    Example:
        >>> fig = plot_edge_matrix(rec, module="temporal", axis_name="time step")

    ``into`` frames the row of one destination node (what it listens to); ``axis_name``
    defaults to ``"time step"`` for temporal graphs, else ``"node"``.
    """
    g = read_graph(source, module, step, sample, select, labels)
    node_names = node_names if node_names is not None else g.node_names
    axis_name = axis_name or ("time step" if g.node_kind == "time" else "node")
    w, what = edge_weights(g, head)
    dense, present = dense_from_edges(g.edge_index, w[: g.edge_index.shape[1]], num_nodes)
    if into is not None:
        check_node(into, g.edge_index)
    n = dense.shape[0]
    labelled = node_names is not None
    side = min(14.0, max(4.8, _ticks.inches_needed(n) + 2.6)) if labelled else 5.6
    fig = _figure.new_figure(figsize or (side + 0.8, side), dpi)
    ax = fig.add_subplot()
    im = _matrix.draw_matrix(ax, dense, mask=~present, cmap=cmap, norm=norm, vmax=vmax,
                             max_pixels=(int(side * 0.8 * dpi),) * 2)
    names = list(node_names) if labelled else None
    _ticks.set_labels(ax, "x", names, n, side * 0.72, f"source {axis_name} (key)")
    _ticks.set_labels(ax, "y", names, n, side * 0.72, f"destination {axis_name} (query)")
    if into is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((-0.5, into - 0.5), n, 1, fill=False, ec="red", lw=1.2,
                               zorder=4))
        what = f"row {name_of(into, node_names)} framed \u00b7 {what}".rstrip(" \u00b7")
    fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02, label="attention weight")
    note = _matrix.block_note(im.attnscope_block, (n, n))
    head_title = title or graph_title(g, f"{w.shape[0]} edges \u00b7 {what}".rstrip(" \u00b7"))
    ax.set_title(head_title + (f"\n{note}" if note else ""), fontsize=10)
    fig.legend(handles=[_figure.mask_legend_handle()], labels=["no edge"],
               loc="outside lower right", fontsize=7, frameon=False)
    return _figure.save(fig, path, dpi)
