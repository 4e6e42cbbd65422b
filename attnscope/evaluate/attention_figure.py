"""The default evaluation attention figure: a few test samples side by side, then their
mean, titled as a mean.

Why not the mean alone: a model that puts 0.99 on a different time step per sample
averages to a flat ~1/keys, which reads as "attends to nothing". Each sample keeps its
own peak here; the mean panel says how many samples it averages. Padded positions (NaN:
a shorter batch; or keys masked for every query, with their query rows in
self-attention) are left blank, not drawn as data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from attnscope.plot import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SAMPLES_SHOWN = 4


def plot_attention_panels(panels: Sequence[tuple[str, np.ndarray]], module: str,
                          one_d: bool, heads: int, path: str | os.PathLike | None = None,
                          dpi: float = 150) -> Figure:
    """One panel per ``(title, (head, query, key) array)``, heads averaged; bars for
    1-D attention (one row per panel), heatmaps on one colour scale otherwise."""
    hidden = [hide_padding(m) if i < len(panels) - 1 or len(panels) == 1 else (m, 0)
              for i, (_, m) in enumerate(panels)]  # the mean mixes samples: left as is
    mats = [_head_mean(m) for m, _ in hidden]
    titles = [t + (f" \u00b7 {n} padded positions blank" if n else "")
              for (t, _), (_, n) in zip(panels, hidden)]
    panels = [(t, m) for t, (_, m) in zip(titles, panels)]
    how = f" \u00b7 mean of {heads} heads" if heads > 1 else ""
    if one_d:
        keys = mats[0].shape[-1]
        fig = new_figure((min(14.0, max(6.0, 0.12 * keys + 3)), 1.5 * len(panels) + 0.9), dpi)
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        top = max(float(np.nanmax(m)) if np.isfinite(m).any() else 0.0 for m in mats)
        for ax, (title, _), m in zip(axes, panels, mats):
            row = m[0]
            ok = np.isfinite(row)
            x = np.arange(row.shape[0])
            ax.bar(x[ok], row[ok], width=0.85, color="tab:blue")
            ax.axhline(1 / max(int(ok.sum()), 1), color="0.4", ls="--", lw=0.8)
            ax.set_ylim(0, top * 1.08 or 1)
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("weight", fontsize=8)
        axes[-1].set_xlabel("key (time step) \u00b7 dashed: uniform 1/keys")
    else:
        q, k = mats[0].shape
        side = 2.8
        fig = new_figure((side * len(panels) + 1.2, side * max(q, 1) / max(k, q, 1) + 1.3),
                         dpi)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        top = max(float(np.nanmax(m)) if np.isfinite(m).any() else 0.0 for m in mats)
        import matplotlib

        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e4e4e4")
        for ax, (title, _), m in zip(axes, panels, mats):
            im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=top or 1,
                           aspect="auto", interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("key")
        axes[0].set_ylabel("query")
        fig.colorbar(im, ax=list(axes), shrink=0.85, label="attention weight")
    fig.suptitle(f"{module or '<root>'}{how}", fontsize=10)
    return save_figure(fig, path, dpi)


def hide_padding(m: np.ndarray) -> tuple[np.ndarray, int]:
    """``(head, query, key)`` with padded positions blanked: a key no query of any head
    may see (every weight exactly 0: masked) is padding, and in self-attention its
    query row is padding too, computed from pad tokens, not data. Returns the number of
    padded positions."""
    heads, q, k = m.shape
    seen = np.isfinite(m) & (m != 0)
    pad = ~seen.any(axis=(0, 1))  # (key,)
    if not pad.any() or pad.all():
        return m, 0
    m = m.copy()
    m[:, :, pad] = np.nan
    if q == k:
        m[:, pad, :] = np.nan
    return m, int(pad.sum())


def _head_mean(m: np.ndarray) -> np.ndarray:
    """``(query, key)``: the mean over heads; a row with no finite value stays NaN."""
    finite = np.isfinite(m)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(finite, m, 0).sum(axis=0) / count, np.nan)
