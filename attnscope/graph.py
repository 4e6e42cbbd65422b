"""Graph attention as matrices: temporal graphs built by rule, and the dense
destination x source matrix rebuilt from any edge map, per layer, sample, node and time
step (SPIN-style spatio-temporal models keep one edge map per node or per time step).

Example:
    >>> from attnscope.graph import temporal_edge_index, to_dense, dense_map
    >>> edges = temporal_edge_index(24, causal=True, max_distance=6)   # (2, edge)
    >>> g = dense_map(store, module="encoder.temporal", step="test", sample=0)
    >>> g.weights.shape            # (node, head, 24, 24): NaN where there is no edge
    >>> g.axes                     # [Axis(name='node', size=12, labels=[...])]
    >>> g.at(node=3)[:, -1]        # what the last time step of node 3 attends to

Edges follow PyTorch Geometric: row 0 is the source (key), row 1 the destination
(query), so row ``i`` of a dense matrix holds the weights node ``i`` gave to the nodes
it listens to. Cells without an edge are NaN, never 0, so a causal or windowed graph
keeps its shape in figures and statistics. Left out on purpose: sparse outputs (use the
edge map itself) and graphs whose edge set changes along the leading dims of one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnscope.errors import SelectionError


def temporal_edge_index(steps: int, causal: bool = False, max_distance: int | None = None,
                        self_loops: bool = True) -> torch.Tensor:
    """Edges ``s -> t`` between the time steps ``0 .. steps-1``, sorted by destination.

    Example:
        >>> temporal_edge_index(3, causal=True)
        tensor([[0, 0, 1, 0, 1, 2],
                [0, 1, 1, 2, 2, 2]])

    Args:
        causal: only ``s <= t`` (a step listens to itself and the past).
        max_distance: only ``|t - s| <= max_distance`` (a sliding window).
        self_loops: keep ``t -> t``.
    """
    if int(steps) < 1:
        raise SelectionError(f"a temporal graph needs at least one time step, not {steps}")
    if max_distance is not None and int(max_distance) < 0:
        raise SelectionError(f"max_distance must be >= 0, not {max_distance}")
    t = torch.arange(int(steps))
    dst, src = torch.meshgrid(t, t, indexing="ij")  # row = destination (query)
    keep = torch.ones_like(dst, dtype=torch.bool)
    if causal:
        keep &= src <= dst
    if max_distance is not None:
        keep &= (dst - src).abs() <= int(max_distance)
    if not self_loops:
        keep &= src != dst
    return torch.stack([src[keep], dst[keep]])


def to_dense(weights: Any, edge_index: Any, num_nodes: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(..., head, query, key)`` matrices from ``(..., edge, head)`` edge weights.

    Returns the matrices (NaN where no edge; duplicate edges add up) and the
    ``(query, key)`` boolean mask of cells that have an edge. NaN edge weights (padding
    of a store) are skipped.
    """
    w = _numpy(weights)
    ei = np.asarray(_numpy(edge_index), dtype=np.int64)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise SelectionError(f"edge_index must be (2, edge), got shape {tuple(ei.shape)}")
    if w.ndim < 2:
        raise SelectionError(f"edge weights must be (..., edge, head), got shape {w.shape}")
    w = w[..., : ei.shape[1], :]  # a store pads to the longest batch with NaN
    if w.shape[-2] != ei.shape[1]:
        raise SelectionError(f"{w.shape[-2]} edge weights for {ei.shape[1]} edges")
    src, dst = ei
    n = int(num_nodes) if num_nodes is not None else int(ei.max()) + 1 if ei.size else 0
    if ei.size and int(ei.max()) >= n:
        raise SelectionError(f"edge_index names node {int(ei.max())} but num_nodes is {n}")
    valid = ~np.isnan(w)
    lead, heads = w.shape[:-2], w.shape[-1]
    flat = np.moveaxis(np.where(valid, w, 0.0), -1, -2).reshape(-1, heads, ei.shape[1])
    dense = np.zeros((flat.shape[0], heads, n * n), dtype=np.float32)
    cell = dst * n + src
    for i in range(flat.shape[0]):  # per leading index: bincount is exact and fast
        for h in range(heads):
            dense[i, h] = np.bincount(cell, weights=flat[i, h], minlength=n * n)
    present = np.zeros(n * n, dtype=bool)
    present[cell] = True
    dense[:, :, ~present] = np.nan
    return dense.reshape(*lead, heads, n, n), present.reshape(n, n)


@dataclass
class DenseGraph:
    """One sample of a graph entry as matrices.

    Attributes:
        weights: ``(..., head, query, key)``; ``...`` are the map's leading dims (e.g.
            node for a temporal graph, time step for a spatial one), NaN without edge.
        present: ``(query, key)`` cells that have an edge.
        edge_index: ``(2, edge)`` the matrices were built from.
        axes: the leading dims by name, size and labels (``node``, ``time``, ``dim2`` ...).
        node_kind: ``"time"`` when the graph's nodes are time steps, else ``"node"``.
        node_names: labels of the graph's nodes (query/key), when the step has them.
    """

    weights: np.ndarray
    present: np.ndarray
    edge_index: np.ndarray
    module: str = ""
    step: str | None = None
    sample: int = 0
    axes: list[Any] = field(default_factory=list)
    node_kind: str = "node"
    node_names: list[str] | None = None

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return tuple(self.weights.shape[:-3])

    def at(self, *index: int, **named: int) -> np.ndarray:
        """``(head, query, key)`` at one position of the leading dims, by position
        (``g.at(3)``) or by name (``g.at(node=3)``; dims not named take position 0)."""
        if named:
            if index:
                raise SelectionError("give leading positions by index or by name, not both")
            known = [a.name for a in self.axes]
            bad = [k for k in named if k not in known]
            if bad:
                raise SelectionError(f"no axis {bad[0]!r}; this map's leading dims are "
                                     f"{known or 'none'}")
            index = tuple(int(named.get(k, 0)) for k in known)
        if len(index) != len(self.lead_shape):
            raise SelectionError(f"this map has leading dims {self.lead_shape}; give "
                                 f"{len(self.lead_shape)} indices, not {len(index)}")
        for i, n in zip(index, self.lead_shape):
            if not -n <= i < n:
                raise SelectionError(f"index {i} out of range for a leading dim of size {n}")
        return self.weights[tuple(index)]

    def incoming(self, target: int, /, *index: int, **named: int) -> np.ndarray:
        """``(head, key)`` weights graph node ``target`` gave to the nodes it listens to
        (NaN: no edge); ``index``/``named`` pick the leading dims (``node=3``)."""
        n = self.present.shape[0]
        if not -n <= target < n:
            raise SelectionError(f"node {target} out of range: the graph has {n} nodes")
        return self.at(*index, **named)[:, target]


def dense_map(source: Any, *, module: str | int | None = None, step: str | None = None,
              sample: int = 0, num_nodes: int | None = None,
              labels: dict[str, Any] | None = None) -> DenseGraph:
    """The dense matrices of one sample of a graph entry, all leading dims kept and named.

    ``source``: a store, a :class:`~attnscope.Recording` or a graph
    :class:`~attnscope.AttentionMap` (``sample`` then indexes its first dim);
    ``labels`` (``{"nodes": [...], "time_steps": [...]}``) name the dims of maps that
    are not in a store.
    """
    from attnscope.sources import graph_sample

    g = graph_sample(source, module, step, sample, labels)
    dense, present = to_dense(g.weights, g.edge_index, num_nodes)
    return DenseGraph(dense, present, g.edge_index, g.module, g.step, sample, g.axes,
                      g.node_kind, g.node_names)


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.numpy() if x.dtype == torch.long else x.float().numpy()
    return np.asarray(x)
