"""``head_stats``: every metric per (entry, step, sample, head), streamed block by block
into an optional CSV, summarised per (entry, step, head) in memory (small whatever the
store size), with diagnostics from the same pass.

Summaries: ``min`` is the smallest over samples, ``max`` the largest, every other metric
the mean over samples; ``nearest_head``/``nearest_js`` name each head's closest other
head by mean Jensen-Shannon distance (redundant heads score near 0).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from attnscope._files import atomic_path
from attnscope.analysis._blocks import BUDGET, AnalysisError, blocks, is_store
from attnscope.analysis.diagnostics import FindingCounter, Thresholds
from attnscope.analysis.kinds import PROBABILITY, VALUE_WEIGHTED, measure_of
from attnscope.analysis.metrics import METRICS, graph_metrics, map_metrics
from attnscope.analysis.report import PER_SAMPLE_COLUMNS, StatsReport, csv_cell
from attnscope.analysis.similarity import head_distances, nearest_heads
from attnscope.maps import Recording

LOGGED = ("norm_entropy", "peak", "distance", "first")  # default scalars per epoch


def step_scalars(store: Any, step: str, metrics: Sequence[str] = LOGGED,
                 prefix: str = "attention") -> dict[str, float]:
    """``{"<prefix>/<entry>/head<h>/<metric>": value}`` for one step (mean over samples):
    what a training logger plots as one curve per head across epochs."""
    if not is_store(store):
        from attnscope.store import open_store

        store = open_store(store)
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise AnalysisError(f"unknown metrics {bad}; available: {', '.join(METRICS)}")
    report = head_stats(store, steps=[step], similarity=False)
    return {f"{prefix}/{r['module']}/head{r['head']}/{m}": float(r[m])
            for r in report.rows for m in metrics if not math.isnan(r[m])}


class _Acc:
    """Running per-head sums of one (entry, step)."""

    def __init__(self, measure: str = PROBABILITY) -> None:
        self.measure = measure  # what the maps hold: probability, effective, weights
        self.count: dict[int, int] = {}
        self.sums: dict[tuple[int, str], list[float]] = {}  # [sum, n, min, max]
        self.dist: np.ndarray | None = None
        self.dist_n = 0
        self.too_large: tuple[int, int] | None = None  # (query, key) of maps too large to compare

    def add(self, heads: np.ndarray, values: dict[str, np.ndarray]) -> None:
        n = next(iter(values.values())).shape[0]
        for j, head in enumerate(heads):
            h = int(head)
            self.count[h] = self.count.get(h, 0) + n
            for m, v in values.items():
                col = v[:, j]
                ok = col[np.isfinite(col)]
                s = self.sums.setdefault((h, m), [0.0, 0, math.inf, -math.inf])
                if len(ok):
                    s[0] += float(ok.sum())
                    s[1] += len(ok)
                    s[2] = min(s[2], float(ok.min()))
                    s[3] = max(s[3], float(ok.max()))

    def merge(self, other: _Acc) -> None:
        """Add another part's sums (the same entry and step, other samples)."""
        for h, n in other.count.items():
            self.count[h] = self.count.get(h, 0) + n
        for key, (total, n, lo, hi) in other.sums.items():
            s = self.sums.setdefault(key, [0.0, 0, math.inf, -math.inf])
            s[0] += total
            s[1] += n
            s[2], s[3] = min(s[2], lo), max(s[3], hi)
        if other.dist is not None:
            self.dist = other.dist if self.dist is None else self.dist + other.dist
        self.dist_n += other.dist_n
        self.too_large = self.too_large or other.too_large

    def rows(self, module: str, step: str) -> list[dict[str, Any]]:
        near = None
        if self.dist is not None and self.dist_n:
            near = nearest_heads(self.dist / self.dist_n)
        out = []
        for h in sorted(self.count):
            row: dict[str, Any] = {"module": module, "step": step, "head": h,
                                   "map": self.measure, "samples": self.count[h]}
            for m in METRICS:
                s = self.sums.get((h, m))
                if s is None or not s[1]:
                    row[m] = math.nan
                elif m == "min":
                    row[m] = s[2]
                elif m == "max":
                    row[m] = s[3]
                else:
                    row[m] = s[0] / s[1]
            if near is not None and h < len(near[0]):
                row["nearest_head"], row["nearest_js"] = int(near[0][h]), float(near[1][h])
            else:
                row["nearest_head"], row["nearest_js"] = "", math.nan
            out.append(row)
        return out


def head_stats(source: Any, modules: Sequence[str] | None = None, *,
               steps: Sequence[str] | None = None, samples: Any = None,
               tokens: Sequence[str] | None = None, csv_path: str | os.PathLike | None = None,
               similarity: bool = True, thresholds: Thresholds = Thresholds(),
               budget: int = BUDGET, progress: Any = None, cluster: Any = None,
               value_weighted: bool = False) -> StatsReport:
    """Metrics of every head, streamed over a store (or a recording, or arrays).

    Example:
        >>> report = head_stats(attnscope.open_store("runs/attn"), csv_path="stats.csv")
        >>> report.value("encoder.layers.0.self_attn", "prev_token", step="epoch_009")

    Args:
        modules, steps, samples: what to read (default: everything).
        tokens: token labels for a recording (stores use the step's ``tokens`` labels).
        csv_path: write one row per (entry, step, sample, head) here while reading.
        similarity: also compute each head's nearest other head (JS distance).
        progress: called with each block (e.g. to advance a progress bar).
        cluster: run on dask.distributed: a ``Client``, a scheduler address, or a
            number of local worker processes; each worker reads its own batches of the
            store (stores only). The report equals the single-process one.
        value_weighted: analyse a recording's value-weighted maps (captured with
            ``value_weighted=True``) instead of its probabilities; they are not
            probabilities, so they get the general metrics only (``map`` column).
    """
    if value_weighted:
        source = _value_weighted(source)
    accs: dict[tuple[str, str], _Acc] = {}
    measures: dict[str, str] = {}  # per entry, decided on its first block
    counter = FindingCounter(thresholds)
    writer = None
    with contextlib.ExitStack() as stack:
        if csv_path is not None:  # written aside, renamed onto csv_path when complete
            part = stack.enter_context(atomic_path(csv_path))
            writer = csv.writer(stack.enter_context(open(part, "w", newline="", encoding="utf-8")))
            writer.writerow(PER_SAMPLE_COLUMNS)
        if cluster is not None:
            from attnscope.analysis import distributed

            if not is_store(source):
                raise AnalysisError("cluster= needs a store: recordings and arrays are in "
                                    "this process's memory")
            with distributed.connect(cluster) as client:
                accs, counter = distributed.run(source, client, modules, steps, samples,
                                                similarity, thresholds, budget, writer,
                                                progress)
        else:
            for b in blocks(source, modules, steps, samples, tokens, budget):
                if value_weighted:
                    measures.setdefault(b.module, VALUE_WEIGHTED)
                add_block(b, measures, accs, counter, similarity, writer)
                if progress is not None:
                    progress(b)
    rows = [r for (module, step), acc in accs.items() for r in acc.rows(module, step)]
    if not rows:
        raise AnalysisError("nothing to analyse: no maps matched the selection")
    return StatsReport(rows, counter.findings(), None if csv_path is None else Path(csv_path),
                       _similarity_notes(accs, budget))


def _similarity_notes(accs: dict[tuple[str, str], _Acc], budget: int) -> list[str]:
    """One line naming the entries whose heads were not compared (a sample's heads did
    not fit the read budget together), why, and how to get the comparison."""
    big = {m: a.too_large for (m, _), a in accs.items() if a.too_large}
    if not big:
        return []
    names = list(big)
    q, k = max(big.values(), key=lambda s: s[0] * s[1])
    listed = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return [f"head similarity (nearest_js) skipped for {listed}: one sample's heads "
            f"({q} x {k} values each) do not fit the read budget of {budget:,} values "
            f"together; to compare them, pass --budget of at least heads x {q * k:,} "
            "(4 bytes per value in memory) with --module to pick these entries"]


def _value_weighted(rec: Any) -> Any:
    """A recording whose maps carry their value-weighted matrices as weights."""
    maps = [replace(m, weights=m.value_weighted) for m in getattr(rec, "maps", [])
            if getattr(m, "value_weighted", None) is not None]
    if not maps:
        raise AnalysisError("no value-weighted maps: capture with attnscope.capture(model, "
                            "value_weighted=True) and pass the recording")
    out = Recording()  # the source layer reads Recordings, not look-alikes
    out.maps = maps
    return out


def add_block(b: Any, measures: dict[str, str], accs: dict[tuple[str, str], _Acc],
              counter: FindingCounter, similarity: bool, writer: Any) -> None:
    """Add one block; what an entry holds is decided on its first block."""
    if b.module not in measures:
        measures[b.module] = PROBABILITY if b.graph else measure_of(b.module, b.weights)
    _add_block(b, measures[b.module], accs, counter, similarity, writer)


def _add_block(b: Any, measure: str, accs: dict[tuple[str, str], _Acc],
               counter: FindingCounter, similarity: bool, writer: Any) -> None:
    """Metrics, diagnostics, head distances and CSV rows of one block. Maps that are
    not probabilities get no probability metrics, diagnostics or JS distances."""
    prob = measure == PROBABILITY
    if b.graph:
        values = graph_metrics(b.weights, b.edge_index)
    else:
        cache: dict[str, np.ndarray] = {}
        values = map_metrics(b.weights, b.query_tokens, b.key_tokens, probability=prob,
                             cache=cache)
        if prob:
            counter.add(b, values, cache)
    acc = accs.setdefault((b.module, b.step), _Acc(measure))
    acc.add(b.heads, values)
    near = None
    if similarity and prob and not b.graph and not b.all_heads:
        acc.too_large = tuple(b.weights.shape[-2:])  # heads were read apart: not compared
    if similarity and prob and not b.graph and b.all_heads and len(b.heads) > 1:
        d = head_distances(b.weights)
        acc.dist = np.nan_to_num(d).sum(0) + (0 if acc.dist is None else acc.dist)
        acc.dist_n += d.shape[0]
        near = nearest_heads(d)
    if writer is not None:
        _write_rows(writer, b, measure, values, near)


def _write_rows(writer: Any, b: Any, measure: str, values: dict[str, np.ndarray],
                near: Any) -> None:
    for i, sample in enumerate(b.samples):
        for j, head in enumerate(b.heads):
            cells = [csv_cell(float(values[m][i, j])) if m in values else "" for m in METRICS]
            extra = ["", ""] if near is None else [int(near[0][i, j]),
                                                   csv_cell(float(near[1][i, j]))]
            writer.writerow([b.module, b.step, int(sample), int(head), measure, *cells,
                             *extra])
