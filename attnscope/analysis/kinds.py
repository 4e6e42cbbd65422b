"""What a map holds, and the metrics of maps that are not probabilities.

Softmax output is a probability map (rows sum to 1, nothing negative). An
``@effective`` matrix (tsai's ConvTranPlus: softmax plus a relative bias added after
it) and a value-weighted map are not: their rows need not sum to 1 and may be negative,
so entropy, ``keys90`` or "mass on a key" mean nothing there. They get the
:data:`GENERAL` metrics only, with ``distance`` weighted by ``|w|``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnscope.entries import is_effective

GENERAL = ("min", "max", "mean", "peak", "distance")  # meaningful on any weight matrix
PROBABILITY, EFFECTIVE, WEIGHTS = "probability", "effective", "weights"
VALUE_WEIGHTED = "value_weighted"  # alpha_ij * ||f(x_j)||: head_stats(rec, value_weighted=True)


def is_probability(w: np.ndarray, tol: float = 1e-2) -> bool:
    """Whether ``w`` looks like softmax output: nothing negative, and every row that
    carries weight sums to 1 over its finite cells (within ``tol``: float16 stores)."""
    w = np.asarray(w, dtype=np.float32)
    fin = np.isfinite(w)
    z = np.where(fin, w, 0.0)
    if (z < 0).any():
        return False
    total = z.sum(-1)
    live = total > 0
    return bool(np.all(np.abs(total[live] - 1.0) <= tol))


def measure_of(name: str, w: np.ndarray | None = None) -> str:
    """What a map holds: ``effective`` for ``name@effective`` entries, else
    ``probability`` when the weights look like softmax output, else ``weights``
    (value-weighted maps, anything not normalised)."""
    if is_effective(name):
        return EFFECTIVE
    return PROBABILITY if w is None or is_probability(w) else WEIGHTS


def row_mean(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean of ``x`` ``(sample, head, query)`` over the ``rows`` that count; NaN if none."""
    rows = np.broadcast_to(rows, x.shape)
    count = rows.sum(-1)
    total = np.where(rows, np.nan_to_num(x), 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def general_metrics(w: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """The metrics that mean something on any weight matrix (signed, unnormalised)."""
    n, h, q, k = w.shape
    fin = np.isfinite(w)
    rows = fin.any(-1) & (np.where(fin, w, 0.0) != 0).any(-1)
    some = fin.any(axis=(2, 3))
    nan = np.full((n, h), np.nan)
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["min"] = np.where(some, np.where(fin, w, np.inf).min(axis=(2, 3)), np.nan)
        out["max"] = np.where(some, np.where(fin, w, -np.inf).max(axis=(2, 3)), np.nan)
        out["mean"] = np.where(some, np.where(fin, w, 0).sum(axis=(2, 3), dtype=np.float64)
                               / np.maximum(fin.sum(axis=(2, 3)), 1), np.nan)
        out["peak"] = row_mean(np.where(fin, w, -np.inf).max(-1), rows)
        if q == k:
            a = np.abs(np.where(fin, w, 0.0))
            dist = np.abs(np.arange(q)[:, None] - np.arange(k)[None, :]).astype(np.float32)
            out["distance"] = row_mean((a * dist).sum(-1) / np.maximum(a.sum(-1), 1e-30), rows)
        else:
            out["distance"] = nan
    return {m: out.get(m, nan) for m in metrics}
