"""Exports of graph entries keep their connectivity: the ``.npz`` holds ``edge_index``
next to the weights, and the CSV has one row per edge with ``source``/``target`` columns.

A step whose samples all used one graph gets one ``(2, edge)`` array; a step whose
batches used different graphs gets ``(sample, 2, edge)`` padded with -1 (weights of
padded edges are NaN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnscope._files import atomic_path
from attnscope.store.reader import Store


def edge_indices(store: Store, module: str, step: str, samples: Any = None) -> np.ndarray:
    """``(2, edge)`` when every selected sample shares one graph, else
    ``(sample, 2, edge)`` padded with -1."""
    starts, per_batch = 0, []
    for seg in store.segments(module, step):
        ei = np.asarray(store.edge_index(module, step=step, sample=starts), dtype=np.int64)
        per_batch += [ei] * seg.shape[0]
        starts += seg.shape[0]
    rows = np.arange(starts)
    picked = rows if samples is None else rows[samples] if isinstance(samples, slice) else \
        np.atleast_1d(np.asarray(samples)) % max(starts, 1)
    chosen = [per_batch[i] for i in picked]
    if not chosen:
        return np.zeros((2, 0), dtype=np.int64)
    if all(c.shape == chosen[0].shape and np.array_equal(c, chosen[0]) for c in chosen):
        return chosen[0]
    width = max(c.shape[1] for c in chosen)
    out = np.full((len(chosen), 2, width), -1, dtype=np.int64)
    for i, c in enumerate(chosen):
        out[i, :, : c.shape[1]] = c
    return out


def npz_edge_arrays(store: Store, module: str, steps: dict[str, str], samples: Any
                    ) -> dict[str, np.ndarray]:
    """``{"edge_index": ...}`` when all steps share it, else ``edge_index_<key>`` per
    step (``steps`` maps step name -> npz key)."""
    found = {key: edge_indices(store, module, s, samples) for s, key in steps.items()}
    values = list(found.values())
    if values and all(v.shape == values[0].shape and np.array_equal(v, values[0])
                      for v in values):
        return {"edge_index": values[0]}
    return {f"edge_index_{key}": v for key, v in found.items()}


def write_edges_csv(store: Store, path: Path, modules: list[str], steps: list[str],
                    samples: Any, heads: Any, select: dict[str, list[int]] | None = None
                    ) -> Path:
    """One row per (step, sample, module, leading position, edge, head):
    ``step,sample,module,position,edge,source,target,head,weight``.

    ``position`` indexes the dims between sample and edge (e.g. ``3`` for node 3 of a
    temporal graph, ``2-0`` for two such dims), empty when there are none.
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("step,sample,module,position,edge,source,target,head,weight\n")
        for s in steps:
            for m in modules:
                if not store.segments(m, s):
                    continue
                w = store.read(m, s, samples, heads, select)  # (sample, ..., edge, head)
                # positions kept by select, per dim, so ``position`` names the original
                kept = [[i % a.size for i in select[a.name]] if select and a.name in select
                        else None for a in store.axes(m, s)]
                ei = edge_indices(store, m, s, samples)
                n = store.num_samples(m, s)
                ids = np.arange(n) if samples is None else np.arange(n)[samples] if \
                    isinstance(samples, slice) else np.atleast_1d(np.asarray(samples)) % n
                head_ids = np.arange(w.shape[-1]) if heads is None else \
                    np.arange(store.read(m, s, [0]).shape[-1])[heads] if \
                    isinstance(heads, slice) else np.atleast_1d(np.asarray(heads))
                name = f'"{m}"' if any(c in m for c in ',"\n') else m
                for i, sid in enumerate(ids):
                    src, dst = ei[i] if ei.ndim == 3 else ei
                    block = w[i]
                    for pos in np.ndindex(*block.shape[:-2]):
                        where = "-".join(str(k[p] if k else p) for p, k in zip(pos, kept))
                        lines = [f"{s},{sid},{name},{where},{e},{src[e]},{dst[e]},"
                                 f"{head_ids[h]},{v:.6g}\n"
                                 for e in range(min(len(src), block.shape[-2]))
                                 if src[e] >= 0
                                 for h, v in enumerate(block[pos][e].tolist())
                                 if v == v]  # NaN: padding
                        f.writelines(lines)
    return path
