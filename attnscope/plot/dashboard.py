"""One page per sample for hierarchical sequence models (e.g. EEG sleep staging): the
inter-epoch matrix labelled ``true->pred``, channel attention for chosen epochs, and
temporal attention for chosen epochs and channels (over the signal when given)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure, _matrix, _ticks
from attnscope.sources import to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _over_keys(a: Any, keep: int, what: str) -> tuple[np.ndarray, str]:
    """Reduce to ``keep`` dims by averaging heads then queries; say what was averaged."""
    a = to_numpy(a)
    done = []
    if a.ndim == keep + 2:  # (..., head, query, key)
        done = [f"mean of {a.shape[-3]} heads"] if a.shape[-3] > 1 else []
        a = np.nanmean(a, axis=-3)
    if a.ndim == keep + 1:  # (..., query, key)
        done += ["mean over queries"] if a.shape[-2] > 1 else []
        a = np.nanmean(a, axis=-2)
    note = f"\n({', '.join(done)})" if done else ""
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
                   temporal_style: str = "auto", title: str | None = None, dpi: float = 150,
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
        signal: ``(epoch, channel, samples)`` raw input, drawn on its own axis under
            each temporal panel (same time axis).
        epoch_seconds: epoch length for the time axis.
        temporal_style: ``"heatmap"`` (query x key per epoch and channel), ``"bars"``
            (what each time step receives, mean over queries) or ``"auto"`` (heatmap
            when the temporal attention has several query rows).
    """
    inter = to_numpy(epoch_attention)
    heads = inter.shape[0] if inter.ndim == 3 else 1
    with np.errstate(invalid="ignore"):  # all-NaN cells stay NaN (absent, hatched)
        inter = np.nanmean(inter, axis=0) if inter.ndim == 3 else inter  # (query, key)
    n = inter.shape[-1]
    labels, colors, wrong = None, None, []
    if true is not None and pred is not None:
        labels, colors = _ticks.epoch_labels(true, pred, class_names)
        wrong = [i for i, c in enumerate(colors) if c != "black"]
    epochs = list(epochs) if epochs is not None else _default_epochs(n, wrong)
    bad = [e for e in epochs if not 0 <= e < n]
    if bad:
        raise ValueError(f"epoch {bad[0]} out of range: the sample has {n} epochs")
    temporal, tnote, style = _temporal(temporal_attention, temporal_style)
    nchan = temporal.shape[1] if temporal is not None else 0
    channels = list(channels) if channels is not None else list(range(min(4, nchan)))
    rows = len(epochs) if temporal is not None and channels else 0
    # fixed inches per part: a temporal row never gets squashed, however many there are
    top_h = 4.4
    row_h = (2.2 if style == "heatmap" else 1.35) + (0.5 if signal is not None else 0)
    fig = _figure.new_figure((max(10.0, 2.9 * len(channels) + 1.2),
                              0.5 + top_h + (rows * row_h + 0.9 if rows else 0)), dpi)
    if rows:
        top, bottom = fig.subfigures(2, 1, height_ratios=[top_h, rows * row_h + 0.9])
    else:
        top, bottom = fig, None
    _inter_panel(top, inter, labels, colors, epochs, cmap, channel_attention, channel_names,
                 heads)
    if bottom is not None and temporal is not None:
        _temporal_rows(bottom, temporal, signal, epochs, channels, channel_names, labels,
                       epoch_seconds, tnote, style, cmap)
    fig.suptitle(title or "hierarchical attention", fontsize=11, fontweight="bold")
    return _figure.save(fig, path, dpi)


def _inter_panel(sub: Any, inter: np.ndarray, labels: Any, colors: Any, epochs: list[int],
                 cmap: Any, channel_attention: Any, channel_names: Any, heads: int) -> None:
    from matplotlib.patches import Rectangle

    chan, note = (_over_keys(channel_attention, 2, "channel_attention")  # (epoch, channel)
                  if channel_attention is not None else (None, ""))
    if chan is not None and chan.shape[1] == 1:
        chan = None  # one channel always gets all of it: a panel would only say 1.00
    width = 1.0 if chan is None else max(0.45, min(1.0, chan.shape[1] / 5))
    axes = sub.subplots(1, 2 if chan is not None else 1, squeeze=False,
                        width_ratios=[1.2, width] if chan is not None else None)[0]
    ax = axes[0]
    n = inter.shape[0]
    im = _matrix.draw_matrix(ax, inter, mask=None, cmap=cmap, max_pixels=(600, 600))
    ax.set_box_aspect(1)
    _ticks.set_labels(ax, "x", labels, n, 3.2, "key epoch (true->pred)" if labels else "key epoch",
                      colors)
    _ticks.set_labels(ax, "y", labels, n, 3.2,
                      "query epoch (true->pred)" if labels else "query epoch", colors)
    for e in epochs:  # frame the rows of the detailed epochs
        ax.add_patch(Rectangle((-0.5, e - 0.5), n, 1, fill=False, ec="white", lw=1.0,
                               ls="--", zorder=3))
    sub.colorbar(im, ax=ax, shrink=0.85, label="attention weight")
    hnote = f" \u00b7 mean of {heads} heads" if heads > 1 else ""
    ax.set_title(("attention across epochs (red: misclassified)" if labels else
                  "attention across epochs") + hnote + "\ndashed: detailed epochs", fontsize=9)
    if chan is None:
        return
    rows = chan[epochs]
    ax = axes[1]
    cim = _matrix.draw_matrix(ax, rows, cmap=cmap, mask=None, max_pixels=(600, 600))
    # one cell per (epoch, channel): a single detailed epoch is a strip, not a full square
    ax.set_box_aspect(min(1.2, max(0.15, len(epochs) / max(rows.shape[1], 1))))
    names = list(channel_names) if channel_names is not None else None
    _ticks.set_labels(ax, "x", names, rows.shape[1], 3.5, "channel")
    ylab = [f"epoch {e}" + (f"  {labels[e]}" if labels else "") for e in epochs]
    _ticks.set_labels(ax, "y", ylab, len(epochs), 3.0)
    hi = float(np.nanmax(rows)) if np.isfinite(rows).any() else 1.0
    if rows.size <= 60:
        for (i, j), v in np.ndenumerate(rows):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > 0.6 * hi else "white")
    # the colour bar follows the strip's height, not the panel's
    sub.colorbar(cim, cax=ax.inset_axes((1.04, 0.0, 0.05, 1.0)), label="attention weight")
    ax.set_title("attention across channels" + note, fontsize=9)


def _temporal(a: Any, style: str) -> tuple[np.ndarray | None, str, str]:
    """Temporal attention as ``(epoch, channel, time)`` (bars) or ``(epoch, channel,
    query, key)`` (heatmap, heads averaged), the note on what was averaged, the style."""
    from attnscope.plot.hierarchy import pick_style

    if a is None:
        return None, "", "bars"
    a = to_numpy(a)
    queries = a.shape[-2] if a.ndim >= 4 else 1
    style = pick_style(style, queries)
    if style == "bars":
        row, note = _over_keys(a, 3, "temporal_attention")
        return row, note, style
    note = ""
    if a.ndim == 5:  # (epoch, channel, head, query, key)
        note = f"\n(mean of {a.shape[2]} heads)" if a.shape[2] > 1 else ""
        with np.errstate(invalid="ignore"):
            a = np.nanmean(a, axis=2)
    if a.ndim != 4:
        raise ValueError(f"temporal_attention has shape {a.shape}; see plot_dashboard")
    return a, note, style


def _temporal_rows(sub: Any, temporal: np.ndarray, signal: Any, epochs: list[int],
                   channels: list[int], channel_names: Any, labels: Any, seconds: float,
                   note: str, style: str = "bars", cmap: Any = "viridis") -> None:
    from attnscope.plot.hierarchy import draw_signal, draw_temporal, draw_temporal_matrix

    sig = to_numpy(signal) if signal is not None else None
    per = 2 if sig is not None else 1  # an attention axis, then the signal's own axis
    ratios = ([3.2 if style == "heatmap" else 2.2, 1.0] if sig is not None else [1.0])
    axes = sub.subplots(len(epochs) * per, len(channels), squeeze=False, sharex=True,
                        height_ratios=ratios * len(epochs))
    top = float(np.nanmax(temporal[epochs][:, channels]))
    im = None
    for r, e in enumerate(epochs):
        for c, ch in enumerate(channels):
            ax = axes[r * per, c]
            if style == "heatmap":
                im = draw_temporal_matrix(ax, temporal[e, ch], seconds, top, cmap)
            else:
                draw_temporal(ax, temporal[e, ch], None, seconds, top)
            if sig is not None:
                draw_signal(axes[r * per + 1, c], sig[e, ch], seconds)
                axes[r * per + 1, c].set_ylabel("")
            ax.tick_params(labelsize=6)
            name = channel_names[ch] if channel_names is not None else f"channel {ch}"
            if r == 0:
                ax.set_title(str(name), fontsize=9)
            if c == 0:
                ax.set_ylabel(f"epoch {e}" + (f"\n{labels[e]}" if labels else ""), fontsize=8)
            if r == len(epochs) - 1:
                axes[-1, c].set_xlabel("time in epoch (s)", fontsize=8)
    if im is not None:
        sub.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    what = ("query x key within each epoch and channel" if style == "heatmap"
            else "attention over time within each epoch")
    sub.suptitle(what + note.replace("\n", " ") +
                 (" \u00b7 below each: input signal" if sig is not None else ""), fontsize=10)
