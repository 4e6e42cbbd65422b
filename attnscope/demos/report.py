"""What a demo leaves beside its store: the evolution figure (one sample across epochs
beside the pattern metric), the interactive ``view.html`` and ``summary.md``.

Figures are made and saved the one way :mod:`attnscope.plot` does (Agg, object API).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attnscope._files import write_text
from attnscope.store.schema import META_FILE

if TYPE_CHECKING:
    from attnscope.demos.registry import DemoResult


def plot_evolution(rows: np.ndarray, metric: Sequence[float], *, steps: Sequence[str],
                   marked: Sequence[int] | None = None, key_axis: str = "time step",
                   metric_name: str = "metric", threshold: float | None = None,
                   title: str = "", path: Path) -> Path:
    """Attention of one sample across epochs (rows ``(epoch, key)``) beside the pattern
    metric per epoch. attnscope.plot draws one map at a time; this joins several."""
    from attnscope.plot import new_figure, save_figure

    fig = new_figure((11, 0.28 * len(steps) + 2.4), dpi=120)
    left, right = fig.subplots(1, 2, width_ratios=[3, 1])
    image = left.imshow(rows, aspect="auto", cmap="viridis", interpolation="nearest")
    left.set_yticks(range(len(steps)), list(steps), fontsize=7)
    left.set_xlabel(key_axis)
    for m in marked or ():
        left.axvline(m, color="tab:red", lw=0.8, ls=":")
    fig.colorbar(image, ax=left, label="attention weight", shrink=0.9)
    left.set_title(title, fontsize=9)
    right.plot(np.arange(len(metric)), metric, marker="o", color="tab:blue")
    if threshold is not None:
        right.axhline(threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
        right.legend(fontsize=7)
    right.set_xlabel("epoch")
    right.set_ylabel(metric_name, fontsize=8)
    right.set_title("pattern metric (validation)", fontsize=9)
    right.grid(alpha=0.3)
    save_figure(fig, path)
    return path


def write_view(out: Path, max_mb: float = 40.0) -> Path | None:
    """``out/view.html``: the interactive viewer of the demo's store (every step on the
    slider), narrowed to the last step, then one head, when that is too large."""
    if not (out / "store" / META_FILE).exists():
        return None
    from attnscope.viewer import ViewTooLargeError, render_html

    for selection in ({}, {"steps": "last"}, {"steps": "last", "heads": [0]}):
        try:
            return render_html(out / "store", max_mb=max_mb, **selection).save(out / "view.html")
        except ViewTooLargeError:
            continue
    return None


def write_summary(out: Path, result: DemoResult, *, expected: str, task: str,
                  trained: bool, notes: Sequence[str] = (), trains: bool = True) -> Path:
    """``out/summary.md``: what was expected, what the metric shows, how long training took."""
    verdict = "shown" if result.passed else "NOT shown"
    if not trains:
        model = "pretrained weights, no training" if trained else \
            "randomly initialised control (same architecture)"
    else:
        model = "trained" if trained else "untrained control (same seed, no training)"
    lines = [
        f"# attnscope demo: {result.family}",
        "",
        f"- task: {task}",
        f"- expected attention: {expected}",
        f"- model: {model}",
        f"- {result.metric_name}: **{result.metric:.4f}** "
        f"(threshold {result.threshold:.4f}) -> pattern {verdict}",
    ]
    if trains and trained:
        lines.append(f"- training time: {result.train_seconds:.1f} s")
    lines += [f"- {k}: {v:.4g}" for k, v in result.details.items()]
    lines += [f"- {n}" for n in notes]
    view = write_view(out)
    if view is not None:
        result.files.append(view)
    files = list(result.files)
    if files:
        lines += ["", "## Files", ""] + [f"- `{Path(f).name}`" for f in files]
    path = out / "summary.md"
    return write_text(path, "\n".join(lines) + "\n")
