"""``attnscope plot --kind graph``: top-k edges, the drawn graph and the dense matrix of
one graph entry, for one node or time step of spatio-temporal (SPIN-style) maps.

A graph entry is either *spatial* (edges between nodes; weights may carry a time dim)
or *temporal* (edges between time steps; weights may carry a node dim). The entry's
named dims (:meth:`attnscope.store.reader.Store.axes`, from the step's labels) say
which, else ``--graph-axis``. ``--node`` then picks the node dim of a temporal graph or
the destination row of a spatial one, ``--time-step`` the other way round; ``--axis
NAME=I`` picks any other dim (channel, epoch, ``dim2``); dims not picked show position 0.
"""

from __future__ import annotations

import re
from typing import Any

from attnscope.errors import SelectionError

AXES = ("auto", "node", "time")


def parse_axes(items: list[str] | None) -> dict[str, int | list[int]]:
    """``["channel=2", "node=0,3"]`` -> ``{"channel": 2, "node": [0, 3]}`` (one-line
    errors); several positions are for exports, a figure takes one."""
    out: dict[str, int | list[int]] = {}
    for item in items or []:
        found = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*=\s*(-?\d+(?:,-?\d+)*)\s*", item)
        if not found:
            raise SelectionError(f"--axis must look like NAME=INDEX (e.g. channel=2), not "
                                 f"{item!r}")
        values = [int(v) for v in found.group(2).split(",")]
        out[found.group(1)] = values[0] if len(values) == 1 else values
    return out


def graph_figures(store: Any, name: str, step: str, sample: int, head: int | str,
                  node: int | None, time_step: int | None, top_k: int | None,
                  axis: str, opts: dict[str, Any], stem: str,
                  picks: dict[str, int] | None = None) -> list[tuple[str, Any]]:
    """(file stem, figure) pairs for one graph entry."""
    from attnscope import plot
    from attnscope.sources import graph_sample, read_graph
    from attnscope.store.axes import node_kind

    if axis not in AXES:
        raise SelectionError(f"--graph-axis must be one of {', '.join(AXES)}, not {axis!r}")
    g = graph_sample(store, name, step, sample)
    n = g.num_nodes
    kind = node_kind(store.labels(step), n, g.axes, axis)
    # one selector picks a leading dim, the other the destination row
    pick, into = (node, time_step) if kind == "time" else (time_step, node)
    pick_name, into_name = ("--node", "--time-step") if kind == "time" else \
        ("--time-step", "--node")
    dim = "node" if kind == "time" else "time"
    select = dict(picks or {})
    several = [k for k, v in select.items() if isinstance(v, list)]
    if several:
        raise SelectionError(f"--axis {several[0]}= takes one position for a figure, not "
                             f"{','.join(map(str, select[several[0]]))}")
    if pick is not None:
        names = [a.name for a in g.axes]
        if dim not in names:
            what = "time steps" if kind == "time" else "nodes"
            have = f"its dims are {', '.join(names)} (pick them with --axis NAME=I)" \
                if names else "it has no dim besides sample, edge and head"
            raise SelectionError(f"{pick_name} needs a {'node' if dim == 'node' else 'time'} "
                                 f"dim: {name!r} is one graph of {what} per sample and "
                                 f"{have}; use {into_name} for the destination")
        select[dim] = pick
    if into is not None and not -n <= into < n:
        raise SelectionError(f"{into_name} {into} out of range: the graph has {n} "
                             f"{'time steps' if kind == 'time' else 'nodes'} (0..{n - 1})")
    into = None if into is None else into % n
    sel = {"module": name, "step": step, "sample": sample, "select": select, "head": head}
    read_graph(store, name, step, sample, select)  # bad picks fail before any drawing
    tag = [f"{'node' if a == 'node' else 't' if a == 'time' else a}{i % _size(g, a)}"
           for a, i in select.items()]
    base = "_".join([stem, *tag, *([f"into{into}"] if into is not None else [])])
    k = top_k if top_k is not None else (n if into is not None else 20)
    layout = {"layout": "line"} if kind == "time" else {}
    return [
        (base + "_top-edges", plot.plot_top_edges(store, **sel, k=k, into=into,
                                                 dpi=opts["dpi"])),
        (base + "_graph", plot.plot_graph(store, **sel, top_k=top_k, into=into, **layout,
                                          cmap=opts["cmap"], dpi=opts["dpi"])),
        (base + "_matrix", plot.plot_edge_matrix(
            store, **sel, into=into, axis_name="time step" if kind == "time" else "node",
            **opts)),
    ]


def _size(g: Any, name: str) -> int:
    return next(a.size for a in g.axes if a.name == name)
