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
dead           every query puts >= 90% on one and the same key: a no-op (sink) head
repetition     queries attend to earlier copies of their own token: copying, repetition
padding        attention reaches padding tokens: the padding mask is not applied
positional     most attention on the first/last key whatever the query: positional
               problem
sink           the same, but those keys are special tokens ([CLS], [SEP], <s>): the
               no-op "sink" pattern of trained transformers, usually harmless
=============  ===================================================================

Sample-level problems (``nan_rows``, ``zero_map``, ``padding``) are reported when any
sample shows them; head-level patterns when at least half the samples do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from attnscope.analysis._blocks import Block
from attnscope.analysis.metrics import PAD, SPECIAL, valid_rows

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


@dataclass(frozen=True)
class Thresholds:
    diffuse: float = 0.95  # normalised entropy
    dead: float = 0.9  # mass on the one key every query picks
    repetition: float = 0.5  # dup_token score
    padding: float = 0.01  # mass on padding tokens
    positional: float = 0.8  # mass on first + last key
    share: float = 0.5  # head-level patterns: fraction of samples that must show them


@dataclass
class Finding:
    """One pattern in one head (``head`` is None for a whole map) of one entry/step."""

    code: str
    module: str
    step: str
    head: int | None
    samples: int  # how many samples show it
    of: int  # out of how many
    value: float  # mean size of the effect where it shows
    message: str = field(default="")

    def line(self) -> str:
        where = f"{self.module}" + (f" @ {self.step}" if self.step else "")
        head = "" if self.head is None else f" head {self.head}"
        return (f"{where}{head}: {self.code} ({self.samples}/{self.of} samples, "
                f"{self.value:.3g}) - {self.message}")


def block_flags(block: Block, metrics: dict[str, np.ndarray],
                t: Thresholds = Thresholds()) -> dict[str, np.ndarray]:
    """``{code: (value (sample, head), flagged (sample, head))}`` for one block."""
    w = block.weights
    n, h, q, k = w.shape
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    nan = np.isnan(w).any(-1)  # (sample, head, query)
    out["nan_rows"] = (nan.sum(-1).astype(float), nan.any(-1))
    with np.errstate(invalid="ignore"):
        rowsum = np.nan_to_num(w).sum(-1)
    zero = (rowsum == 0) & ~nan
    allzero = zero.all(-1)
    out["zero_map"] = (np.where(allzero, 1.0, 0.0), allzero)
    out["zero_rows"] = (zero.sum(-1).astype(float), zero.any(-1) & ~allzero)
    ne = metrics.get("norm_entropy")
    if ne is not None:
        out["diffuse"] = (ne, np.nan_to_num(ne) >= t.diffuse)
    rows = valid_rows(w)
    if q >= 4:
        z = np.nan_to_num(w)
        top = z.argmax(-1)  # (sample, head, query)
        # the first valid row's favourite key must be every valid row's favourite
        first = np.argmax(rows, -1)
        key = np.take_along_axis(top, first[..., None], -1)[..., 0]
        same = ((top == key[..., None]) | ~rows).all(-1) & rows.any(-1)
        mass = np.take_along_axis(z, np.broadcast_to(key[..., None, None], (n, h, q, 1)),
                                  -1)[..., 0]
        with np.errstate(invalid="ignore"):
            m = np.where(rows, mass, 0).sum(-1) / np.maximum(rows.sum(-1), 1)
        out["dead"] = (m, same & (m >= t.dead))
    dup = metrics.get("dup_token")
    if dup is not None:
        out["repetition"] = (dup, np.nan_to_num(dup) >= t.repetition)
    if block.key_tokens is not None:
        pad = np.array([bool(PAD.match(x)) for x in block.key_tokens])
        if pad.any():
            z = np.nan_to_num(w)
            pm = np.where(rows, z[..., pad].sum(-1), 0).sum(-1) / np.maximum(rows.sum(-1), 1)
            out["padding"] = (pm, pm >= t.padding)
    if k >= 3 and (q > 1 or block.kind == "cross"):
        z = np.nan_to_num(w)
        edge = np.where(rows, z[..., 0] + z[..., -1], 0).sum(-1) / np.maximum(rows.sum(-1), 1)
        dead = out.get("dead", (None, np.zeros((n, h), bool)))[1]
        toks = block.key_tokens
        special = toks is not None and bool(SPECIAL.match(toks[0])) and bool(
            SPECIAL.match(toks[-1]))
        out["sink" if special else "positional"] = (edge, (edge >= t.positional) & ~dead)
    return out


class FindingCounter:
    """Accumulates block flags into findings per (entry, step, head, code)."""

    def __init__(self, thresholds: Thresholds = Thresholds()) -> None:
        self.t = thresholds
        self._acc: dict[tuple[str, str, int, str], list[float]] = {}
        self._seen: dict[tuple[str, str, int], int] = {}

    def add(self, block: Block, metrics: dict[str, np.ndarray]) -> None:
        flags = block_flags(block, metrics, self.t)
        for j, head in enumerate(block.heads):
            key = (block.module, block.step, int(head))
            self._seen[key] = self._seen.get(key, 0) + block.weights.shape[0]
            for code, (value, flagged) in flags.items():
                hit = flagged[:, j]
                if hit.any():
                    acc = self._acc.setdefault((*key, code), [0.0, 0.0])
                    acc[0] += float(hit.sum())
                    acc[1] += float(np.nansum(np.asarray(value)[:, j][hit]))

    def findings(self) -> list[Finding]:
        out = []
        for (module, step, head, code), (count, total) in self._acc.items():
            of = self._seen[(module, step, head)]
            if code not in SAMPLE_LEVEL and count < self.t.share * of:
                continue
            out.append(Finding(code, module, step, head, int(count), of, total / count,
                               EXPLAIN[code]))
        order = {c: i for i, c in enumerate(EXPLAIN)}
        return sorted(out, key=lambda f: (order[f.code], f.module, f.step, f.head or 0))


def summarize(findings: Sequence[Finding]) -> list[str]:
    """Findings grouped for reading: per code, its explanation once, then one line per
    module naming the heads and steps that show it."""
    lines: list[str] = []
    for code in EXPLAIN:
        mine = [f for f in findings if f.code == code]
        if not mine:
            continue
        lines.append(f"{code} ({len(mine)}): {EXPLAIN[code]}")
        by_module: dict[str, list[Finding]] = {}
        for f in mine:
            by_module.setdefault(f.module, []).append(f)
        for module, fs in by_module.items():
            heads = sorted({f.head for f in fs if f.head is not None})
            steps = list(dict.fromkeys(f.step for f in fs if f.step))
            where = f" at {', '.join(steps[:4])}" + (" ..." if len(steps) > 4 else "") \
                if steps else ""
            size = sum(f.value * f.samples for f in fs) / max(1, sum(f.samples for f in fs))
            lines.append(f"  {module or '<root>'}: head{'s' if len(heads) > 1 else ''} "
                         f"{', '.join(map(str, heads))}{where} (mean {size:.3g})")
    return lines


def diagnose(source, modules: Sequence[str] | None = None, *,
             steps: Sequence[str] | None = None, samples=None, tokens=None,
             thresholds: Thresholds = Thresholds()) -> list[Finding]:
    """Findings for a store, recording or arrays, streamed block by block.

    Example:
        >>> for f in diagnose(store, steps=["test"]):
        ...     print(f.line())
    """
    from attnscope.analysis._blocks import blocks
    from attnscope.analysis.metrics import map_metrics

    counter = FindingCounter(thresholds)
    for b in blocks(source, modules, steps, samples, tokens):
        if b.graph:
            continue
        counter.add(b, map_metrics(b.weights, b.query_tokens, b.key_tokens,
                                   ("norm_entropy", "dup_token")))
    return counter.findings()
