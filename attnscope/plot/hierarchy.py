"""Single-level figures of a hierarchical model (one per file): attention across epochs
labelled ``true->pred``, across channels for one epoch, and over time for one epoch and
channel (the query x key heatmap, or bars of what each step receives) with the input
signal on its own axis below (own time base: the attention may be over patches)."""

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


def temporal_matrix(w: Any) -> tuple[np.ndarray, str]:
    """``(query, key)`` from ``(head, query, key)`` (heads averaged), with the note."""
    w = to_numpy(w)
    w = w.reshape((1,) * (3 - w.ndim) + w.shape) if w.ndim < 3 else w
    with np.errstate(invalid="ignore"):
        m = np.nanmean(w, axis=0) if w.shape[0] > 1 else w[0]
    return m, heads_note(w.shape[0])


def pick_style(style: str, queries: int) -> str:
    """``"heatmap"`` (query x key) or ``"bars"`` (what each time step receives);
    ``"auto"``: a heatmap when there are several query rows."""
    if style not in ("auto", "heatmap", "bars"):
        raise ValueError(f"temporal style {style!r}: use 'auto', 'heatmap' or 'bars'")
    if style == "auto":
        return "heatmap" if queries > 1 else "bars"
    return "bars" if queries == 1 else style


def draw_temporal(ax: Any, row: np.ndarray, signal: Any, seconds: float,
                  ymax: float | None = None) -> None:
    """Attention over ``[0, seconds]`` as a filled step line (the signal, when given,
    goes on its own axis: see :func:`draw_signal`)."""
    t = np.linspace(0, seconds, row.shape[0] + 1)
    ax.stairs(np.nan_to_num(row), t, fill=True, color="tab:orange", alpha=0.75, lw=0)
    top = ymax if ymax is not None else float(np.nanmax(row)) if np.isfinite(row).any() else 1
    ax.set_ylim(0, top * 1.08 or 1.0)
    ax.set_xlim(0, seconds)


def draw_temporal_matrix(ax: Any, m: np.ndarray, seconds: float, vmax: float | None = None,
                         cmap: Any = "viridis") -> Any:
    """``(query, key)`` attention over the epoch: keys (and queries) placed on the
    epoch's time axis, so the signal below lines up; absent (NaN) cells left blank."""
    cmap = _figure.colormap(cmap)
    top = vmax if vmax is not None else float(np.nanmax(m)) if np.isfinite(m).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=top or 1.0,
                   extent=(0, seconds, seconds, 0), aspect="auto", interpolation="nearest")
    ax.set_xlim(0, seconds)
    return im


def draw_signal(ax: Any, signal: Any, seconds: float) -> None:
    """The input signal of one (epoch, channel) on its own axis over ``[0, seconds]``."""
    s = to_numpy(signal).reshape(-1)
    ax.plot(np.linspace(0, seconds, s.shape[0]), s, color="0.35", lw=0.6)
    ax.set_xlim(0, seconds)
    ax.set_yticks([])
    ax.set_ylabel("signal", fontsize=7)


def plot_temporal(weights: Any, *, signal: Any = None, seconds: float = 30.0,
                  style: str = "auto", title: str = "attention over time", dpi: float = 150,
                  path: str | os.PathLike | None = None) -> Figure:
    """Temporal attention of one (epoch, channel) over the epoch, the raw signal on its
    own axis below (same time axis).

    ``weights``: ``(time,)`` or ``(head, query, time)`` (heads averaged). ``style``:
    ``"heatmap"`` draws the (query x key) matrix, ``"bars"`` the attention each time
    step receives (mean over queries); ``"auto"``: heatmap when there are several
    queries. The attention's steps (often patches) span the epoch, whatever their count.
    """
    w = to_numpy(weights)
    w = w.reshape((1,) * (3 - w.ndim) + w.shape) if w.ndim < 3 else w
    style = pick_style(style, w.shape[1])
    tall = style == "heatmap"
    sizes = [4.2 if tall else 2.2] + ([0.9] if signal is not None else [])
    fig = _figure.new_figure((7.0, sum(sizes) + 1.0), dpi)
    axes = fig.subplots(len(sizes), 1, sharex=True, height_ratios=sizes, squeeze=False)[:, 0]
    ax = axes[0]
    if tall:
        m, note = temporal_matrix(w)
        im = draw_temporal_matrix(ax, m, seconds)
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="attention weight")
        ax.set_ylabel("query (time in epoch, s)")
        legend = f"{m.shape[0]} x {m.shape[1]} steps (query x key)"
    else:
        row, note = received(w)
        draw_temporal(ax, row, None, seconds)
        ax.axhline(1.0 / row.shape[0], color="0.3", ls="--", lw=0.7)
        ax.set_ylabel("attention weight")
        legend = f"orange: attention over {row.shape[0]} steps \u00b7 dashed: uniform"
    if signal is not None:
        draw_signal(axes[1], signal, seconds)
    axes[-1].set_xlabel("time in epoch (s)" + ("; key" if tall else ""))
    ax.set_title(title + (f" \u00b7 {note}" if note else "") + "\n" + legend, fontsize=9)
    return _figure.save(fig, path, dpi)
