"""The summary ``attnscope.capture(..., stats=True)`` prints when its block ends:
min/max/mean/entropy (and a few more) per entry and head, accumulated map by map as the
capture runs, so it works with ``keep=False`` stores too and holds no maps."""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.analysis.metrics import graph_metrics, map_metrics
from attnscope.analysis.stats import StatsReport, _Acc
from attnscope.entries import entry_name

SUMMARY = ("min", "max", "mean", "entropy", "norm_entropy", "peak")


class StatsTee:
    """A map sink that summarises every map, then passes it on to ``inner`` (a store
    writer, or nothing)."""

    def __init__(self, inner: Any = None, step: str = "") -> None:
        self.inner, self.step = inner, step
        self._accs: dict[str, _Acc] = {}

    def write(self, m: Any) -> None:
        w = m.weights.detach().float().numpy()
        if m.is_graph:
            w = w if w.ndim > 2 else w[None]
            values = graph_metrics(w, m.edge_index.numpy(), SUMMARY)
        else:
            values = map_metrics(w, metrics=SUMMARY)
        name = entry_name(m.module, m.call_index)
        self._accs.setdefault(name, _Acc()).add(np.arange(w.shape[-1] if m.is_graph
                                                          else w.shape[1]), values)
        if self.inner is not None:
            self.inner.write(m)

    def commit(self) -> None:
        if self.inner is not None:
            self.inner.commit()

    def report(self) -> StatsReport | None:
        rows = [r for name, acc in self._accs.items() for r in acc.rows(name, self.step)]
        return StatsReport(rows) if rows else None


def print_summary(report: StatsReport | None) -> None:
    """The per-head table on stderr."""
    if report is None:
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file: no reason to fold names at 80 columns
        console = Console(stderr=True, width=200)
    console.print(report.table(SUMMARY, title="attention captured (per head; mean over "
                                              "samples)"))
