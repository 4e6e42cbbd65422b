"""Jensen-Shannon distance between heads: two heads whose rows are (nearly) the same
distributions are redundant, one of them could be pruned.

The distance is ``sqrt(JSD)`` with base-2 logarithms, so it lies in [0, 1] (0: the same
rows, 1: disjoint supports), averaged over the rows valid in both heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnscope.analysis._blocks import AnalysisError, blocks
from attnscope.analysis.metrics import valid_rows


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    """Row entropy in bits over the last axis (0 log 0 = 0), summed in float64."""
    logp = np.zeros_like(p)
    np.log2(p, out=logp, where=p > 0)
    return -np.einsum("...k,...k->...", p, logp, dtype=np.float64)


def js_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon distance of two stacks of distributions (last axis):
    ``sqrt(H(m) - (H(p) + H(q)) / 2)`` with ``m = (p + q) / 2``, in bits."""
    p, q = np.nan_to_num(np.asarray(p, np.float64)), np.nan_to_num(np.asarray(q, np.float64))
    jsd = _entropy_bits(0.5 * (p + q)) - 0.5 * (_entropy_bits(p) + _entropy_bits(q))
    return np.sqrt(np.clip(jsd, 0.0, 1.0))


def head_distances(w: np.ndarray) -> np.ndarray:
    """``(sample, head, head)`` mean JS distance between the heads of ``(sample, head,
    query, key)`` weights (NaN where two heads share no valid row). Each pair once, in
    float32 with float64 sums: identical heads give exactly 0."""
    w = np.asarray(w, dtype=np.float32)
    n, h = w.shape[:2]
    rows = valid_rows(w)  # (sample, head, query)
    z = np.nan_to_num(w)
    ent = _entropy_bits(z)  # (sample, head, query)
    out = np.full((n, h, h), np.nan)
    idx = np.arange(h)
    out[:, idx, idx] = np.where(rows.any(-1), 0.0, np.nan)
    for a in range(h):
        for b in range(a + 1, h):
            jsd = _entropy_bits(0.5 * (z[:, a] + z[:, b])) - 0.5 * (ent[:, a] + ent[:, b])
            d = np.sqrt(np.clip(jsd, 0.0, 1.0))  # (sample, query)
            both = rows[:, a] & rows[:, b]
            cnt = both.sum(-1)
            with np.errstate(invalid="ignore"):
                mean = np.where(cnt > 0, np.where(both, d, 0).sum(-1) / np.maximum(cnt, 1),
                                np.nan)
            out[:, a, b] = out[:, b, a] = mean
    return out


def redundant_heads(source: Any, module: str | None = None, *, step: str | None = None,
                    threshold: float = 0.1, samples: Any = None
                    ) -> list[tuple[int, int, float]]:
    """Pairs of heads of one entry whose mean JS distance is below ``threshold``.

    Example:
        >>> redundant_heads(store, "encoder.layers.3.self_attn", step="epoch_009")
        [(2, 7, 0.04)]      # heads 2 and 7 attend alike: one is redundant

    Returns ``(head_a, head_b, distance)`` sorted by distance.
    """
    total, count = None, 0
    steps = [step] if step is not None else None
    mods = [module] if module is not None else None
    for b in blocks(source, mods, steps, samples):
        if b.graph:
            raise AnalysisError(f"{b.module!r} holds graph maps; head distances need dense maps")
        if module is None:
            module = b.module
            mods = [module]
        if b.module != module:
            continue
        if not b.all_heads:
            raise AnalysisError(f"{module!r}: one sample is too large to hold all heads at "
                                "once; compare heads on a smaller selection of queries")
        d = np.nan_to_num(head_distances(b.weights), nan=0.0).sum(0)
        total = d if total is None else total + d
        count += b.weights.shape[0]
    if total is None:
        raise AnalysisError(f"nothing to compare: no maps for module {module!r}")
    mean = total / count
    h = mean.shape[0]
    pairs = [(a, c, float(mean[a, c])) for a in range(h) for c in range(a + 1, h)
             if mean[a, c] < threshold]
    return sorted(pairs, key=lambda t: t[2])


def nearest_heads(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``(..., head, head)`` distances: the closest other head and its distance."""
    d = np.array(d, dtype=np.float64)
    h = d.shape[-1]
    d[..., np.arange(h), np.arange(h)] = np.inf
    d = np.where(np.isnan(d), np.inf, d)
    idx = d.argmin(-1)
    val = np.take_along_axis(d, idx[..., None], -1)[..., 0]
    return idx, np.where(np.isinf(val), np.nan, val)


__all__: Sequence[str] = ("head_distances", "js_distance", "nearest_heads", "redundant_heads")
