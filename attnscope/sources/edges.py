"""One sample of one graph (edge) map, from a Recording, an AttentionMap or a store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.errors import SelectionError
from attnscope.maps import Recording
from attnscope.sources.base import as_source, is_store, recording_maps, store_step, to_numpy
from attnscope.sources.index import pick_name, positions
from attnscope.sources.labels import sample_labels


@dataclass
class Graph:
    """One sample of one graph map: ``weights`` ``(edge, head)`` (or ``(..., edge,
    head)`` before the leading dims are chosen), ``edge_index`` ``(2, edge)``."""

    weights: np.ndarray
    edge_index: np.ndarray
    module: str = ""
    step: str | None = None
    sample: int = 0
    where: str = ""
    labels: dict[str, Any] = field(default_factory=dict)  # this sample's (sample_labels)


def read_graph(source: Any, module: str | int | None = None, step: str | None = None,
               sample: int = 0, select: Sequence[int] | None = None) -> Graph:
    """One graph sample: ``sample`` indexes calls (or the first leading dim of weights
    shaped ``(batch, ..., edge, head)``); ``select`` picks the other leading dims."""
    return lead(graph_sample(source, module, step, sample), select)


def graph_sample(source: Any, module: str | int | None = None, step: str | None = None,
                 sample: int = 0) -> Graph:
    """One graph sample with every leading dim kept: weights ``(..., edge, head)``."""
    source = as_source(source)
    if is_store(source):
        name = pick_name(list(source.modules), module)
        if not source.module_info(name).get("graph"):
            raise SelectionError(f"{name!r} holds dense maps, not edge weights")
        step = store_step(source, name, step)
        total = source.num_samples(name, step)
        sample = int(positions(sample, total, "sample", repr(name))[0])
        w = source.read(name, step=step, samples=[sample])[0]
        ei = np.asarray(source.edge_index(name, step=step, sample=sample))
        labels = sample_labels(source.labels(step), sample, total)
        return Graph(w[..., : ei.shape[1], :], ei, name, step, sample, labels=labels)
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
            return Graph(rows[sample - seen], m.edge_index.cpu().numpy(), name, sample=sample)
        seen += len(rows)
    raise SelectionError(f"sample {sample} out of range: {name!r} has {seen} samples")


def lead(g: Graph, select: Sequence[int] | None) -> Graph:
    """Index the leading dims between sample and ``(edge, head)`` (default: first of each)."""
    extra = g.weights.ndim - 2
    if extra <= 0:
        return g
    idx = tuple(select) if select is not None else (0,) * extra
    if len(idx) != extra:
        raise SelectionError(f"weights have {extra} leading dims {g.weights.shape[:-2]}; "
                             f"pass select= with {extra} indices")
    g.weights = g.weights[idx]
    g.where = "[" + ", ".join(map(str, idx)) + "]"
    return g
