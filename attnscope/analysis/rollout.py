"""Attention rollout and attention flow (Abnar & Zuidema, 2020): how much each input
position feeds each output position through a stack of self-attention layers whose
residual connections are modelled as identity.

Per layer: heads fused (``mean``, ``max`` or ``min``), optionally the lowest
``discard_ratio`` of the fused weights set to 0, then ``0.5 * A + 0.5 * I`` (square
layers only) and **every row renormalised to sum to 1**. Some popular implementations
divide by the column sums after discarding (a broadcasting slip); here rows are
normalised, and tests check that every rollout row sums to 1.

* rollout: ``R = A_L @ ... @ A_1`` (the last layer may be non-square, e.g. one pooling
  query, whose keys are the positions of the layer below);
* flow: the layers as a graph whose edge capacities are the weights; the value of the
  maximum flow from output position ``i`` to input position ``j``, one compiled
  max-flow (scipy) per (output, input) pair on a graph of ``layers * N^2`` edges built
  once. The cost grows with ``N^4``: larger problems are refused with the estimate
  (pass ``outputs=`` to compute a few output positions, or use rollout).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnscope.analysis._blocks import AnalysisError, is_store
from attnscope.entries import entry_name, is_effective

FUSIONS = ("mean", "max", "min")


def _as_batch(a: Any) -> np.ndarray:
    a = np.asarray(a.detach().cpu().float() if hasattr(a, "detach") else a, dtype=np.float64)
    if a.ndim < 2 or a.ndim > 4:
        raise AnalysisError(f"a layer must be (query, key), (head, query, key) or "
                            f"(batch, head, query, key), not shape {a.shape}")
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def layer_matrix(a: Any, head_fusion: str = "mean", discard_ratio: float = 0.0,
                 residual: bool = True) -> np.ndarray:
    """One layer's ``(batch, query, key)`` matrix as rollout and flow use it."""
    if head_fusion not in FUSIONS:
        raise AnalysisError(f"head_fusion must be one of {FUSIONS}, not {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise AnalysisError(f"discard_ratio must be in [0, 1), not {discard_ratio}")
    w = np.nan_to_num(_as_batch(a))
    fused = getattr(w, head_fusion)(axis=1)  # (batch, query, key)
    if discard_ratio > 0:
        flat = fused.reshape(fused.shape[0], -1).copy()
        drop = int(flat.shape[1] * discard_ratio)
        lowest = np.argsort(flat, axis=1, kind="stable")[:, :drop]
        np.put_along_axis(flat, lowest, 0.0, axis=1)
        fused = flat.reshape(fused.shape)
    q, k = fused.shape[1:]
    if residual and q == k:
        fused = 0.5 * fused + 0.5 * np.eye(q)[None]
    total = fused.sum(-1, keepdims=True)
    # rows, never columns; a row with nothing left stays 0 instead of NaN
    return np.divide(fused, total, out=np.zeros_like(fused), where=total > 0)


def _matrices(layers: Sequence[Any], head_fusion: str, discard_ratio: float,
              residual: bool) -> list[np.ndarray]:
    if not len(layers):
        raise AnalysisError("rollout needs at least one attention layer")
    mats = [layer_matrix(a, head_fusion, discard_ratio, residual) for a in layers]
    for i in range(1, len(mats)):
        if mats[i].shape[2] != mats[i - 1].shape[1]:
            raise AnalysisError(
                f"layer {i} has {mats[i].shape[2]} keys but layer {i - 1} has "
                f"{mats[i - 1].shape[1]} queries: layers must be consecutive self-attention "
                "of one sequence, in forward order")
        if mats[i].shape[0] != mats[0].shape[0]:
            raise AnalysisError("every layer needs the same batch size")
    return mats


def attention_rollout(layers: Sequence[Any], *, head_fusion: str = "mean",
                      discard_ratio: float = 0.0, residual: bool = True) -> np.ndarray:
    """``(batch, output, input)`` rollout of layers given first to last.

    Example:
        >>> layers = stack_layers(rec)                # every self-attention, in order
        >>> r = attention_rollout(layers, head_fusion="max", discard_ratio=0.9)
        >>> r[0, 0]                                   # what feeds output position 0

    Args:
        layers: ``(batch, head, query, key)`` maps (tensors or arrays), first layer first.
        head_fusion: ``mean``, ``max`` or ``min`` over heads.
        discard_ratio: fraction of the lowest fused weights set to 0 before the residual.
        residual: model the residual connection as ``0.5 * A + 0.5 * I``.
    """
    mats = _matrices(layers, head_fusion, discard_ratio, residual)
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def stack_layers(source: Any, modules: Sequence[str] | None = None, *,
                 step: str | None = None, sample: int = 0) -> list[np.ndarray]:
    """The ``(1, head, query, key)`` self-attention maps of one sample, in capture order
    (= forward order), from a store or a recording; ``modules`` picks and orders them."""
    if is_store(source):
        names = list(modules) if modules else [
            m for m in source.modules if _is_dense_self(m, source.module_info(m))]
        out = []
        for name in names:
            lengths = source.lengths(name, step)
            q, k = (int(x) for x in lengths[sample])
            out.append(source.read(name, step=step, samples=[sample])[..., :q, :k])
        if not out:
            raise AnalysisError("the store holds no dense self-attention to roll out")
        return out
    maps = [m for m in source.maps if not m.is_graph]
    entries: dict[str, list[Any]] = {}
    for m in maps:  # a module's calls in order; later calls in one forward are name[i]
        entries.setdefault(entry_name(m.module, m.call_index), []).append(m)
    names = list(modules) if modules else [n for n, ms in entries.items()
                                           if ms[0].kind == "self"]
    out = []
    for name in names:
        if name not in entries:
            raise AnalysisError(f"no dense maps from {name!r}; recorded: {list(entries)}")
        start = 0  # ``sample`` counts across the calls, as a store does
        for m in entries[name]:
            if sample < start + m.weights.shape[0]:
                i = sample - start
                out.append(m.weights[i : i + 1].float().numpy())
                break
            start += m.weights.shape[0]
        else:
            raise AnalysisError(f"sample {sample} out of range: {name!r} has {start}")
    if not out:
        raise AnalysisError("the recording holds no dense self-attention to roll out")
    return out


def _is_dense_self(name: str, info: dict) -> bool:
    return not info.get("graph") and info.get("kind") == "self" and not is_effective(name)
