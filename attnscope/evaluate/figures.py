"""Evaluation figures. Each function returns a matplotlib ``Figure`` (object API, no
pyplot state, made and saved the one way :mod:`attnscope.plot` does) and saves it when
given a ``path``, so tests can inspect axes and labels.

Regression: predicted vs actual, residuals, timeline, error distribution.
Classification: confusion matrix and timeline (see :mod:`attnscope.evaluate.class_figures`).
matplotlib is imported only when a figure is made.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.evaluate.predictions import Predictions
from attnscope.plot import new_figure
from attnscope.plot import save_figure as save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PREDICTION_COLOR = "#d95f02"
TARGET_COLOR = "#1b9e77"
LINE_COLOR = "0.25"
ZOOM_AFTER, ZOOM_SHOW = 1000, 300


def plot_predicted_vs_actual(pred: Predictions, metrics: dict[str, Any],
                             path: str | os.PathLike | None = None, dpi: float = 150
                             ) -> Figure:
    """Scatter of prediction against target with the y = x line; metrics in the legend."""
    from matplotlib.lines import Line2D

    t, p = pred.target.ravel(), pred.prediction.ravel()
    fig = new_figure((5.6, 5.2), dpi)
    ax = fig.add_subplot()
    size, alpha = _marker(len(t))
    ax.scatter(t, p, s=size, alpha=alpha, color=PREDICTION_COLOR, edgecolors="none",
               rasterized=len(t) > 5000, label=f"test samples (n={len(pred)})")
    lo, hi = _limits(np.concatenate([t, p]))
    ax.plot([lo, hi], [lo, hi], linestyle="--", color=LINE_COLOR, linewidth=1, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    handles, _ = ax.get_legend_handles_labels()
    for key, name in (("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R\u00b2")):
        handles.append(Line2D([], [], linestyle="none", label=f"{name} = {_fmt(metrics[key])}"))
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_xlabel("actual (target)")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual (test set)")
    ax.grid(alpha=0.3)
    return save(fig, path, dpi)


def plot_residuals(pred: Predictions, path: str | os.PathLike | None = None, dpi: float = 150
                   ) -> Figure:
    """Residual (prediction - target) histogram, and residual against prediction."""
    r, p = pred.error.ravel(), pred.prediction.ravel()
    fig = new_figure((10, 4.2), dpi)
    hist_ax, scatter_ax = fig.subplots(1, 2)
    hist_ax.hist(r, bins=_bins(len(r)), color=PREDICTION_COLOR, alpha=0.8, edgecolor="white")
    hist_ax.axvline(0, color=LINE_COLOR, linewidth=1, linestyle="--", label="zero")
    hist_ax.axvline(float(r.mean()), color="#7570b3", linewidth=1.5,
                    label=f"mean = {_fmt(float(r.mean()))}, std = {_fmt(float(r.std()))}")
    hist_ax.set_xlabel("residual (prediction \u2212 target)")
    hist_ax.set_ylabel("samples")
    hist_ax.set_title("Residual distribution")
    hist_ax.legend(fontsize=8)
    size, alpha = _marker(len(r))
    scatter_ax.scatter(p, r, s=size, alpha=alpha, color=PREDICTION_COLOR, edgecolors="none",
                       rasterized=len(r) > 5000)
    scatter_ax.axhline(0, color=LINE_COLOR, linewidth=1, linestyle="--")
    scatter_ax.set_xlabel("predicted")
    scatter_ax.set_ylabel("residual (prediction \u2212 target)")
    scatter_ax.set_title("Residuals vs predicted")
    for ax in (hist_ax, scatter_ax):
        ax.grid(alpha=0.3)
    return save(fig, path, dpi)


def plot_timeline(pred: Predictions, path: str | os.PathLike | None = None, dpi: float = 150,
                  class_names: list[str] | None = None) -> Figure:
    """Prediction and target over the sample index (data-set order)."""
    if pred.task == "classification":
        from attnscope.evaluate.class_figures import plot_class_timeline

        return plot_class_timeline(pred, path, dpi, class_names)
    multi = pred.prediction.ndim == 2
    t = pred.target[:, 0] if multi else pred.target
    p = pred.prediction[:, 0] if multi else pred.prediction
    idx = np.arange(len(t))
    fig = new_figure((10, 3.8 if len(t) <= ZOOM_AFTER else 6.6), dpi)
    for ax, part, title in timeline_panels(fig, len(t), "Prediction timeline (test set"
                                           + (", output 0" if multi else "")):
        width = 1.2 if part.stop - part.start <= 500 else 0.6
        ax.plot(idx[part], t[part], color=TARGET_COLOR, linewidth=width, label="target")
        ax.plot(idx[part], p[part], color=PREDICTION_COLOR, linewidth=width,
                alpha=0.85 if width > 1 else 0.6, label="prediction")
        ax.set_title(title)
        ax.set_ylabel("value")
        ax.grid(alpha=0.3)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center",
               fontsize=8, ncols=2, frameon=False)
    return save(fig, path, dpi)


def timeline_panels(fig: Figure, n: int, title: str) -> list[tuple[Any, slice, str]]:
    """One panel for short test sets; beyond ``ZOOM_AFTER`` samples a second panel shows
    the first ``ZOOM_SHOW`` samples, where single predictions can still be seen."""
    parts = [slice(0, n)] if n <= ZOOM_AFTER else [slice(0, n), slice(0, ZOOM_SHOW)]
    axes = [fig.add_subplot()] if len(parts) == 1 else list(fig.subplots(2, 1))
    titles = [title + ")"] if len(parts) == 1 else [
        f"{title}, all {n} samples)", f"first {ZOOM_SHOW} samples"]
    for ax, part in zip(axes, parts):
        ax.set_xlim(part.start - 0.5, max(part.stop - 0.5, 0.5))
    axes[-1].set_xlabel("sample index")
    return list(zip(axes, parts, titles))


def plot_error_distribution(pred: Predictions, metrics: dict[str, Any],
                            path: str | os.PathLike | None = None, dpi: float = 150
                            ) -> Figure:
    """Histogram of absolute errors with MAE and RMSE marked, and the share of samples
    within each error (cumulative curve, right axis)."""
    e = np.sort(np.abs(pred.error.ravel()))
    fig = new_figure((6.4, 4.4), dpi)
    ax = fig.add_subplot()
    ax.hist(e, bins=_bins(len(e)), color=PREDICTION_COLOR, alpha=0.8, edgecolor="white",
            label="samples")
    ax.axvline(metrics["mae"], color="#7570b3", linewidth=1.5,
               label=f"MAE = {_fmt(metrics['mae'])}")
    ax.axvline(metrics["rmse"], color="#e7298a", linewidth=1.5, linestyle="--",
               label=f"RMSE = {_fmt(metrics['rmse'])}")
    ax.set_xlabel("absolute error |prediction \u2212 target|")
    ax.set_ylabel("samples")
    ax.set_title("Error distribution (test set)")
    ax.set_xlim(left=0)
    share = ax.twinx()
    share.plot(e, np.arange(1, len(e) + 1) / max(len(e), 1), color=LINE_COLOR, linewidth=1.2,
               label="share of samples \u2264 error")
    share.set_ylim(0, 1.02)
    share.set_ylabel("cumulative share of samples")
    lines = ax.get_legend_handles_labels()
    more = share.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    return save(fig, path, dpi)


def _marker(n: int) -> tuple[float, float]:
    """Marker size and opacity that keep overlapping points readable."""
    if n <= 300:
        return 22.0, 0.8
    if n <= 5000:
        return 9.0, 0.5
    return 3.0, 0.25


def _bins(n: int) -> int:
    return int(min(60, max(10, np.sqrt(max(n, 1)))))


def _limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 0.5)
    return lo - pad, hi + pad


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
