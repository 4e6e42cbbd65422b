"""All heads of one layer as small multiples, with the head average as the last panel."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attnscope.plot import _figure, _matrix, _ticks
from attnscope.plot.heatmap import axis_labels, describe
from attnscope.sources import HeadSpec, read_dense

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_TICK_LABELS = 40  # panels label their outer axes only up to this many tokens


def plot_heads(source: Any, *, module: str | int | None = None, step: str | None = None,
               sample: int = 0, heads: HeadSpec = "all", mean: bool = True,
               labels: Sequence[Any] | None = None, query_labels: Sequence[Any] | None = None,
               key_labels: Sequence[Any] | None = None, ncols: int | None = None,
               shared_scale: bool = True, cmap: Any = "viridis", norm: Any = "linear",
               mask: _matrix.MaskSpec = "auto", reduce: str = "mean",
               panel_size: float | None = None, title: str | None = None, dpi: float = 150,
               path: str | os.PathLike | None = None) -> Figure:
    """Every head of one layer in a grid (plus their mean), one colour scale by default.

    Example:
        >>> fig = plot_heads(rec, module="encoder.layers.0.self_attn", labels=tokens,
        ...                  path="heads.png")

    Args:
        heads: ``"all"`` or a list of head positions.
        mean: add a last panel with the average of the shown heads.
        shared_scale: one colour bar for all panels (compare heads); False scales each
            panel to its own maximum (see structure in weak heads).
        panel_size: inches per panel (default grows with the token count).
        Other arguments as in :func:`attnscope.plot.plot_heatmap`.
    """
    dense = read_dense(source, module, step, sample, heads)
    mats = [dense.weights[i] for i in range(len(dense.heads))]
    names = [f"head {h}" for h in dense.heads]
    if mean and len(mats) > 1:
        mats.append(dense.weights.mean(axis=0))
        names.append(f"mean of {len(dense.heads)}")
    q, k = mats[0].shape
    qlab, klab = axis_labels(dense, query_labels, key_labels, labels)
    labelled = (qlab is not None or klab is not None) and max(q, k) <= MAX_TICK_LABELS
    ncols = ncols or math.ceil(math.sqrt(len(mats)))
    nrows = math.ceil(len(mats) / ncols)
    size = panel_size or (min(4.0, 1.6 + 0.06 * max(q, k)) if labelled else 2.2)
    fig = _figure.new_figure((ncols * size + 1.2, nrows * size + 0.8), dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    px = int(size * dpi)
    masks = [dense.mask_for(i, mask) for i in range(len(dense.heads))]
    masks += [dense.mask_for("mean", mask)] * (len(mats) - len(masks))
    ready = [_matrix.prepare(m, hide, (px, px), reduce) for m, hide in zip(mats, masks)]
    vmax = max(p.vmax for p in ready) if shared_scale else None
    images = []
    for i, ax in enumerate(axes.flat):
        if i >= len(mats):
            ax.set_axis_off()
            continue
        im = _matrix.draw_matrix(ax, ready[i], cmap=cmap, norm=norm, vmax=vmax)
        images.append(im)
        ax.set_title(names[i], fontsize=9, fontweight="bold" if names[i][0] == "m" else None)
        row, col = divmod(i, ncols)
        if not labelled:
            ax.tick_params(labelsize=6)
            continue
        last_row = row == nrows - 1 or i + ncols >= len(mats)
        _ticks.set_labels(ax, "x", klab, k, size * 0.8)
        _ticks.set_labels(ax, "y", qlab, q, size * 0.8)
        ax.tick_params(labelbottom=last_row, labelleft=col == 0)
    if shared_scale:
        fig.colorbar(images[0], ax=axes.ravel().tolist(), shrink=0.7, label="attention weight")
    else:
        for im in images:
            fig.colorbar(im, ax=im.axes, shrink=0.8).ax.tick_params(labelsize=6)
    note = _matrix.block_note(images[0].attnscope_block, (q, k), reduce)
    scale = "" if shared_scale else " \u00b7 each panel on its own scale"
    fig.suptitle((title or describe(dense, f"{len(dense.heads)} heads")) + scale +
                 (f"\n{note}" if note else ""), fontsize=10)
    if any(p.hidden.any() for p in ready):
        fig.legend(handles=[_figure.mask_legend_handle()], loc="outside lower right",
                   fontsize=7, frameon=False)
    return _figure.save(fig, path, dpi)
