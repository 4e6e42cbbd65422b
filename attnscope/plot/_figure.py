"""Figure plumbing shared by every view: lazy matplotlib, new figures, saving, colour maps.

matplotlib is imported only when a figure is made, so ``import attnscope`` stays fast.
Figures are built with the object API (``Figure()``), never the pyplot state machine, so
they never pop up, leak between calls, or need a display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope._files import atomic_path, ensure_dir
from attnscope.errors import OptionError
from attnscope.plot._fonts import glyph_check, use_fallback_fonts

if TYPE_CHECKING:
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure

FORMATS = (".png", ".pdf", ".svg")
DPI_RANGE = (20, 1200)
MAX_PIXELS = 1 << 15  # per side; matplotlib's Agg refuses beyond 2**16
DEFAULT_CMAP = "viridis"
MASK_FACE = "#e4e4e4"
MASK_HATCH = "#b0b0b0"


def new_figure(figsize: tuple[float, float], dpi: float = 150, layout: str | None = "constrained"
               ) -> Figure:
    """A detached Agg-backed figure (no pyplot, no global state but the font fallback
    list: labels in any script draw, see :mod:`attnscope.plot._fonts`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    use_fallback_fonts()

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def check_dpi(dpi: float, size: tuple[float, float] | None = None) -> float:
    """``dpi`` if it is in :data:`DPI_RANGE` and the image it gives is drawable."""
    low, high = DPI_RANGE
    if not isinstance(dpi, (int, float)) or not low <= dpi <= high:
        raise OptionError(f"dpi {dpi!r} is out of range; use {low}..{high} (150 is typical)")
    if size is not None and max(size) * dpi > MAX_PIXELS:
        fits = int(MAX_PIXELS / max(size))
        raise OptionError(f"dpi {dpi} makes a {max(size) * dpi:.0f}-pixel image side; this "
                          f"figure fits up to dpi {fits}")
    return dpi


def save(fig: Figure, path: str | os.PathLike | None, dpi: float | None = None) -> Figure:
    """Write ``fig`` to ``path`` (``.png``, ``.pdf`` or ``.svg``) when a path is given:
    under a temporary name first, so a failure never leaves a truncated file."""
    if path is None:
        return fig
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OptionError(f"cannot save {path.name!r}: use one of {', '.join(FORMATS)}")
    dpi = check_dpi(dpi or fig.dpi, tuple(fig.get_size_inches()))
    ensure_dir(path.parent)
    with atomic_path(path) as tmp, glyph_check():
        fig.savefig(tmp, dpi=dpi, metadata=_metadata(path.suffix.lower()))
    return fig


def _metadata(suffix: str) -> dict[str, Any]:
    # reproducible files: no creation dates in PDF/SVG
    if suffix == ".pdf":
        return {"Creator": "attnscope", "CreationDate": None}
    if suffix == ".svg":
        return {"Creator": "attnscope", "Date": None}
    return {"Software": "attnscope"}


def colormap(name: str | Colormap | None) -> Colormap:
    """A copy of ``name`` whose "bad" (masked) colour is transparent, so the hatched
    background drawn by :func:`mask_background` shows through masked cells."""
    import matplotlib

    cmap = matplotlib.colormaps[name or DEFAULT_CMAP] if not hasattr(name, "set_bad") else name
    return cmap.with_extremes(bad=(0, 0, 0, 0))


def make_norm(norm: str | Normalize, vmin: float, vmax: float) -> Normalize:
    """``"linear"``, ``"sqrt"`` (shows weak weights next to peaked ones) or ``"log"``."""
    from matplotlib import colors

    if not isinstance(norm, str):
        return norm
    if vmax <= vmin:
        vmax = vmin + 1e-6
    if norm == "linear":
        return colors.Normalize(vmin, vmax)
    if norm == "sqrt":
        return colors.PowerNorm(0.5, vmin, vmax)
    if norm == "log":
        return colors.LogNorm(max(vmin, vmax * 1e-4, 1e-8), vmax)
    raise ValueError(f"unknown norm {norm!r}; use 'linear', 'sqrt' or 'log'")


def mask_background(ax: Any, extent: tuple[float, float, float, float]) -> None:
    """Light grey hatching under an image: masked cells (transparent) show it."""
    from matplotlib.patches import Rectangle

    x0, x1, y0, y1 = extent
    ax.add_patch(Rectangle((min(x0, x1), min(y0, y1)), abs(x1 - x0), abs(y1 - y0),
                           facecolor=MASK_FACE, edgecolor=MASK_HATCH, hatch="////",
                           linewidth=0, zorder=0))


def mask_legend_handle() -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=MASK_FACE, edgecolor=MASK_HATCH, hatch="////", label="masked")


def show(figures: list[Figure]) -> bool:
    """Open figures in an interactive window when a GUI backend is available."""
    import matplotlib
    import matplotlib.pyplot as plt

    if matplotlib.get_backend().lower() in {"agg", "pdf", "svg", "ps", "cairo", "template"}:
        return False
    backend = plt._get_backend_mod()  # the module pyplot uses to make windows
    for i, fig in enumerate(figures):
        backend.new_figure_manager_given_figure(1000 + i, fig)
    plt.show()
    return True
