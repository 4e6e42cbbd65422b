"""Single-level figures of a hierarchical model (one per file): attention across epochs
labelled ``true->pred``, across channels for one epoch, and over time for one epoch and
channel drawn over the input signal (own time base: the attention may be over patches)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure
from attnscope.sources import to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def heads_note(heads: int) -> str:
    return f"mean of {heads} heads" if heads > 1 else ""


def received(w: Any) -> tuple[np.ndarray, str]:
    """``(key,)`` from ``(head, query, key)``: heads and queries averaged (the attention
    each key receives), with the note for the title."""
    w = to_numpy(w)
    w = w.reshape((1,) * (3 - w.ndim) + w.shape) if w.ndim < 3 else w
    parts = [heads_note(w.shape[0])] + (["mean over queries"] if w.shape[1] > 1 else [])
    with np.errstate(invalid="ignore"):
        row = np.nanmean(w, axis=(0, 1)) if np.isfinite(w).any() else w[0, 0]
    return row, " \u00b7 ".join(p for p in parts if p)


def plot_epochs(weights: Any, *, labels: Sequence[str] | None = None,
                colors: Sequence[str] | None = None, title: str = "attention across epochs",
                cmap: Any = "viridis", dpi: float = 150,
                path: str | os.PathLike | None = None) -> Figure:
    """``(head, epoch, epoch)`` as one heatmap (head mean), axes labelled ``true->pred``
    with mistakes in red. Only NaN cells (absent from the model's computation) are hidden."""
    from attnscope.plot import plot_heatmap

    w = to_numpy(weights)
    w = w[None] if w.ndim == 2 else w
    axis = "epoch (true->pred)" if labels is not None else "epoch"
    note = heads_note(w.shape[0])
    return plot_heatmap(w, head="mean" if w.shape[0] > 1 else 0, labels=labels,
                        label_colors=colors, query_axis="query " + axis,
                        key_axis="key " + axis, mask=None, cmap=cmap, dpi=dpi, path=path,
                        title=title + (f"\n{note}" if note else ""))


def plot_channels(weights: Any, *, channel_names: Sequence[str] | None = None,
                  title: str = "attention across channels", cmap: Any = "viridis",
                  dpi: float = 150, path: str | os.PathLike | None = None) -> Figure:
    """Channel attention of one epoch: bars for 1-D pooling ``(head, 1, channel)``, a
    channel x channel heatmap for self-attention ``(head, channel, channel)``."""
    from attnscope.plot import plot_bars, plot_heatmap

    w = to_numpy(weights)
    w = w.reshape((1,) * (3 - w.ndim) + w.shape) if w.ndim < 3 else w
    head: int | str = "mean" if w.shape[0] > 1 else 0
    note = heads_note(w.shape[0])
    full = title + (f"\n{note}" if note else "")
    names = list(channel_names) if channel_names is not None else None
    if w.shape[1] == 1:
        return plot_bars(w, head=head, labels=names or [f"ch {i}" for i in range(w.shape[2])],
                         time_axis="channel", title=full, dpi=dpi, path=path,
                         figsize=(max(5.0, 1.0 + 0.9 * w.shape[2]), 3.6))
    return plot_heatmap(w, head=head, labels=names, query_axis="query channel",
                        key_axis="key channel", mask=None, cmap=cmap, title=full, dpi=dpi,
                        path=path)


def draw_temporal(ax: Any, row: np.ndarray, signal: Any, seconds: float,
                  ymax: float | None = None) -> None:
    """Attention over ``[0, seconds]`` as a filled step line, the signal on a twin axis."""
    t = np.linspace(0, seconds, row.shape[0] + 1)
    if signal is not None:
        s = to_numpy(signal).reshape(-1)
        twin = ax.twinx()
        twin.plot(np.linspace(0, seconds, s.shape[0]), s, color="0.5", lw=0.6)
        twin.set_yticks([])
        twin.set_zorder(0)
        ax.set_zorder(1)
        ax.patch.set_visible(False)
    ax.stairs(np.nan_to_num(row), t, fill=True, color="tab:orange", alpha=0.75, lw=0)
    top = ymax if ymax is not None else float(np.nanmax(row)) if np.isfinite(row).any() else 1
    ax.set_ylim(0, top * 1.08 or 1.0)
    ax.set_xlim(0, seconds)


def plot_temporal(weights: Any, *, signal: Any = None, seconds: float = 30.0,
                  title: str = "attention over time", dpi: float = 150,
                  path: str | os.PathLike | None = None) -> Figure:
    """Temporal attention of one (epoch, channel) over the epoch, with the raw signal.

    ``weights``: ``(time,)`` or ``(head, query, time)`` (heads and queries averaged);
    the attention's time steps (often patches) span the epoch, whatever their count.
    """
    row, note = received(weights)
    fig = _figure.new_figure((7.0, 2.8), dpi)
    ax = fig.add_subplot()
    draw_temporal(ax, row, signal, seconds)
    ax.axhline(1.0 / row.shape[0], color="0.3", ls="--", lw=0.7)
    ax.set_xlabel("time in epoch (s)")
    ax.set_ylabel("attention weight")
    legend = f"orange: attention over {row.shape[0]} steps \u00b7 dashed: uniform"
    legend += " \u00b7 grey: input signal" if signal is not None else ""
    ax.set_title(title + (f" \u00b7 {note}" if note else "") + "\n" + legend, fontsize=9)
    return _figure.save(fig, path, dpi)
