"""Graph entries of a page: edge weights with every leading axis kept (time step, node
...), so the page offers one selector per axis instead of showing index 0 only."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from attnscope.sources import graph_sample, head_positions
from attnscope.viewer import _pack


def lead_names(source: Any, module: str, n: int) -> list[str]:
    """Names of a graph map's leading axes between sample and ``(edge, head)``: from the
    store's module info (``axes``) or the map's ``dims`` where recorded, else ``dim<i>``."""
    names: list[str] = []
    if hasattr(source, "module_info"):
        names = list(source.module_info(module).get("axes") or [])
    elif hasattr(source, "maps"):
        m = next((m for m in source.maps if m.entry == module), None)
        dims = getattr(m, "dims", None) if m is not None else None
        names = list(dims[1:-2]) if dims and m.weights.dim() > 2 else []
    names = [str(x) for x in names[:n]]
    return names + [f"dim{i + 1}" for i in range(len(names), n)]


def graph_item(packer: _pack.Packer, source: Any, entry: Any, heads: Any) -> dict[str, Any]:
    """The page's record of one (module, step, sample) graph map: weights
    ``(..., edge, head)`` of the selected heads plus their mean, and the leading axes."""
    g = graph_sample(source, entry.module, entry.step, entry.sample)
    picked = head_positions(heads, g.weights.shape[-1])
    w, names = g.weights[..., picked], [str(h) for h in picked]
    if w.shape[-1] > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # edges NaN in every head
            w = np.concatenate([w, np.nanmean(w, axis=-1, keepdims=True)], axis=-1)
        names.append("mean")
    item = _pack.pack_graph(packer, w.astype(np.float32), g.edge_index)
    item.update(module=entry.module, step=entry.step, sample=entry.sample, kind="graph",
                heads=names, graph=True, num_heads=int(g.weights.shape[-1]),
                lead=_lead(g, source, entry.module, w))
    return item


def _lead(g: Any, source: Any, module: str, w: np.ndarray) -> list[dict[str, Any]]:
    """One selector per leading axis, named (node, time step ...) by the source layer
    where it can, with the axis's labels when the step holds them."""
    if len(g.axes) == w.ndim - 2:
        return [{"name": a.name, "size": int(a.size),
                 **({"labels": list(a.labels)} if a.labels is not None else {})}
                for a in g.axes]
    return [{"name": n, "size": int(s)} for n, s in
            zip(lead_names(source, module, w.ndim - 2), w.shape[:-2])]
