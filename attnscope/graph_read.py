"""One sample of a graph entry as plain NumPy, from a store, a Recording or a map, with
its leading dims named (node, time, channel, epoch, ``dim<i>``) and the graph's own
nodes labelled from the step's labels.

Example:
    >>> from attnscope.graph_read import read_graph
    >>> g = read_graph(store, "encoder.temporal", "test", sample=0, select={"node": 3})
    >>> g.weights.shape, g.where       # (edge, head), " · node s3"

Figures and :func:`attnscope.graph.dense_map` read through here, so a leading index is
always shown by its axis and label ("node s3", "time step 7"), never as ``name[7]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.entries import parse_entry
from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording
from attnscope.store.axes import Axis, node_kind, node_names, positions, resolve
from attnscope.store.errors import StoreError

Select = Sequence[int] | Mapping[str, int] | None


@dataclass
class Graph:
    """One sample of one graph map.

    Attributes:
        weights: ``(..., edge, head)``; ``axes`` names the leading dims left.
        edge_index: ``(2, edge)``.
        node_kind: what the graph's nodes are: ``"node"`` (spatial graph) or ``"time"``
            (temporal graph: edges between time steps).
        node_names: labels of the graph's nodes from the step's labels, or None.
        where: the leading positions picked, for titles (``" · node s3"``).
    """

    weights: np.ndarray
    edge_index: np.ndarray
    module: str = ""
    step: str | None = None
    sample: int = 0
    where: str = ""
    axes: list[Axis] = field(default_factory=list)
    node_kind: str = "node"
    node_names: list[str] | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.edge_index.max()) + 1 if self.edge_index.size else 0


def graph_sample(source: Any, module: str | int | None = None, step: str | None = None,
                 sample: int = 0, labels: Mapping[str, Any] | None = None) -> Graph:
    """One graph sample with every leading dim kept: weights ``(..., edge, head)``.

    ``labels`` (``{"nodes": [...], "time_steps": [...]}``) name the dims of a Recording or
    map; a store's own step labels are used for its entries (``labels`` update them)."""
    from attnscope.plot import pick_module  # one way to name a module, with its errors

    if all(hasattr(source, a) for a in ("read", "modules", "steps", "axes")):  # a store
        name = pick_module(list(source.modules), module)
        if not source.module_info(name).get("graph"):
            raise SelectionError(f"{name!r} holds dense maps, not edge weights")
        total = source.num_samples(name, step)
        if not -total <= sample < total:
            raise SelectionError(f"sample {sample} out of range: {name!r} has {total}")
        w = source.read(name, step=step, samples=[sample])[0]
        ei = np.asarray(source.edge_index(name, step=step, sample=sample % total))
        step = step if step is not None else \
            next(s for s in source.steps if source.segments(name, s))
        found = {**source.labels(step), **(labels or {})}
        axes = source.axes(name, step) if not labels else \
            resolve([a.name for a in source.axes(name, step)], w.shape[:-2], found,
                    _nodes(ei), name)
        return _finish(Graph(w, ei, name, step, sample, axes=axes), found)
    if isinstance(source, Recording):
        names = list(dict.fromkeys(m.entry for m in source.maps))
        name = pick_module(names, module)
        base, call, _ = parse_entry(name)
        maps = [m for m in source.maps if m.module == base and m.call_index == call]
    elif isinstance(source, AttentionMap):
        name, maps = source.module, [source]
    else:
        raise TypeError("graph views need an AttentionMap, a Recording or a store")
    seen = 0
    for m in maps:
        if not m.is_graph:
            raise SelectionError(f"{name or '<root>'!r} holds dense maps, not edge weights; "
                                 "use plot_heatmap")
        w = m.weights.detach().cpu().float().numpy()
        rows = [w] if w.ndim == 2 else list(w)
        if sample < seen + len(rows):
            ei = m.edge_index.cpu().numpy()
            row = rows[sample - seen]
            axes = resolve(list(m.dims[1:-2]), row.shape[:-2], labels or {}, _nodes(ei), name)
            return _finish(Graph(row, ei, name, sample=sample, axes=axes), labels or {})
        seen += len(rows)
    raise SelectionError(f"sample {sample} out of range: {name!r} has {seen} samples")


def read_graph(source: Any, module: str | int | None = None, step: str | None = None,
               sample: int = 0, select: Select = None,
               labels: Mapping[str, Any] | None = None) -> Graph:
    """One graph sample at one position of its leading dims: weights ``(edge, head)``.

    ``select``: ``{"node": 3}`` by axis name, or one index per leading dim; dims not
    named take position 0 (and the title says which)."""
    return pick_positions(graph_sample(source, module, step, sample, labels), select)


def pick_positions(g: Graph, select: Select) -> Graph:
    """Index every leading dim of ``g`` (default: position 0 of each)."""
    if not g.axes:
        if select:
            raise SelectionError(f"{g.module!r} has no dims between sample and (edge, head) "
                                 "to select")
        return g
    if select is None or isinstance(select, Mapping):
        try:
            idx = positions(g.axes, dict(select or {}))
        except StoreError as err:
            raise SelectionError(str(err)) from None
        idx = tuple(0 if isinstance(i, slice) else int(np.atleast_1d(i)[0]) for i in idx)
    else:
        idx = tuple(int(i) for i in select)
        if len(idx) != len(g.axes):
            raise SelectionError(f"weights have {len(g.axes)} leading dims "
                                 f"{tuple(a.name for a in g.axes)}; pass select= with "
                                 f"{len(g.axes)} indices or {{name: index}}")
        for i, a in zip(idx, g.axes):
            if not -a.size <= i < a.size:
                raise SelectionError(f"{a.name} {i} out of range: the axis has {a.size}")
        idx = tuple(i % a.size for i, a in zip(idx, g.axes))
    g.weights = g.weights[idx]
    g.where = "".join(f" \u00b7 {a.text(i)}" for a, i in zip(g.axes, idx))
    g.axes = []
    return g


def _finish(g: Graph, labels: Mapping[str, Any]) -> Graph:
    g.node_kind = node_kind(labels, g.num_nodes, g.axes)
    g.node_names = node_names(labels, g.node_kind, g.num_nodes)
    return g


def _nodes(edge_index: np.ndarray) -> int:
    return int(edge_index.max()) + 1 if edge_index.size else 0
