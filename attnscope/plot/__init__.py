"""Static, paper-ready figures of attention maps (matplotlib, Agg, object API).

Every function returns a ``matplotlib.figure.Figure`` and, given ``path=``, saves it as
PNG, PDF or SVG at ``dpi``. Sources: an ``AttentionMap``, a ``Recording``, a store, a
``{name: array}`` mapping or a plain array, read one sample at a time.

Example:
    >>> from attnscope.plot import plot_heatmap, plot_heads
    >>> plot_heatmap(rec, module=-1, head="mean", labels=tokens, path="last_layer.pdf")

Left out on purpose: interactive figures (see the HTML viewer) and pyplot state.
matplotlib is imported by the functions, not here, so this package imports fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "plot_heatmap": "heatmap", "plot_cross": "heatmap", "plot_heads": "grid",
    "plot_overview": "overview", "plot_bars": "bars", "plot_top_edges": "edges",
    "plot_edge_matrix": "edges", "dense_from_edges": "edges", "plot_graph": "graph",
    "plot_dashboard": "dashboard", "plot_evolution": "evolution",
    "plot_head_stats": "evolution",
    "epoch_labels": "_ticks", "block_reduce": "_matrix", "find_mask": "_matrix",
    "MaskSpec": "_matrix",
    # the one way to make and save a figure, for every module that draws (evaluate, demos)
    "new_figure": "_figure", "save_figure": "_figure", "show_figures": "_figure",
    "DPI_RANGE": "_figure",
}
_RENAMED = {"save_figure": "save", "show_figures": "show"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = import_module(f"attnscope.plot.{_EXPORTS[name]}")
        return getattr(module, _RENAMED.get(name, name))
    raise AttributeError(f"module 'attnscope.plot' has no attribute {name!r}")
