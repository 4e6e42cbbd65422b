"""One attention matrix as a paper-ready heatmap: labelled axes, colour bar, masked cells.

Left out on purpose: annotating every cell with its value (unreadable past ~15 tokens;
use the HTML viewer for hover values).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure, _matrix, _ticks
from attnscope.sources import Dense, HeadSpec, read_dense

if TYPE_CHECKING:
    from matplotlib.figure import Figure

def axis_labels(dense: Dense, query: Sequence[Any] | None = None,
                key: Sequence[Any] | None = None, both: Sequence[Any] | None = None
                ) -> tuple[Sequence[Any] | None, Sequence[Any] | None]:
    """Labels of both axes: the ones given (used as given, so a wrong length is an
    error; ``both`` skips the single query row of 1-D attention), else the stored ones
    the label resolver puts there (:func:`attnscope.sources.resolve`: encoder, decoder,
    cross, per sample)."""
    q, k = dense.weights.shape[-2:]
    query = query if query is not None else (both if q > 1 or k == 1 else None)
    key = key if key is not None else both
    found = dense.axis_labels() if query is None or key is None else None
    return (query if query is not None else found.query,  # type: ignore[union-attr]
            key if key is not None else found.key)  # type: ignore[union-attr]


def head_matrix(dense: Dense, head: HeadSpec) -> tuple[np.ndarray, str]:
    """``(query, key)`` for one head or the mean over heads, with a title fragment."""
    if isinstance(head, str) and head == "mean":
        with np.errstate(invalid="ignore"):
            return dense.weights.mean(axis=0), dense.mean_title()
    if dense.reduced == "mean":
        return dense.weights[0], dense.mean_title()
    return dense.weights[0], f"head {dense.heads[0]}"


def describe(dense: Dense, what: str) -> str:
    parts = [dense.step, f"sample {dense.sample}", what]
    line = " \u00b7 ".join(p for p in parts if p)
    return f"{dense.module}\n{line}" if dense.module else line


def auto_size(q: int, k: int, labelled: bool) -> tuple[float, float]:
    """Figure size that keeps every label readable up to a few hundred tokens."""
    if not labelled:
        return (6.4, 5.2) if q > 1 else (7.0, 2.4)
    width = min(22.0, max(4.8, _ticks.inches_needed(k) + 2.6))
    height = min(22.0, max(3.6, _ticks.inches_needed(q) + 1.8))
    return width, height


def plot_heatmap(source: Any, *, module: str | int | None = None, step: str | None = None,
                 sample: int = 0, head: int | str = 0, labels: Sequence[Any] | None = None,
                 query_labels: Sequence[Any] | None = None,
                 key_labels: Sequence[Any] | None = None, query_axis: str | None = None,
                 key_axis: str | None = None, label_colors: Sequence[str] | None = None,
                 title: str | None = None, cmap: Any = "viridis", norm: Any = "linear",
                 vmin: float | None = None, vmax: float | None = None,
                 mask: _matrix.MaskSpec = "auto", reduce: str = "mean",
                 figsize: tuple[float, float] | None = None, dpi: float = 150,
                 path: str | os.PathLike | None = None) -> Figure:
    """Heatmap of one map (module, head or head mean, sample) with labelled axes.

    Example:
        >>> fig = plot_heatmap(rec, module="decoder.layers.0.self_attn", head="mean",
        ...                    labels=target_tokens, path="self_attn.pdf")

    Args:
        source: AttentionMap, Recording, store, ``{name: array}`` or an array
            ``(query, key)`` / ``(head, query, key)`` / ``(batch, head, query, key)``.
        module: name or position (negative: from the end) in a Recording or store.
        head: head position, or ``"mean"`` for the average of all heads.
        labels: labels of both axes (self-attention tokens); ``query_labels`` and
            ``key_labels`` set them one by one (cross-attention: target and source).
        query_axis, key_axis: axis titles, e.g. ``"time step"`` or ``"channel"``.
        label_colors: a colour per label (e.g. red for wrong ``true->pred`` epochs).
        mask: ``"auto"`` hides a causal upper triangle, padded keys and NaN; ``"zeros"``
            every exact zero; None nothing; or a boolean ``(query, key)`` array.
        norm: ``"linear"``, ``"sqrt"`` or ``"log"`` colour scaling.
        reduce: ``"mean"`` or ``"max"`` when the matrix is larger than the pixels it
            gets; the title says so.
        path: save there (``.png``, ``.pdf``, ``.svg``) at ``dpi``.
    """
    dense = read_dense(source, module, step, sample, "mean" if head == "mean" else [head])
    w, what = head_matrix(dense, head)
    q, k = w.shape
    qlab, klab = axis_labels(dense, query_labels, key_labels, labels)
    cross = dense.kind == "cross"
    qname = query_axis or ("target (query)" if cross else "query")
    kname = key_axis or ("source (key)" if cross else "key")
    fig = _figure.new_figure(figsize or auto_size(q, k, qlab is not None or klab is not None),
                             dpi)
    ax = fig.add_subplot()
    mask = dense.mask_for("mean" if head == "mean" else 0, mask)
    im = _matrix.draw_matrix(ax, w, mask=mask, cmap=cmap, norm=norm, vmin=vmin, vmax=vmax,
                             reduce=reduce, max_pixels=_pixels(fig, q, k))
    width, height = _axes_inches(fig, ax)
    _ticks.set_labels(ax, "x", klab, k, width, kname,
                      label_colors if label_colors is not None and len(label_colors) == k
                      else None)
    _ticks.set_labels(ax, "y", qlab, q, height, qname,
                      label_colors if label_colors is not None and len(label_colors) == q
                      else None)
    fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02, label="attention weight")
    note = _matrix.block_note(im.attnscope_block, (q, k), reduce)
    head_title = title or describe(dense, what)
    ax.set_title(head_title + (f"\n{note}" if note else ""), fontsize=10)
    if im.attnscope_mask.any():
        fig.legend(handles=[_figure.mask_legend_handle()], loc="outside lower right",
                   fontsize=7, frameon=False)
    return _figure.save(fig, path, dpi)


def plot_cross(source: Any, *, source_labels: Sequence[Any] | None = None,
               target_labels: Sequence[Any] | None = None, **kwargs: Any) -> Figure:
    """Cross-attention heatmap: target tokens as rows, source tokens as columns.

    Example:
        >>> plot_cross(rec, module="decoder.layers.1.multihead_attn", head="mean",
        ...            source_labels=["ein", "Haus"], target_labels=["a", "house"])
    """
    kwargs.setdefault("query_axis", "target (query)")
    kwargs.setdefault("key_axis", "source (key)")
    return plot_heatmap(source, query_labels=target_labels, key_labels=source_labels, **kwargs)


def _pixels(fig: Any, q: int, k: int) -> tuple[int, int]:
    """Pixel budget of the main axes: about 80% of the figure at its dpi."""
    w, h = fig.get_size_inches()
    return int(0.8 * h * fig.dpi), int(0.8 * w * fig.dpi)


def _axes_inches(fig: Any, ax: Any) -> tuple[float, float]:
    w, h = fig.get_size_inches()
    return 0.72 * w, 0.72 * h
