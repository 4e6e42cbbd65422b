"""Attention flow (Abnar & Zuidema, 2020): the layers as a graph whose edge capacities
are the rollout matrices (:func:`~attnscope.analysis.rollout.layer_matrix`); the flow
from output ``i`` to input ``j`` is the value of the maximum flow between them.

Solved with a compiled max-flow (``scipy.sparse.csgraph.maximum_flow``) on integer
capacities, many pairs per call; :func:`flow_error_bound` states what the rounding
costs. Left out on purpose: the networkx version it replaced (100x slower; kept as the
reference in the tests and ``benchmarks/attention_flow.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnscope.analysis._blocks import AnalysisError
from attnscope.analysis.rollout import _as_batch, _matrices

FLOW_MAX_WORK = 120_000_000  # max-flow problems x inputs x edges: ~10 s in scipy here
_SCALE = 2**30  # integer capacities (scipy max-flow takes int32); see flow_error_bound
_UNBOUNDED = 2**31 - 1  # the super source's edges: more than any copy can carry
_FLOW_EDGES = 2_000_000  # edges per scipy call (memory: ~100 bytes each)


def attention_flow(layers: Sequence[Any], *, head_fusion: str = "mean",
                   discard_ratio: float = 0.0, residual: bool = True,
                   outputs: Sequence[int] | None = None,
                   max_work: int = FLOW_MAX_WORK) -> np.ndarray:
    """``(batch, output, input)`` maximum flow through the layers.

    Compiled max-flow (``scipy.sparse.csgraph.maximum_flow``, Dinic) on integer
    capacities ``round(w * 2**30)``; the inner layers' edges are built once per batch
    item and copied for every (output, input) pair, and hundreds of pairs are solved
    in one call (see ``_pair_flows``). Rounding moves each capacity by at most
    ``2**-31``, so a flow is off by at most ``edges * 2**-31`` (:func:`flow_error_bound`;
    1536 edges for 16 tokens x 6 layers: 7e-7).

    Rows of ``outputs`` not asked for are NaN. Raises :class:`AnalysisError` when
    ``len(outputs) * inputs * edges`` exceeds ``max_work``, with the reason.
    """
    mats = _matrices(layers, head_fusion, discard_ratio, residual)
    try:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_flow
    except ImportError:
        raise AnalysisError("attention flow needs scipy: pip install "
                            "'attnscope[plot]'") from None
    batch, top, bottom = mats[-1].shape[0], mats[-1].shape[1], mats[0].shape[2]
    rows = list(range(top)) if outputs is None else [int(i) for i in outputs]
    if any(not 0 <= i < top for i in rows):
        raise AnalysisError(f"outputs {list(outputs or [])} out of range: {top} positions")
    edges = sum(m.shape[1] * m.shape[2] for m in mats)
    work = len(rows) * bottom * edges
    if work > max_work:
        raise AnalysisError(
            f"attention flow solves one max-flow problem per (output, input) pair: "
            f"{len(rows)} x {bottom} problems on a graph of {edges} edges is {work:.1e} "
            f"units of work, over the limit {max_work:.0e} (measured: 64 tokens x 6 "
            "layers, 1.0e8 units, take ~7 s; cost grows with tokens^4); use "
            "attention_rollout, a few outputs (outputs=[0]), or raise max_work")
    out = np.full((batch, top, bottom), np.nan)
    pairs = np.array([(i, j) for i in rows for j in range(bottom)], dtype=np.int64)
    for b in range(batch):
        out[b, pairs[:, 0], pairs[:, 1]] = _pair_flows([m[b] for m in mats], pairs,
                                                       maximum_flow, csr_matrix)
    return out


def _pair_flows(mats: list[np.ndarray], pairs: np.ndarray, maximum_flow: Any,
                csr_matrix: Any) -> np.ndarray:
    """Max flow of every (output, input) pair of one batch item, many pairs per call.

    Each pair is one copy of the graph (the top layer cut to the output's row, the
    bottom layer to the input's column); the copies share only a super source ``S``
    (edges of unbounded capacity to each copy's output node) and the sink ``T``, so the
    max flow of the union splits into each copy's max flow, read on its ``S`` edge. One
    scipy call then solves a few hundred pairs: the per-call set-up is paid once."""
    inner = [m.shape[0] for m in mats[:-1]]  # positions of layers 1 .. L-1
    moff = np.concatenate([[0], np.cumsum(inner)]).astype(np.int64)
    size = 1 + int(moff[-1])  # one copy: its output node, then the inner layers
    src, dst, cap = [], [], []  # inner edges of one copy, relative to its first node
    for layer in range(2, len(mats)):
        m = mats[layer - 1]
        i, j = np.nonzero(m > 0)
        src.append(1 + moff[layer - 1] + i)
        dst.append(1 + moff[layer - 2] + j)
        cap.append(np.rint(m[i, j] * _SCALE))
    t_src = np.concatenate(src) if src else np.zeros(0, np.int64)
    t_dst = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    t_cap = np.concatenate(cap) if cap else np.zeros(0)
    per_copy = len(t_cap) + mats[-1].shape[1] + mats[0].shape[0] + 1
    group = max(1, _FLOW_EDGES // per_copy)
    result = np.zeros(len(pairs))
    for start in range(0, len(pairs), group):
        chunk = pairs[start:start + group]
        result[start:start + len(chunk)] = _solve_copies(
            mats, chunk, size, moff, (t_src, t_dst, t_cap), maximum_flow, csr_matrix)
    return result


def _solve_copies(mats: list[np.ndarray], chunk: np.ndarray, size: int, moff: np.ndarray,
                  template: tuple[np.ndarray, ...], maximum_flow: Any,
                  csr_matrix: Any) -> np.ndarray:
    n = len(chunk)
    base = 2 + size * np.arange(n, dtype=np.int64)  # node 0 = S, node 1 = T
    t_src, t_dst, t_cap = template
    src = [np.zeros(n, np.int64), (base[:, None] + t_src).ravel()]
    dst = [base, (base[:, None] + t_dst).ravel()]
    cap = [np.full(n, _UNBOUNDED, np.float64), np.tile(t_cap, n)]
    top, bottom = mats[-1][chunk[:, 0]], mats[0][:, chunk[:, 1]].T  # (pair, positions)
    if len(mats) == 1:  # one layer: the edge from output to input is the whole graph
        src.append(base)
        dst.append(np.ones(n, np.int64))
        cap.append(np.rint(top[np.arange(n), chunk[:, 1]] * _SCALE))
    else:
        below = 1 + moff[len(mats) - 2]  # the output's keys: layer L-1 positions
        src.append(np.repeat(base, top.shape[1]))
        dst.append((base[:, None] + below + np.arange(top.shape[1])).ravel())
        cap.append(np.rint(top.ravel() * _SCALE))
        src.append((base[:, None] + 1 + np.arange(bottom.shape[1])).ravel())
        dst.append(np.ones(bottom.size, np.int64))
        cap.append(np.rint(bottom.ravel() * _SCALE))
    src_a, dst_a, cap_a = np.concatenate(src), np.concatenate(dst), np.concatenate(cap)
    keep = cap_a > 0
    nodes = int(base[-1]) + size
    graph = csr_matrix((cap_a[keep].astype(np.int32), (src_a[keep], dst_a[keep])),
                       shape=(nodes, nodes))
    flow = maximum_flow(graph, 0, 1).flow.tocsr()
    row = slice(flow.indptr[0], flow.indptr[1])
    got = dict(zip(flow.indices[row].tolist(), flow.data[row].tolist()))
    return np.array([got.get(int(x), 0) for x in base], dtype=np.float64) / _SCALE


def flow_error_bound(layers: Sequence[Any]) -> float:
    """Largest difference between :func:`attention_flow` and the exact real-valued max
    flow of the same layers: every edge's capacity is rounded by at most half a unit
    of ``2**-30``, and a cut holds at most every edge."""
    edges = sum(_as_batch(a).shape[2] * _as_batch(a).shape[3] for a in layers)
    return edges * 0.5 / _SCALE
