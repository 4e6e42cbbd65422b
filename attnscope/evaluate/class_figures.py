"""Classification figures: the confusion matrix and the class timeline (a hypnogram-like
step plot of true and predicted class over the sample index)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.evaluate.figures import (
    PREDICTION_COLOR,
    TARGET_COLOR,
    ZOOM_AFTER,
    timeline_panels,
)
from attnscope.evaluate.predictions import Predictions
from attnscope.plot import new_figure
from attnscope.plot import save_figure as save

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_confusion_matrix(metrics: dict[str, Any], path: str | os.PathLike | None = None,
                          dpi: float = 150) -> Figure:
    """Counts per (true, predicted) class, coloured by the share of each true class (so
    rare classes are as visible as common ones); accuracy and macro-F1 in the title."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    names = [str(c) for c in metrics["classes"]]
    k = len(names)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    side = min(12.0, max(4.4, 0.55 * k + 2.8))
    fig = new_figure((side + 1.0, side), dpi)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 25:
        for i in range(k):
            for j in range(k):
                text = f"{cm[i, j]}\n{share[i, j]:.0%}" if k <= 12 else str(cm[i, j])
                ax.text(j, i, text, ha="center", va="center",
                        fontsize=8 if k <= 12 else 6,
                        color="white" if share[i, j] > 0.55 else "black")
    ticks = np.arange(k)
    ax.set_xticks(ticks, names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right"
                  if max(map(len, names)) > 3 else "center")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc, f1 = metrics.get("accuracy"), metrics.get("macro_f1")
    ax.set_title(f"Confusion matrix (test set, n={int(cm.sum())})\naccuracy {_pct(acc)} \u00b7 "
                 f"macro-F1 {_num(f1)}", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class")
    return save(fig, path, dpi)


def plot_class_timeline(pred: Predictions, path: str | os.PathLike | None = None,
                        dpi: float = 150, class_names: Sequence[str] | None = None) -> Figure:
    """True and predicted class over the sample index; wrong predictions marked where
    single samples can be told apart."""
    idx = np.arange(len(pred))
    fig = new_figure((10, 3.8 if len(pred) <= ZOOM_AFTER else 6.6), dpi)
    k = pred.num_classes
    names = list(class_names) if class_names is not None and len(class_names) == k else None
    for ax, part, title in timeline_panels(fig, len(pred), "Prediction timeline (test set"):
        i, t, p = idx[part], pred.target[part], pred.prediction[part]
        thin = len(i) > ZOOM_AFTER
        ax.step(i, t, where="mid", color=TARGET_COLOR, linewidth=1.0 if thin else 1.6,
                label="target")
        ax.step(i, p, where="mid", color=PREDICTION_COLOR, linewidth=0.5 if thin else 1.0,
                alpha=0.85, label="prediction")
        if not thin:
            wrong = p != t
            ax.scatter(i[wrong], p[wrong], marker="x", s=18, color="#c00000", linewidths=1,
                       zorder=3, label=f"wrong ({int((pred.prediction != pred.target).sum())})")
        ax.set_yticks(np.arange(k), names if names else [str(c) for c in range(k)])
        ax.set_ylim(-0.5, k - 0.5)
        ax.set_ylabel("class")
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="x")
    fig.legend(*fig.axes[-1].get_legend_handles_labels(), loc="outside lower center",
               fontsize=8, ncols=3, frameon=False)
    return save(fig, path, dpi)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
