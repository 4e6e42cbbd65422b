"""What ``head_stats`` hands back: per-head summary rows and the diagnostics, as a
rich table or CSV."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnscope._files import atomic_path
from attnscope.analysis._blocks import AnalysisError
from attnscope.analysis.diagnostics import Finding
from attnscope.analysis.kinds import PROBABILITY
from attnscope.analysis.metrics import METRICS

KEYS = ("module", "step", "head")
EXTRA = ("nearest_head", "nearest_js")
# the per-sample CSV (stats_per_sample.csv, a generation's head_stats.csv): one row per
# (entry, step, sample, head)
PER_SAMPLE_COLUMNS = ("module", "step", "sample", "head", "map", *METRICS, *EXTRA)
SHORT = {"norm_entropy": "H/Hmax", "entropy": "H", "keys90": "k90", "distance": "dist",
         "prev_token": "prev", "nearest_js": "JS near", "nearest_head": "near",
         "dup_token": "dup", "induction": "induct", "diagonal": "diag"}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3g}"
    return str(v)


@dataclass
class StatsReport:
    """Per-head summaries (``rows``: dicts with module, step, head, ``map`` (what the
    maps hold: ``probability``, ``effective`` or ``weights``), samples and every metric)
    and the diagnostics found on the way."""

    rows: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)
    csv_path: Path | None = None
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    def value(self, module: str, metric: str, step: str = "", head: int | None = None
              ) -> np.ndarray | float:
        """One metric of one entry: per head (array), or one head's value."""
        got = [r for r in self.rows if r["module"] == module and r["step"] == step]
        if not got:
            raise AnalysisError(f"no stats for {module!r} at step {step!r}")
        vals = np.array([r[metric] for r in sorted(got, key=lambda r: r["head"])], float)
        return vals if head is None else float(vals[head])

    def by_module(self) -> list[dict[str, Any]]:
        """Rows averaged over heads (min/max over heads)."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.rows:
            groups.setdefault((r["module"], r["step"]), []).append(r)
        out = []
        for (module, step), rs in groups.items():
            row: dict[str, Any] = {"module": module, "step": step, "head": "all",
                                   "map": rs[0].get("map", ""), "samples": rs[0]["samples"]}
            for m in METRICS:
                v = np.array([r[m] for r in rs], float)
                row[m] = _reduce(m, v)
            out.append(row)
        return out

    def table(self, metrics: Sequence[str] = METRICS, by: str = "head",
              title: str | None = None) -> Any:
        """A rich ``Table`` of the summary (metrics that are NaN everywhere left out)."""
        from rich.table import Table

        rows = self.rows if by == "head" else self.by_module()
        shown = [m for m in metrics if any(isinstance(r.get(m), (int, float)) and not (
            isinstance(r.get(m), float) and math.isnan(r[m])) for r in rows)]
        keys: tuple[str, ...] = ("module", "step", "head") if any(r["step"] for r in rows) \
            else ("module", "head")
        # say which rows are not probabilities (their probability metrics are "-")
        keys += ("map", "samples") if any(r.get("map", PROBABILITY) != PROBABILITY
                                          for r in rows) else ("samples",)
        table = Table(title=title)
        for col in (*keys, *shown):
            table.add_column(SHORT.get(col, col), justify="left" if col in ("module", "step")
                             else "right", overflow="fold")
        for r in rows:
            cells = [_cell(r.get(c, "")) for c in (*keys, *shown)]
            table.add_row(cells[0] or "<root>", *cells[1:])
        return table

    def write_csv(self, path: str | os.PathLike) -> Path:
        """The per-head summary as CSV."""
        path = Path(path)
        cols = [*KEYS, "map", "samples", *METRICS, *EXTRA]
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, cols, extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow({c: csv_cell(r.get(c)) for c in cols})
        return path


def _reduce(metric: str, v: np.ndarray) -> float:
    if not np.isfinite(v).any():
        return math.nan
    if metric == "min":
        return float(np.nanmin(v))
    if metric == "max":
        return float(np.nanmax(v))
    return float(np.nanmean(v))


def csv_cell(v: Any) -> Any:
    """A value as every attnscope stats CSV writes it (6 digits; NaN as empty)."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def summarize(findings: Sequence[Finding]) -> list[str]:
    """Findings grouped for reading: per code, its explanation once, then one line per
    module naming the heads and steps that show it."""
    from attnscope.analysis.diagnostics import EXPLAIN

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
