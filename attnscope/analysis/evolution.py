"""Attention across training: metric curves per head over steps, and what changed
between two steps (metric deltas and map differences on the same samples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.analysis._blocks import AnalysisError, blocks, is_store
from attnscope.analysis.metrics import METRICS
from attnscope.analysis.similarity import js_distance
from attnscope.analysis.stats import head_stats


def metric_curves(source: Any, module: str | None, metrics: Sequence[str] = ("norm_entropy",),
                  *, steps: Sequence[str] | None = None, samples: Any = None
                  ) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(steps, {metric: (step, head)})``, each value the mean over samples.

    Example:
        >>> steps, curves = metric_curves(store, "model.attention", ["peak", "norm_entropy"])
        >>> curves["peak"][:, 0]          # head 0 over epochs

    Args:
        source: a store with several steps, or ``{step: recording, map or array}``.
        module: the entry (default: the store's first module).
    """
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise AnalysisError(f"unknown metrics {bad}; available: {', '.join(METRICS)}")
    if isinstance(source, Mapping):
        if not source:
            raise AnalysisError("no steps to compare: the mapping is empty")
        names = list(steps) if steps else list(source)
        missing = [s for s in names if s not in source]
        if missing:
            raise AnalysisError(f"no step {missing[0]!r}; have {list(source)}")
        rows = []
        for name in names:
            value = source[name]
            named = hasattr(value, "maps") or is_store(value)
            report = head_stats(value, [module] if module and named else None,
                                samples=samples, similarity=False)
            want = module if module and named else report.rows[0]["module"]
            rows += [{**r, "step": name} for r in report.rows if r["module"] == want]
    else:
        if not is_store(source):
            raise AnalysisError("metric curves need a store with several steps, or a "
                                "{step: map} mapping")
        module = module or source.modules[0]
        names = list(steps) if steps else [s for s in source.steps
                                           if source.segments(module, s)]
        rows = head_stats(source, [module], steps=names, samples=samples,
                          similarity=False).rows
    heads = sorted({r["head"] for r in rows})
    out = {m: np.full((len(names), len(heads)), np.nan) for m in metrics}
    for r in rows:
        for m in metrics:
            out[m][names.index(r["step"]), heads.index(r["head"])] = r[m]
    return names, out


@dataclass
class StepDiff:
    """How one entry changed from step ``a`` to step ``b`` (per head)."""

    module: str
    a: str
    b: str
    samples: int  # samples compared (the common prefix with equal shapes)
    mean_abs: np.ndarray  # (head,) mean |w_b - w_a| over compared weights
    max_abs: np.ndarray  # (head,) largest |w_b - w_a|
    js: np.ndarray  # (head,) mean JS distance between the rows at a and at b
    metrics: dict[str, np.ndarray]  # metric -> (head,) value at b minus value at a
    mean_diff: np.ndarray | None  # (head, query, key) mean of w_b - w_a when shapes agree


def compare_steps(store: Any, module: str, a: str, b: str, *, samples: Any = None,
                  metrics: Sequence[str] = ("norm_entropy", "peak", "distance", "first")
                  ) -> StepDiff:
    """Difference of two steps of one entry, sample by sample (bounded memory).

    Example:
        >>> d = compare_steps(store, "model.attention", "epoch_000", "epoch_009")
        >>> d.js        # per head: 0 = unchanged, 1 = attends elsewhere entirely
    """
    if not is_store(store):
        raise AnalysisError("compare_steps needs a store")
    n = min(store.num_samples(module, a), store.num_samples(module, b))
    picks = np.arange(n) if samples is None else np.atleast_1d(np.asarray(samples))[:n]
    # sample by sample: the two steps may be batched differently
    pairs = ((xa, xb) for i in picks for xa, xb in zip(
        blocks(store, [module], [a], [int(i)]), blocks(store, [module], [b], [int(i)])))
    total = peak = js = mean_map = None
    count = rows = compared = 0
    same_shape = True
    for xa, xb in pairs:
        if xa.graph or not xa.all_heads:
            raise AnalysisError(f"{module!r}: step comparison needs dense maps read whole")
        wa, wb = xa.weights, xb.weights
        if wa.shape != wb.shape:
            same_shape = False
            continue
        d = np.nan_to_num(wb) - np.nan_to_num(wa)  # (sample, head, query, key)
        s, m = np.abs(d).sum(axis=(0, 2, 3)), np.abs(d).max(axis=(0, 2, 3))
        j = np.nan_to_num(js_distance(wa, wb)).sum(axis=(0, 2))
        total = s if total is None else total + s
        peak = m if peak is None else np.maximum(peak, m)
        js = j if js is None else js + j
        compared += wa.shape[0]
        count += wa.shape[0] * wa.shape[2] * wa.shape[3]
        rows += wa.shape[0] * wa.shape[2]
        if mean_map is None:
            mean_map = d.sum(0)
        elif mean_map.shape == d.shape[1:]:
            mean_map = mean_map + d.sum(0)
        else:
            same_shape = False
    if total is None:
        raise AnalysisError(f"{module!r}: steps {a!r} and {b!r} share no samples of the "
                            "same shape to compare")
    ra = head_stats(store, [module], steps=[a], samples=picks, similarity=False)
    rb = head_stats(store, [module], steps=[b], samples=picks, similarity=False)
    deltas = {m: np.asarray(rb.value(module, m, b)) - np.asarray(ra.value(module, m, a))
              for m in metrics}
    return StepDiff(module, a, b, compared, total / count, peak, js / rows, deltas,
                    mean_map / compared if same_shape else None)
