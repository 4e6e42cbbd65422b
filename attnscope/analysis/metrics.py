"""The metrics vocabulary: every per-head number attnscope reports (``attnscope stats``,
``analysis.head_stats``, ``plot_head_stats``, the Lightning callback's scalars, the
translation diagnostics) is defined here, once, as a number per (sample, head).

Every metric averages over the *valid* rows of a map: rows that carry weight (all-NaN
rows and fully masked, all-zero rows are the diagnostics' business). The keys a row
could attend to (:func:`allowed_keys`) are the finite cells that are not a masked mark
(capture records masked softmax zeros as ``-0.0``; NaN is a key the row never had,
e.g. a stitched decoder step), minus keys that are zero in every head and query of a
sample (padding) and, for a square map whose upper triangle is zero in every head,
the causal future. Entropy is normalised by ``log`` of that number of allowed keys,
so a causal head uniform over what it may see scores exactly 1.

Probability metrics need probability maps (rows sum to 1, nothing negative). An
``@effective`` matrix (softmax plus a bias added afterwards) or a value-weighted map
gets only the :data:`GENERAL` metrics: ``min``/``max``/``mean``, ``peak`` (largest
weight of a row) and ``distance`` (weighted by ``|w|``); :func:`measure_of` names what
a map holds, and tables and CSVs carry that name in their ``map`` column.

=============  ==================================================================
metric         meaning
=============  ==================================================================
min max mean   over every finite weight of the map
entropy        row entropy in nats
norm_entropy   entropy / log(allowed keys): 0 = one key, 1 = uniform
peak           largest weight of a row
keys90         keys needed to hold 90% of a row's mass
distance       mean |query - key| under the weights (square maps)
diagonal       weight on the query's own position (square maps)
prev_token     weight on the position just before the query (square maps)
first          weight on the first key (the usual attention sink)
special        weight on special tokens such as [CLS], [SEP], <s> (needs tokens)
dup_token      weight on earlier copies of the query's own token (needs tokens)
induction      weight on the token after an earlier copy of the query's token
               (needs tokens; a repeated sequence makes this the induction score)
=============  ==================================================================

Left out on purpose: gradient-based scores and anything that needs the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from attnscope.analysis.kinds import GENERAL, general_metrics, row_mean

__all__ = ["GENERAL", "METRICS", "allowed_keys", "graph_metrics", "map_metrics", "row_mean",
           "valid_rows"]

METRICS = ("min", "max", "mean", "entropy", "norm_entropy", "peak", "keys90", "distance",
           "diagonal", "prev_token", "first", "special", "dup_token", "induction")
SPECIAL = re.compile(r"^(\[[A-Za-z_]+\]|<[/A-Za-z_|]+>|<\|[^|]+\|>)$")
PAD = re.compile(r"^(\[PAD\]|<pad>|<\|pad\|>|\[pad\])$", re.IGNORECASE)
DESCRIBE = {
    "min": "smallest weight", "max": "largest weight", "mean": "mean weight",
    "entropy": "row entropy (nats)", "norm_entropy": "entropy / log(allowed keys)",
    "peak": "largest weight per query", "keys90": "keys for 90% of the mass",
    "distance": "mean |query - key|", "diagonal": "weight on own position",
    "prev_token": "weight on the previous position", "first": "weight on the first key",
    "special": "weight on special tokens", "dup_token": "weight on earlier copies",
    "induction": "induction score",
}


def valid_rows(w: np.ndarray) -> np.ndarray:
    """``(sample, head, query)``: rows with finite cells whose sum is more than 0 (NaN
    cells are keys the row never had; an all-NaN row is not valid)."""
    fin = np.isfinite(w)
    return fin.any(-1) & (np.where(fin, w, 0.0).sum(-1) > 0)


def allowed_keys(w: np.ndarray) -> np.ndarray:
    """``(sample, head, query, key)`` bool: keys each query could attend to. Not
    allowed: NaN cells, masked marks (``-0.0``), keys zero in every head and query of a
    sample (padding), and the zero upper triangle of a causal square map."""
    w = np.asarray(w)
    fin = np.isfinite(w)
    allowed = fin & ~((w == 0) & np.signbit(w))
    pos = fin & (np.where(fin, w, 0.0) > 0)
    allowed &= pos.any(axis=(1, 2), keepdims=True)  # (sample, 1, 1, key)
    q, k = w.shape[-2:]
    if q == k and q > 1:
        upper = np.triu(np.ones((q, k), dtype=bool), 1)
        causal = ~(pos & upper).any(axis=(1, 2, 3))  # (sample,)
        if causal.any():
            allowed[causal] &= ~upper
    return allowed


def entropy_rows(z: np.ndarray, allowed: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``z`` (weights, NaN as 0): entropy in nats, entropy / log(allowed
    keys) clipped to [0, 1], and the number of allowed keys."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(z > 0, z * np.log(np.where(z > 0, z, 1.0)), 0.0).sum(-1)
        support = allowed.sum(-1)
        norm = np.clip(ent / np.log(np.maximum(support, 2)), 0.0, 1.0)
    return ent, norm, support


def keys90_rows(z: np.ndarray) -> np.ndarray:
    """Per row of ``z`` (weights, NaN as 0): keys needed to hold 90% of its mass."""
    cum = np.cumsum(-np.sort(-z, axis=-1), axis=-1)
    return ((cum < 0.9 * z.sum(-1, keepdims=True) - 1e-6).sum(-1) + 1).astype(np.float32)


def _token_masks(q_tok: Sequence[str] | None, k_tok: Sequence[str] | None
                 ) -> dict[str, np.ndarray]:
    """``(query, key)`` masks for the token-based scores."""
    out: dict[str, np.ndarray] = {}
    if k_tok is not None:
        out["special"] = np.array([bool(SPECIAL.match(t)) for t in k_tok])[None, :]
    if q_tok is not None and k_tok is not None and list(q_tok) == list(k_tok):
        tok = np.asarray(q_tok, dtype=object)
        n = len(tok)
        same = tok[:, None] == tok[None, :]  # (query, key)
        before = np.tril(np.ones((n, n), dtype=bool), -1)
        out["dup_token"] = same & before
        ind = np.zeros((n, n), dtype=bool)
        ind[:, 1:] = same[:, :-1] & before[:, 1:]  # token at key-1 equals the query's
        out["induction"] = ind
    return out


def map_metrics(w: np.ndarray, query_tokens: Sequence[str] | None = None,
                key_tokens: Sequence[str] | None = None,
                metrics: Sequence[str] = METRICS, *, probability: bool = True,
                cache: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{metric: (sample, head)}`` for weights ``(sample, head, query, key)``.

    Example:
        >>> m = map_metrics(rec.maps[0].weights.numpy())
        >>> m["norm_entropy"].mean(0)     # per head

    Args:
        probability: ``False`` for maps that are not probabilities (``@effective``,
            value-weighted): only :data:`GENERAL` metrics, the others NaN.
        cache: filled with the per-row ``allowed``, ``norm`` and ``keys`` arrays, so
            the diagnostics of the same block do not compute them again.
    """
    w = np.asarray(w, dtype=np.float32)
    if not probability:
        return general_metrics(w, metrics)
    want = set(metrics)
    n, h, q, k = w.shape
    rows = valid_rows(w)
    all_finite = bool(np.isfinite(w).all())
    # the common case (every row finite and alive) needs no masked copies
    z = w if all_finite and rows.all() else np.where(
        rows[..., None], np.nan_to_num(w), 0.0).astype(np.float32)
    out: dict[str, np.ndarray] = {}
    if want & {"min", "max", "mean"} and all_finite:
        out["min"], out["max"], out["mean"] = (w.min(axis=(2, 3)), w.max(axis=(2, 3)),
                                               w.mean(axis=(2, 3), dtype=np.float64))
    elif want & {"min", "max", "mean"}:
        finite = np.isfinite(w)
        some = finite.any(axis=(2, 3))
        with np.errstate(invalid="ignore"):
            out["min"] = np.where(some, np.where(finite, w, np.inf).min(axis=(2, 3)), np.nan)
            out["max"] = np.where(some, np.where(finite, w, -np.inf).max(axis=(2, 3)), np.nan)
            cnt = finite.sum(axis=(2, 3))
            out["mean"] = np.where(cnt > 0, np.where(finite, w, 0).sum(axis=(2, 3))
                                   / np.maximum(cnt, 1), np.nan)
    if want & {"entropy", "norm_entropy"}:
        allowed = allowed_keys(w)
        ent, norm, support = entropy_rows(z, allowed)
        if cache is not None:
            cache.update(allowed=allowed, norm=norm, keys=support)
        out["entropy"] = row_mean(ent, rows)
        out["norm_entropy"] = row_mean(norm, rows & (support > 1))
    if "peak" in want:
        out["peak"] = row_mean(z.max(-1), rows)
    if "keys90" in want:
        out["keys90"] = row_mean(keys90_rows(z), rows)
    square = q == k
    if "distance" in want:
        if square:
            dist = np.abs(np.arange(q)[:, None] - np.arange(k)[None, :]).astype(np.float32)
            out["distance"] = row_mean((z * dist).sum(-1), rows)
        else:
            out["distance"] = np.full((n, h), np.nan)
    if "diagonal" in want:
        out["diagonal"] = row_mean(np.diagonal(z, 0, -2, -1), rows) if square \
            else np.full((n, h), np.nan)
    if "prev_token" in want:
        if square and q > 1:
            prev = np.concatenate([np.zeros((n, h, 1), np.float32),
                                   np.diagonal(z, -1, -2, -1)], -1)
            first_row = np.zeros(q, dtype=bool)
            first_row[1:] = True
            out["prev_token"] = row_mean(prev, rows & first_row)
        else:
            out["prev_token"] = np.full((n, h), np.nan)
    if "first" in want:
        out["first"] = row_mean(z[..., 0], rows)
    masks = _token_masks(query_tokens, key_tokens)
    for name in ("special", "dup_token", "induction"):
        if name not in want:
            continue
        m = masks.get(name)
        if m is None or not m.any():
            out[name] = np.full((n, h), np.nan)
            continue
        has = m.any(-1) if name != "special" else np.ones(q, dtype=bool)
        out[name] = row_mean((z * m).sum(-1), rows & has)
    return {k_: out[k_] for k_ in metrics if k_ in out}


def graph_metrics(w: np.ndarray, edge_index: np.ndarray,
                  metrics: Sequence[str] = METRICS) -> dict[str, np.ndarray]:
    """Metrics of edge maps ``(sample, ..., edge, head)``: min/max/mean over edges, and
    entropy, peak and keys90 over each destination node's incoming edges."""
    w = np.asarray(w, dtype=np.float32)
    n, heads = w.shape[0], w.shape[-1]
    flat = w.reshape(n, -1, w.shape[-2], heads)  # (sample, group, edge, head)
    dst = np.asarray(edge_index)[1]
    nodes = int(dst.max()) + 1 if dst.size else 0
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["min"] = np.nanmin(flat, axis=(1, 2))
        out["max"] = np.nanmax(flat, axis=(1, 2))
        out["mean"] = np.nanmean(flat, axis=(1, 2))
        z = np.nan_to_num(flat)
        term = np.where(z > 0, -z * np.log(np.where(z > 0, z, 1.0)), 0.0)
        # scatter every edge into its destination node: (sample, group, node, head)
        ent = np.zeros((n, flat.shape[1], nodes, heads), np.float32)
        np.add.at(ent, (slice(None), slice(None), dst), term)
        peak = np.zeros_like(ent)
        np.maximum.at(peak, (slice(None), slice(None), dst), z)
        mass = np.zeros_like(ent)
        np.add.at(mass, (slice(None), slice(None), dst), z)
        degree = np.bincount(dst, minlength=nodes)[None, None, :, None]
        live = mass > 0
        norm = ent / np.log(np.maximum(degree, 2))
        out["entropy"] = np.nanmean(np.where(live, ent, np.nan), axis=(1, 2))
        out["norm_entropy"] = np.nanmean(np.where(live & (degree > 1), norm, np.nan),
                                         axis=(1, 2))
        out["peak"] = np.nanmean(np.where(live, peak, np.nan), axis=(1, 2))
    return {k_: out[k_] for k_ in metrics if k_ in out}
