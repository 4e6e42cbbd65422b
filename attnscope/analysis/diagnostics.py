"""Diagnostics: patterns in attention maps that usually mean a bug or a failing model,
each with a one-line explanation.

=============  ===================================================================
code           what it means
=============  ===================================================================
nan_rows       rows of NaN: every key of those queries was masked (softmax of -inf)
zero_map       a map of zeros: the mask hides every key (wrong shape or polarity)
zero_rows      some queries have every key masked (left padding, empty rows)
diffuse        near-uniform rows: the head selects nothing (untrained, too hot, or in
               cross-attention: not aligning, may hallucinate)
dead           every query puts (nearly) all its mass on one and the same key
repetition     queries attend to earlier copies of their own token: copying, repetition
padding        attention reaches padding tokens: the padding mask is not applied
positional     most attention on the first/last key whatever the query: positional
               problem
sink           the same, but those keys are special tokens ([CLS], [SEP], <s>): the
               no-op "sink" pattern of trained transformers, usually harmless
=============  ===================================================================

Sample-level problems (``nan_rows``, ``zero_map``, ``padding``) are reported when any
sample shows them; head-level patterns when at least half the samples do. Thresholds are
relative to what uniform (or random) attention gives over the same keys
(:mod:`attnscope.analysis.baselines`); ``zero_rows`` and ``sink`` are notes (usual in
healthy models), the others warnings. Only probability maps are diagnosed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnscope.analysis._blocks import Block
from attnscope.analysis.baselines import diffuse_score, mass_lift
from attnscope.analysis.findings import DIFFUSE_KEYS, Finding, Thresholds
from attnscope.analysis.kinds import PROBABILITY, measure_of, row_mean
from attnscope.analysis.metrics import PAD, SPECIAL, allowed_keys, entropy_rows, valid_rows

EXPLAIN = {
    "nan_rows": "rows of NaN: every key of those queries was masked (softmax of all -inf); "
                "fix the mask or fill masked scores with a large negative number",
    "zero_map": "the whole map is zero: the mask hides every key; check its shape "
                "(batch, head, query, key) and polarity (True = attend for sdpa bool masks)",
    "zero_rows": "some queries have every key masked (e.g. left padding); they attend nowhere",
    "diffuse": "near-uniform attention: the head does not select keys (untrained, too high a "
               "temperature; in cross-attention: not aligning, may hallucinate)",
    "dead": "every query puts most of its attention on the same key: a no-op (sink) head, "
            "likely prunable",
    "repetition": "queries attend to earlier copies of their own token: copying, a sign of "
                  "repetition",
    "padding": "attention reaches padding tokens: the padding mask is not applied",
    "positional": "most attention goes to the first/last key whatever the query: a "
                  "positional problem",
    "sink": "most attention goes to special tokens at the ends ([CLS]/[SEP]-style): the "
            "no-op sink pattern of trained transformers, usually harmless",
}
SAMPLE_LEVEL = ("nan_rows", "zero_map", "zero_rows", "padding")


def block_flags(block: Block, metrics: dict[str, np.ndarray] | None = None,
                t: Thresholds = Thresholds(), cache: dict[str, np.ndarray] | None = None
                ) -> dict[str, tuple[np.ndarray, ...]]:
    """``{code: (value, flagged, uniform)}``, each ``(sample, head)``, for one block
    (``cache``: the per-row arrays ``map_metrics(..., cache=)`` filled)."""
    w = block.weights
    n, h, q, k = w.shape
    out: dict[str, tuple[np.ndarray, ...]] = {}
    none = np.full((n, h), np.nan)
    nan = np.isnan(w).all(-1)  # (sample, head, query): every key NaN
    out["nan_rows"] = (nan.sum(-1).astype(float), nan.any(-1), none)
    zero = (np.nan_to_num(w).sum(-1) == 0) & ~nan
    allzero = zero.all(-1)
    out["zero_map"] = (np.where(allzero, 1.0, 0.0), allzero, none)
    out["zero_rows"] = (zero.sum(-1).astype(float), zero.any(-1) & ~allzero, none)
    rows = valid_rows(w)
    z = np.where(rows[..., None], np.nan_to_num(w), 0.0)
    if cache and "allowed" in cache:
        allowed, norm, keys = cache["allowed"], cache["norm"], cache["keys"]
    else:
        allowed = allowed_keys(w)
        _, norm, keys = entropy_rows(z, allowed)
    judged = rows & (keys >= DIFFUSE_KEYS)  # over 2 or 3 keys no row is "diffuse"
    score = diffuse_score(norm, keys, judged)
    out["diffuse"] = (row_mean(norm, judged), np.nan_to_num(score) >= t.diffuse,
                      np.ones((n, h)))
    toks = block.key_tokens
    special = np.array([bool(SPECIAL.match(x)) for x in toks]) if toks is not None \
        else np.zeros(k, bool)
    dead = np.zeros((n, h), bool)
    if q >= 4:
        top = z.argmax(-1)  # (sample, head, query)
        # the first valid row's favourite key must be every valid row's favourite
        first = np.argmax(rows, -1)
        key = np.take_along_axis(top, first[..., None], -1)[..., 0]
        same = ((top == key[..., None]) | ~rows).all(-1) & rows.any(-1)
        on = np.arange(k) == key[..., None, None]  # (sample, head, 1, key)
        m, u, up = mass_lift(z, on, allowed, rows)
        dead = same & (np.nan_to_num(up) >= t.dead)
        sink = special[key]
        out["dead"] = (m, dead & ~sink, u)
        out["sink"] = (m, dead & sink, u)
    dup = _token_mask(block, "dup_token")
    if dup is not None:
        m, u, up = mass_lift(z, dup, allowed, rows & dup.any(-1))
        out["repetition"] = (m, np.nan_to_num(up) >= t.repetition, u)
    if toks is not None:
        pad = np.array([bool(PAD.match(x)) for x in toks])
        if pad.any():
            everywhere = np.ones_like(allowed)  # padding that is masked is not a key
            m, u, _ = mass_lift(z, pad, everywhere, rows)
            out["padding"] = (m, m >= t.padding * u, u)
    if k >= 3 and q >= 3:  # "whatever the query" needs several queries
        # the ends are the first and last key the sample has (padding is not a key)
        alive = allowed.any(axis=(1, 2))  # (sample, key)
        idx = np.arange(k)
        first = np.where(alive, idx, k).min(-1)
        last = np.where(alive, idx, -1).max(-1)
        ends = (idx == first[:, None]) | (idx == last[:, None])
        m, u, up = mass_lift(z, ends[:, None, None, :], allowed, rows)
        hit = (np.nan_to_num(up) >= t.positional) & ~dead
        # a sink, not a positional problem, when most of that mass sits on a special
        # token ([CLS], <s>, [SEP]) or on the first key of a causal map (the one key
        # every query sees: the attention sink of trained language models)
        at = np.arange(n)
        on_first = row_mean(z[at, :, :, first], rows)
        on_last = row_mean(z[at, :, :, last], rows)
        upper = np.triu(np.ones((q, k), bool), 1) if q == k else np.zeros((q, k), bool)
        causal = ~(allowed & upper).any(axis=(1, 2, 3)) & upper.any()  # (sample,)
        sinkish = (special[first] | causal)[:, None] * on_first \
            + special[last][:, None] * on_last >= 0.5 * (on_first + on_last)
        before = out.get("sink")
        out["sink"] = (m, hit & sinkish if before is None else (hit & sinkish) | before[1], u)
        out["positional"] = (m, hit & ~sinkish, u)
    return out


def _token_mask(block: Block, name: str) -> np.ndarray | None:
    from attnscope.analysis.metrics import _token_masks

    m = _token_masks(block.query_tokens, block.key_tokens).get(name)
    return m if m is not None and m.any() else None


class FindingCounter:
    """Accumulates block flags into findings per (entry, step, head, code)."""

    def __init__(self, thresholds: Thresholds = Thresholds()) -> None:
        self.t = thresholds
        self._acc: dict[tuple[str, str, int, str], list[float]] = {}
        self._seen: dict[tuple[str, str, int], int] = {}

    def add(self, block: Block, metrics: dict[str, np.ndarray] | None = None,
            cache: dict[str, np.ndarray] | None = None) -> None:
        flags = block_flags(block, metrics, self.t, cache)
        for j, head in enumerate(block.heads):
            key = (block.module, block.step, int(head))
            self._seen[key] = self._seen.get(key, 0) + block.weights.shape[0]
            for code, (value, flagged, uniform) in flags.items():
                hit = flagged[:, j]
                if hit.any():
                    acc = self._acc.setdefault((*key, code), [0.0, 0.0, 0.0])
                    acc[0] += float(hit.sum())
                    acc[1] += float(np.nansum(np.asarray(value)[:, j][hit]))
                    acc[2] += float(np.nansum(np.asarray(uniform)[:, j][hit]))

    def merge(self, seen: dict, acc: dict) -> None:
        """Add another part's counts (:mod:`attnscope.analysis.distributed`)."""
        for key, n in seen.items():
            self._seen[key] = self._seen.get(key, 0) + n
        for key, vals in acc.items():
            mine = self._acc.setdefault(key, [0.0] * len(vals))
            for i, v in enumerate(vals):
                mine[i] += v

    def findings(self) -> list[Finding]:
        out = []
        for (module, step, head, code), (count, total, base) in self._acc.items():
            of = self._seen[(module, step, head)]
            if code not in SAMPLE_LEVEL and count < self.t.share * of:
                continue
            uniform = base / count if code not in SAMPLE_LEVEL else None
            out.append(Finding(code, module, step, head, int(count), of, total / count,
                               EXPLAIN[code], uniform=uniform))
        order = {c: i for i, c in enumerate(EXPLAIN)}
        return sorted(out, key=lambda f: (order[f.code], f.module, f.step, f.head or 0))


def diagnose(source, modules: Sequence[str] | None = None, *,
             steps: Sequence[str] | None = None, samples=None, tokens=None,
             thresholds: Thresholds = Thresholds()) -> list[Finding]:
    """Findings for a store, recording or arrays, streamed block by block.

    Example:
        >>> for f in diagnose(store, steps=["test"]):
        ...     print(f.line())
    """
    from attnscope.analysis._blocks import blocks

    counter = FindingCounter(thresholds)
    kinds: dict[str, str] = {}
    for b in blocks(source, modules, steps, samples, tokens):
        if b.graph:
            continue
        if kinds.setdefault(b.module, measure_of(b.module, b.weights)) == PROBABILITY:
            counter.add(b)
    return counter.findings()
