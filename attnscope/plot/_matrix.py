"""Drawing one attention matrix into an axes: masking, screen-size reduction, colour.

Masked cells (a causal upper triangle, padded keys, absent graph edges, NaN padding)
are drawn as hatched grey, never as zeros. Matrices larger than the pixels the axes
gets are block-reduced first, so an L=3000 map costs a few hundred thousand cells.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.plot import _figure

MaskSpec = str | np.ndarray | None


def find_mask(w: np.ndarray, mask: MaskSpec = "auto") -> np.ndarray:
    """Boolean ``(query, key)`` mask of cells to hide.

    ``"auto"``: NaN and the cells a capture recorded as masked (stored as ``-0.0``, see
    :func:`attnscope.capturing.session.mark_masked`; never in a matrix with negative
    values, where -0.0 is a rounded negative); for arrays without that record, the
    structure: a causal upper triangle that is exactly zero, keys no query attends to
    (padding) and queries with no weight at all. ``"zeros"``: every exact zero;
    ``None``: NaN only; an array: used as given.
    """
    if isinstance(mask, np.ndarray):
        if mask.shape != w.shape:
            raise ValueError(f"mask shape {mask.shape} differs from weights {w.shape}")
        return mask.astype(bool) | np.isnan(w)
    out = np.isnan(w)
    if mask is None:
        return out
    zero = w == 0
    if mask == "zeros":
        return out | zero
    if mask != "auto":
        raise ValueError(f"mask must be 'auto', 'zeros', None or a boolean array, not {mask!r}")
    signed = zero & np.signbit(w)
    if signed.any() and not (w < 0).any():  # the model's own mask, recorded at capture;
        return out | signed  # in a matrix that can be negative, -0.0 is only rounding
    q, k = w.shape
    if q == k and q > 1:
        upper = np.triu(np.ones((q, k), dtype=bool), 1)
        if zero[upper].all() and not zero[~upper].all():
            out |= upper
    dead_rows = (zero | out).all(axis=1)
    live = ~dead_rows
    if live.any():
        out[:, (zero | out)[live].all(axis=0)] = True
        out[dead_rows] = True
    return out


def block_reduce(w: np.ndarray, rows: int, cols: int, how: str = "mean"
                 ) -> tuple[np.ndarray, tuple[int, int]]:
    """Reduce ``(query, key)`` (NaN = masked) to at most ``rows x cols`` by blocks.

    Returns the reduced matrix and the block size; a block with only masked cells stays
    NaN, a partly masked one is the mean (or max) of its visible cells.
    """
    q, k = w.shape
    fy, fx = max(1, math.ceil(q / max(rows, 1))), max(1, math.ceil(k / max(cols, 1)))
    if q == k:  # square blocks keep a square map's diagonal on the diagonal
        fy = fx = max(fy, fx)
    if fy == 1 and fx == 1:
        return w, (1, 1)
    pad = np.full((math.ceil(q / fy) * fy, math.ceil(k / fx) * fx), np.nan, dtype=np.float32)
    pad[:q, :k] = w
    blocks = pad.reshape(pad.shape[0] // fy, fy, pad.shape[1] // fx, fx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        out = np.nanmax(blocks, axis=(1, 3)) if how == "max" else np.nanmean(blocks, axis=(1, 3))
    return out.astype(np.float32), (fy, fx)


def axes_pixels(ax: Any) -> tuple[int, int]:
    """(height, width) in pixels that ``ax`` covers at the figure's dpi."""
    box = ax.get_position()
    w, h = ax.figure.get_size_inches()
    dpi = ax.figure.dpi
    return max(8, int(box.height * h * dpi)), max(8, int(box.width * w * dpi))


@dataclass
class Prepared:
    """A matrix ready to draw: ``shown`` is block-reduced with NaN where masked."""

    shown: np.ndarray
    block: tuple[int, int]
    hidden: np.ndarray
    shape: tuple[int, int]

    @property
    def vmax(self) -> float:
        return float(np.nanmax(self.shown)) if np.isfinite(self.shown).any() else 1.0


def prepare(w: np.ndarray, mask: MaskSpec = "auto", max_pixels: tuple[int, int] = (800, 800),
            reduce: str = "mean") -> Prepared:
    """Mask ``w`` ``(query, key)`` and block-reduce it to at most ``max_pixels``."""
    w = np.asarray(w, dtype=np.float32)
    hidden = find_mask(w, mask)
    small, block = block_reduce(np.where(hidden, np.nan, w), *max_pixels, reduce)
    return Prepared(small, block, hidden, w.shape)


def draw_matrix(ax: Any, w: np.ndarray | Prepared, *, mask: MaskSpec = "auto",
                cmap: Any = None, norm: Any = "linear", vmin: float | str | None = None,
                vmax: float | None = None, reduce: str = "mean",
                max_pixels: tuple[int, int] | None = None) -> Any:
    """Draw ``w`` ``(query, key)`` with masked cells hatched; returns the ``AxesImage``.

    The colour range defaults to 0 .. the largest value drawn (after reduction);
    ``vmin="data"`` starts it at the smallest value drawn instead. The
    image has ``.attnscope_block`` = (rows, cols) per drawn cell, ``(1, 1)`` when nothing
    was reduced, and ``.attnscope_mask`` = the full-size mask.
    """
    p = w if isinstance(w, Prepared) else prepare(w, mask, max_pixels or axes_pixels(ax),
                                                  reduce)
    data = np.ma.masked_invalid(p.shown)
    lo = 0.0 if vmin is None or vmin == "data" else float(vmin)
    if data.count():  # "data": from the smallest value drawn (near-uniform long heads)
        lo = float(data.min()) if vmin == "data" else min(lo, float(data.min())) \
            if vmin is None else lo
    hi = p.vmax if vmax is None else vmax
    q, k = p.shape
    extent = (-0.5, k - 0.5, q - 0.5, -0.5)
    if p.hidden.any():
        _figure.mask_background(ax, extent)
    im = ax.imshow(data, cmap=_figure.colormap(cmap), norm=_figure.make_norm(norm, lo, hi),
                   extent=extent, interpolation="nearest", aspect="auto", zorder=1)
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(q - 0.5, -0.5)
    im.attnscope_block = p.block
    im.attnscope_mask = p.hidden
    return im


def block_note(block: tuple[int, int], shape: tuple[int, int], how: str = "mean") -> str:
    """Title suffix stating a reduction, empty when there was none."""
    if block == (1, 1):
        return ""
    return f"{how} over {block[0]}x{block[1]} blocks ({shape[0]}x{shape[1]} shown as " \
           f"{math.ceil(shape[0] / block[0])}x{math.ceil(shape[1] / block[1])})"
