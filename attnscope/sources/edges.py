"""One sample of a graph (edge) map, from a store, a Recording or a map, with its leading
dims named (node, time, channel, epoch, ``dim<i>``) and the graph's own nodes labelled
from the step's labels.

Example:
    >>> from attnscope.sources import read_graph
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

from attnscope.errors import SelectionError
from attnscope.maps import Recording
from attnscope.sources.base import as_source, is_store, recording_maps, store_step, to_numpy
from attnscope.sources.index import pick_name
from attnscope.sources.index import positions as index_positions
from attnscope.sources.labels import sample_labels
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
    labels: dict[str, Any] = field(default_factory=dict)  # this sample's (sample_labels)

    @property
    def num_nodes(self) -> int:
        return int(self.edge_index.max()) + 1 if self.edge_index.size else 0


def graph_sample(source: Any, module: str | int | None = None, step: str | None = None,
                 sample: int = 0, labels: Mapping[str, Any] | None = None) -> Graph:
    """One graph sample with every leading dim kept: weights ``(..., edge, head)``.

    ``labels`` (``{"nodes": [...], "time_steps": [...]}``) name the dims of a Recording or
    map; a store's own step labels are used for its entries (``labels`` update them)."""
    source = as_source(source)
    if is_store(source):
        name = pick_name(list(source.modules), module)
        if not source.module_info(name).get("graph"):
            raise SelectionError(f"{name!r} holds dense maps, not edge weights")
        step = store_step(source, name, step)
        total = source.num_samples(name, step)
        sample = int(index_positions(sample, total, "sample", repr(name))[0])
        w = source.read(name, step=step, samples=[sample])[0]
        ei = np.asarray(source.edge_index(name, step=step, sample=sample))
        w = w[..., : ei.shape[1], :]
        found = {**source.labels(step), **(labels or {})}
        axes = source.axes(name, step) if not labels else \
            resolve([a.name for a in source.axes(name, step)], w.shape[:-2], found,
                    _nodes(ei), name)
        g = Graph(w, ei, name, step, sample, axes=axes,
                  labels=sample_labels(source.labels(step), sample, total))
        return _finish(g, found)
    if not isinstance(source, Recording):
        raise TypeError("graph views need an AttentionMap, a Recording or a store")
    name, maps = recording_maps(source, module)
    seen = 0
    for m in maps:
        if not m.is_graph:
            raise SelectionError(f"{name or '<root>'!r} holds dense maps, not edge weights; "
                                 "use plot_heatmap")
        w = to_numpy(m.weights)
        rows = [w] if w.ndim == 2 else list(w)
        if 0 <= sample - seen < len(rows):
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
