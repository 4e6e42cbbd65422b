"""1-D attention (one weight per key, e.g. an LSTM's attention over time steps) as bars,
optionally over the input signal on a twin axis."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.maps import is_one_d
from attnscope.plot import _figure, _ticks
from attnscope.plot.heatmap import describe
from attnscope.sources import read_dense, to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_BARS = 400  # beyond this a filled step outline replaces individual bars


def plot_bars(source: Any, *, module: str | int | None = None, step: str | None = None,
              sample: int = 0, head: int | str = 0, query: int | str | None = None,
              time: Sequence[float] | None = None, labels: Sequence[Any] | None = None,
              signal: Any = None, signal_labels: Sequence[str] | None = None,
              time_axis: str = "time step", top_k: int = 0, uniform: bool = True,
              color: str = "tab:blue", title: str | None = None,
              figsize: tuple[float, float] | None = None, dpi: float = 150,
              path: str | os.PathLike | None = None) -> Figure:
    """Bar plot of attention over keys (time steps), with the input signal if given.

    Example:
        >>> fig = plot_bars(rec, module="attention", sample=3, signal=x[3],
        ...                 signal_labels=["temp", "load"], path="attn_sample3.png")

    Args:
        source: a 1-D map ``(batch, 1, 1, key)``, any dense source, or a ``(key,)`` array.
        head: head position or ``"mean"``.
        query: which query row of a matrix; ``"mean"`` averages rows (attention
            received); None: the only row, else the mean.
        time: x values per key (e.g. seconds); ``labels``: tick labels per key.
        signal: ``(key,)`` or ``(key, feature)`` input drawn as lines on a twin axis.
        top_k: mark the ``top_k`` largest weights with their values.
        uniform: dashed reference line at 1/keys (what no preference would give).
    """
    dense = read_dense(source, module, step, sample, "mean" if head == "mean" else [head])
    w = dense.weights.mean(axis=0) if head == "mean" else dense.weights[0]  # (query, key)
    one_d = is_one_d(dense.weights.shape)  # (head, query, key) with a single query row
    if query is None:
        query = 0 if one_d else "mean"
    row = np.nanmean(w, axis=0) if query == "mean" else w[int(query)]
    keys = row.shape[0]
    x = np.arange(keys, dtype=float) if time is None else np.asarray(time, dtype=float)
    if x.shape[0] != keys:
        raise ValueError(f"got {x.shape[0]} time values for {keys} keys")
    fig = _figure.new_figure(figsize or (min(14.0, max(6.0, 0.12 * keys + 3)), 3.6), dpi)
    ax = fig.add_subplot()
    if keys <= MAX_BARS:
        width = float(np.median(np.diff(x))) * 0.85 if keys > 1 else 0.8
        ax.bar(x, row, width=width, color=color, alpha=0.85, label="attention", zorder=2)
    else:
        edges = np.concatenate([x, [x[-1] + (x[-1] - x[-2])]])
        ax.stairs(row, edges, fill=True, color=color, alpha=0.85, label="attention", zorder=2)
    if uniform:
        ax.axhline(1.0 / keys, color="0.35", ls="--", lw=0.8, label=f"uniform 1/{keys}",
                   zorder=3)
    if top_k:
        for i in np.argsort(np.nan_to_num(row, nan=-1))[::-1][:top_k]:
            ax.annotate(f"{row[i]:.3g}", (x[i], row[i]), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom",
                        rotation=90, fontsize=6)
    ax.set_ylim(0, float(np.nanmax(row)) * (1.25 if top_k else 1.05))
    ax.set_xlim(x[0] - 0.6 * (x[1] - x[0] if keys > 1 else 1),
                x[-1] + 0.6 * (x[1] - x[0] if keys > 1 else 1))
    ax.set_ylabel("attention weight")
    if labels is not None:
        _ticks.set_labels(ax, "x", labels, keys, fig.get_size_inches()[0] * 0.75, time_axis)
    else:
        ax.set_xlabel(time_axis)
    handles, names = ax.get_legend_handles_labels()
    if signal is not None:
        sig = to_numpy(signal)
        sig = sig[:, None] if sig.ndim == 1 else sig
        if sig.shape[0] != keys:
            raise ValueError(f"signal has {sig.shape[0]} time steps, attention has {keys}")
        twin = ax.twinx()
        twin.set_zorder(ax.get_zorder() + 1)  # lines over bars
        twin.patch.set_visible(False)
        names_sig = list(signal_labels or ([f"input {i}" for i in range(sig.shape[1])]
                                           if sig.shape[1] > 1 else ["input"]))
        for i in range(sig.shape[1]):
            twin.plot(x, sig[:, i], lw=1.2, color=f"C{(i + 1) % 10}", label=names_sig[i])
        twin.set_ylabel("input signal")
        h2, n2 = twin.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    fig.legend(handles, names, loc="outside lower center", fontsize=7,
               ncols=min(5, len(names)), frameon=False)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    how = "" if query == 0 and one_d else (
        " \u00b7 mean over queries" if query == "mean" else f" \u00b7 query {query}")
    what = dense.mean_title() if head == "mean" or dense.reduced == "mean" else (
        f"head {dense.heads[0]}" if dense.num_heads > 1 else "")
    what = "" if what == "head 0" and dense.num_heads <= 1 else what
    ax.set_title(title or describe(dense, (what + how).strip(" \u00b7")), fontsize=10)
    return _figure.save(fig, path, dpi)
