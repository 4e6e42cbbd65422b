"""One page per sample for hierarchical sequence models (e.g. EEG sleep staging): the
inter-epoch matrix labelled ``true->pred``, channel attention for chosen epochs, and
temporal attention for chosen epochs and channels (over the signal when given)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure, _matrix, _ticks
from attnscope.plot._source import to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _over_keys(a: Any, keep: int, what: str) -> tuple[np.ndarray, str]:
    """Reduce to ``keep`` dims by averaging heads then queries; say what was averaged."""
    a = to_numpy(a)
    note = ""
    if a.ndim == keep + 2:  # (..., head, query, key)
        a, note = a.mean(axis=(-3, -2)), " (mean over heads and queries)"
    elif a.ndim == keep + 1:  # (..., query, key)
        a, note = a.mean(axis=-2), " (mean over queries)"
    if a.ndim != keep:
        raise ValueError(f"{what} has shape {a.shape}; see plot_dashboard for accepted shapes")
    return a, note


def _default_epochs(n: int, wrong: list[int]) -> list[int]:
    picked = wrong[:3] or list(range(min(3, n)))
    return sorted(picked)


def plot_dashboard(epoch_attention: Any, *, channel_attention: Any = None,
                   temporal_attention: Any = None, true: Sequence[Any] | None = None,
                   pred: Sequence[Any] | None = None, class_names: Sequence[str] | None = None,
                   channel_names: Sequence[str] | None = None,
                   epochs: Sequence[int] | None = None, channels: Sequence[int] | None = None,
                   signal: Any = None, epoch_seconds: float = 30.0, cmap: Any = "viridis",
                   title: str | None = None, dpi: float = 150,
                   path: str | os.PathLike | None = None) -> Figure:
    """Hierarchical attention of one sample on one page.

    Example:
        >>> fig = plot_dashboard(inter[0], channel_attention=chan[0],
        ...                      temporal_attention=temp[0], true=y[0], pred=p[0],
        ...                      class_names=["W", "N1", "N2", "N3", "REM"],
        ...                      channel_names=["Fpz-Cz", "Pz-Oz", "EOG"], signal=x[0])

    Args:
        epoch_attention: ``(epoch, epoch)`` or ``(head, epoch, epoch)`` (heads averaged).
        channel_attention: ``(epoch, channel)`` weights per epoch, or
            ``(epoch, channel, channel)`` / ``(epoch, head, channel, channel)`` (averaged
            to the attention each channel receives).
        temporal_attention: ``(epoch, channel, time)``, or ``(epoch, channel, query,
            key)`` / ``(epoch, channel, head, query, key)`` (averaged the same way).
        true, pred: class per epoch (indices into ``class_names``, or names); wrong
            predictions are labelled in red.
        epochs: epochs to detail (default: up to 3 misclassified, else the first 3).
        channels: channels to detail in the temporal rows (default: up to 4).
        signal: ``(epoch, channel, samples)`` raw input drawn under temporal attention.
        epoch_seconds: epoch length for the time axis.
    """
    inter = to_numpy(epoch_attention)
    inter = inter.mean(axis=0) if inter.ndim == 3 else inter  # (query epoch, key epoch)
    n = inter.shape[-1]
    labels, colors, wrong = None, None, []
    if true is not None and pred is not None:
        labels, colors = _ticks.epoch_labels(true, pred, class_names)
        wrong = [i for i, c in enumerate(colors) if c != "black"]
    epochs = list(epochs) if epochs is not None else _default_epochs(n, wrong)
    temporal, tnote = (_over_keys(temporal_attention, 3, "temporal_attention")
                       if temporal_attention is not None else (None, ""))
    nchan = temporal.shape[1] if temporal is not None else 0
    channels = list(channels) if channels is not None else list(range(min(4, nchan)))
    fig = _figure.new_figure((max(10.0, 2.6 * len(channels) + 1), 5.2 + 1.5 * len(epochs)), dpi)
    top, bottom = fig.subfigures(2, 1, height_ratios=[5.0, 1.5 * len(epochs) + 0.3])
    _inter_panel(top, inter, labels, colors, epochs, cmap, channel_attention, channel_names)
    if temporal is not None and epochs and channels:
        _temporal_rows(bottom, temporal, signal, epochs, channels, channel_names, labels,
                       epoch_seconds, tnote)
    fig.suptitle(title or "hierarchical attention", fontsize=11, fontweight="bold")
    return _figure.save(fig, path, dpi)


def _inter_panel(sub: Any, inter: np.ndarray, labels: Any, colors: Any, epochs: list[int],
                 cmap: Any, channel_attention: Any, channel_names: Any) -> None:
    axes = sub.subplots(1, 2 if channel_attention is not None else 1, squeeze=False,
                        width_ratios=[1.2, 1] if channel_attention is not None else None)[0]
    ax = axes[0]
    n = inter.shape[0]
    im = _matrix.draw_matrix(ax, inter, cmap=cmap, max_pixels=(600, 600))
    _ticks.set_labels(ax, "x", labels, n, 4.0, "key epoch (true->pred)" if labels else "key epoch",
                      colors)
    _ticks.set_labels(ax, "y", labels, n, 4.0,
                      "query epoch (true->pred)" if labels else "query epoch", colors)
    for e in epochs:  # frame the detailed epochs
        ax.axhline(e, color="white", lw=0.6, ls=":", zorder=3)
    sub.colorbar(im, ax=ax, shrink=0.85, label="attention weight")
    ax.set_title("attention across epochs (red: misclassified)" if labels else
                 "attention across epochs", fontsize=10)
    if channel_attention is None:
        return
    chan, note = _over_keys(channel_attention, 2, "channel_attention")  # (epoch, channel)
    rows = chan[epochs]
    ax = axes[1]
    cim = _matrix.draw_matrix(ax, rows, cmap=cmap, mask=None, max_pixels=(600, 600))
    names = list(channel_names) if channel_names is not None else None
    _ticks.set_labels(ax, "x", names, rows.shape[1], 3.5, "channel")
    ylab = [f"epoch {e}" + (f"  {labels[e]}" if labels else "") for e in epochs]
    _ticks.set_labels(ax, "y", ylab, len(epochs), 3.0)
    hi = float(np.nanmax(rows)) if rows.size else 1.0
    if rows.size <= 60:
        for (i, j), v in np.ndenumerate(rows):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > 0.6 * hi else "white")
    sub.colorbar(cim, ax=ax, shrink=0.85, label="attention weight")
    ax.set_title("attention across channels" + note, fontsize=10)


def _temporal_rows(sub: Any, temporal: np.ndarray, signal: Any, epochs: list[int],
                   channels: list[int], channel_names: Any, labels: Any, seconds: float,
                   note: str) -> None:
    axes = sub.subplots(len(epochs), len(channels), squeeze=False, sharex=True)
    sig = to_numpy(signal) if signal is not None else None
    for r, e in enumerate(epochs):
        for c, ch in enumerate(channels):
            ax = axes[r, c]
            w = temporal[e, ch]
            t = (np.arange(w.shape[0]) + 0.5) * seconds / w.shape[0]
            if sig is not None:
                s = sig[e, ch]
                twin = ax.twinx()
                twin.plot(np.linspace(0, seconds, s.shape[0]), s, color="0.55", lw=0.5)
                twin.set_yticks([])
                twin.set_zorder(0)
                ax.set_zorder(1)
                ax.patch.set_visible(False)
            ax.fill_between(t, w, step="mid", color="tab:orange", alpha=0.75, lw=0)
            ax.set_ylim(0, float(np.nanmax(temporal[epochs][:, channels])) * 1.05)
            ax.tick_params(labelsize=6)
            ax.set_xlim(0, seconds)
            name = channel_names[ch] if channel_names is not None else f"channel {ch}"
            if r == 0:
                ax.set_title(str(name), fontsize=9)
            if c == 0:
                ax.set_ylabel(f"epoch {e}" + (f"\n{labels[e]}" if labels else ""), fontsize=8)
            if r == len(epochs) - 1:
                ax.set_xlabel("time in epoch (s)", fontsize=8)
    sub.suptitle("attention over time within each epoch" + note +
                 (" \u00b7 grey: input signal" if sig is not None else ""), fontsize=10)
