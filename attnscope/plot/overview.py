"""A whole model at a glance: one row per layer (module), one column per head.

Each panel is block-reduced to the pixels it really gets, so a 12 x 12 overview at 512
tokens draws ~144 small images, not 144 full-resolution ones.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attnscope.maps import Recording
from attnscope.plot import _figure, _matrix
from attnscope.sources import HeadSpec, is_store, read_dense
from attnscope.sources import names as module_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SCALES = ("shared", "layer", "panel")


def dense_modules(source: Any) -> list[str]:
    """Names of the dense (non-graph) modules of a Recording, store or mapping."""
    if isinstance(source, Recording):
        return list(dict.fromkeys(m.entry for m in source.maps if not m.is_graph))
    if is_store(source):
        return [n for n in source.modules if not source.module_info(n).get("graph")]
    return module_names(source)


def short_names(names: Sequence[str]) -> list[str]:
    """Drop the dotted prefix all names share and the word ``layers``."""
    parts = [n.split(".") for n in names]
    common = 0
    while len(names) > 1 and all(len(p) > common + 1 for p in parts) and \
            len({p[common] for p in parts}) == 1:
        common += 1
    return [".".join(x for x in p[common:] if x != "layers") or n for p, n in zip(parts, names)]


def plot_overview(source: Any, *, modules: str | Sequence[str | int] | None = None,
                  step: str | None = None, sample: int = 0, heads: HeadSpec = "all",
                  scale: str = "shared", cmap: Any = "viridis", norm: Any = "linear",
                  mask: _matrix.MaskSpec = "auto", reduce: str = "mean",
                  panel_size: float = 0.9, title: str | None = None, dpi: float = 150,
                  path: str | os.PathLike | None = None) -> Figure:
    """Layer x head small multiples of a whole model for one sample.

    Example:
        >>> fig = plot_overview(rec, modules="*self_attn", scale="layer", path="model.png")

    Args:
        source: Recording, store or ``{module: (head, query, key) array}``.
        modules: a glob over module names, a list of names/positions, or None for every
            dense module (in capture order).
        scale: ``"shared"`` one colour scale for all panels, ``"layer"`` one per row,
            ``"panel"`` each panel scaled to its own maximum (no colour bar).
        panel_size: inches per panel.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    names = dense_modules(source)
    if isinstance(modules, str):
        chosen = [n for n in names if fnmatch.fnmatchcase(n, modules)]
        if not chosen:
            from attnscope.errors import SelectionError

            raise SelectionError(f"no module matches {modules!r}; available: "
                                 + ", ".join(names[:12]))
    else:
        chosen = list(modules) if modules is not None else names
    rows = [read_dense(source, m, step, sample, heads) for m in chosen]
    px = max(8, int(panel_size * dpi))
    mats = [[_matrix.prepare(r.weights[h], r.mask_for(h, mask), (px, px), reduce)
             for h in range(len(r.heads))] for r in rows]
    ncols = max(len(r) for r in mats)
    left, right, top, bottom = 1.6, 0.9 if scale != "panel" else 0.2, 0.75, 0.15
    width = left + ncols * panel_size * 1.05 + right
    height = top + len(rows) * panel_size * 1.05 + bottom
    fig = _figure.new_figure((width, height), dpi, layout=None)
    grid = fig.add_gridspec(len(rows), ncols, left=left / width, right=1 - right / width,
                            top=1 - top / height, bottom=bottom / height, wspace=0.05,
                            hspace=0.05)
    top_all = max(m.vmax for row in mats for m in row)
    labels = short_names([r.module or str(i) for i, r in enumerate(rows)])
    image = None
    for i, (row, dense) in enumerate(zip(mats, rows)):
        row_max = max(m.vmax for m in row)
        vmax = {"shared": top_all, "layer": row_max, "panel": None}[scale]
        row_axes = []
        for j, m in enumerate(row):
            ax = fig.add_subplot(grid[i, j])
            image = _matrix.draw_matrix(ax, m, cmap=cmap, norm=norm, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"head {dense.heads[j]}", fontsize=7)
            if j == 0:
                ax.set_ylabel(labels[i], rotation=0, ha="right", va="center", fontsize=7)
            row_axes.append(ax)
        if scale == "layer":
            bar = fig.colorbar(image, ax=row_axes, fraction=0.02, pad=0.01, aspect=8)
            bar.ax.tick_params(labelsize=5)
    if scale == "shared" and image is not None:
        cax = fig.add_axes((1 - (right - 0.2) / width, bottom / height + 0.1,
                            0.12 / width, 1 - (top + bottom) / height - 0.2))
        fig.colorbar(image, cax=cax, label="attention weight")
    q, k = rows[0].weights.shape[1:]
    note = _matrix.block_note(image.attnscope_block, (q, k), reduce) if image else ""
    how = {"shared": "one colour scale", "layer": "colour scale per layer",
           "panel": "each panel scaled to its own maximum"}[scale]
    head = title or " \u00b7 ".join(x for x in (rows[0].step, f"sample {sample}", how) if x)
    fig.suptitle(head + (f"\n{note}" if note else ""), fontsize=9, y=1 - 0.12 / height,
                 va="top")
    return _figure.save(fig, path, dpi)

