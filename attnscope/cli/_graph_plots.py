"""``attnscope plot --kind graph``: top-k edges, the drawn graph and the dense matrix of
one graph entry, for one node or time step of spatio-temporal (SPIN-style) maps.

A graph entry is either *spatial* (edges between nodes; weights may carry a time-step
dim) or *temporal* (edges between time steps; weights may carry a node dim). Which one
is read from the step's labels (``time_steps`` / ``nodes`` whose length matches the
graph) unless ``--graph-axis`` says so. ``--time-step`` then picks the time dim of a
spatial map or the destination row of a temporal one; ``--node`` the other way round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.errors import SelectionError

AXES = ("auto", "node", "time")


def graph_axis(labels: dict[str, Any], num_nodes: int, wanted: str = "auto") -> str:
    """``"time"`` when the graph's nodes are time steps, else ``"node"``."""
    if wanted not in AXES:
        raise SelectionError(f"--graph-axis must be one of {', '.join(AXES)}, not {wanted!r}")
    if wanted != "auto":
        return wanted
    times, nodes = labels.get("time_steps"), labels.get("nodes")
    fits = (lambda v: isinstance(v, list) and len(v) == num_nodes)  # noqa: E731
    return "time" if fits(times) and not fits(nodes) else "node"


def graph_figures(store: Any, name: str, step: str, sample: int, head: int | str,
                  node: int | None, time_step: int | None, top_k: int | None,
                  axis: str, opts: dict[str, Any], stem: str) -> list[tuple[str, Any]]:
    """(file stem, figure) pairs for one graph entry."""
    from attnscope import plot

    total = store.num_samples(name, step)
    if not -total <= sample < total:
        raise SelectionError(f"sample {sample} out of range: {name!r} has {total} in {step!r}")
    edge_index = np.asarray(store.edge_index(name, step=step, sample=sample % total))
    n = int(edge_index.max()) + 1 if edge_index.size else 0
    lead = store.read(name, step=step, samples=[sample]).shape[1:-2]
    labels = store.labels(step)
    axis = graph_axis(labels, n, axis)
    # one selector picks the leading dim, the other the destination row
    pick, into = (node, time_step) if axis == "time" else (time_step, node)
    pick_name, into_name = ("--node", "--time-step") if axis == "time" else \
        ("--time-step", "--node")
    if len(lead) > 1:
        raise SelectionError(f"{name!r} has {len(lead)} leading dims {tuple(lead)} before "
                             "(edge, head); use attnscope.graph.dense_map in Python")
    select = None
    if lead:
        i = 0 if pick is None else pick
        if not -lead[0] <= i < lead[0]:
            raise SelectionError(f"{pick_name} {i} out of range: {name!r} has {lead[0]}")
        select = [i % lead[0]]
    elif pick is not None:
        other = "node" if axis == "time" else "time"
        raise SelectionError(f"{pick_name} needs a map with a {other} dim; {name!r} is one "
                             f"{axis} graph per sample (use {into_name})")
    if into is not None and not -n <= into < n:
        raise SelectionError(f"{into_name} {into} out of range: the graph has {n} "
                             f"{'time steps' if axis == 'time' else 'nodes'}")
    into = None if into is None else into % n
    names = _names(labels, axis, n)
    tag = [f"t{select[0]}" if axis == "node" else f"node{select[0]}"] if select else []
    tag += [f"into{into}"] if into is not None else []
    base = "_".join([stem, *tag])
    sel = {"module": name, "step": step, "sample": sample, "select": select, "head": head,
           "node_names": names}
    k = top_k if top_k is not None else (n if into is not None else 20)
    line = {"layout": "line", "figsize": (max(6.4, 0.9 * n), 4.6)} if axis == "time" else {}
    figures = [
        (base + "_top-edges", plot.plot_top_edges(store, **sel, k=k, into=into,
                                                 dpi=opts["dpi"])),
        (base + "_graph", plot.plot_graph(store, **sel, top_k=top_k, into=into, **line,
                                          **opts)),
        (base + "_matrix", plot.plot_edge_matrix(store, **sel, into=into,
                                                 axis_name="time step" if axis == "time"
                                                 else "node", **opts)),
    ]
    if select:  # "name[2]" reads like a call index: say which node / time step it is
        what = f"node {select[0]}" if axis == "time" else f"time step {select[0]}"
        for _, fig in figures:
            ax = fig.axes[0]
            ax.set_title(ax.get_title().replace(f"{name}[{select[0]}]",
                                                f"{name} \u00b7 {what}", 1), fontsize=10)
    return figures


def _names(labels: dict[str, Any], axis: str, n: int) -> list[str] | None:
    found = labels.get("time_steps" if axis == "time" else "nodes")
    return [str(v) for v in found] if isinstance(found, list) and len(found) == n else None
