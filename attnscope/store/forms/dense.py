"""Dense probabilities ``(batch, head, query, key)``: one zarr v3 array per segment, one
inner chunk per head of one sample, packed into shards (:mod:`attnscope.store.codec`)
and read straight from the shard files (:mod:`attnscope.store.shards`).

An array zarr laid out another way (written by other tools) is read through zarr, after
checking that every shard file it needs exists: zarr would fill a missing one with NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnscope.maps import AttentionMap
from attnscope.store import codec, shards
from attnscope.store.forms import WriteContext, damaged, register_form
from attnscope.store.schema import DTYPES


class DenseForm:
    name, holds, head_axis, priority = "dense", "probs", 1, 100

    def accepts(self, m: AttentionMap, weights: torch.Tensor, policy: str) -> bool:
        return m.edge_index is None and weights.dim() == 4 and not weights.is_meta

    def write(self, path: Path, m: AttentionMap, weights: torch.Tensor,
              ctx: WriteContext) -> tuple[int, list[int]]:
        attrs = {**ctx.attrs, "form": self.name}
        n = codec.write_dense(path, weights.detach(), ctx.dtype, ctx.keepbits, attrs,
                              ctx.durable)
        return n, list(weights.shape)

    def detect(self, path: Path) -> bool:
        return (path / "zarr.json").exists()

    def describe(self, path: Path) -> dict[str, Any]:
        return shards.array_meta(path)

    def read_heads(self, path: Path, rows: np.ndarray, heads: np.ndarray,
                   meta: dict[str, Any], queries: list[int] | None = None) -> np.ndarray:
        block = shards.read_heads(path, rows, heads, meta)
        if block is not None:
            return block
        return _zarr_read(path, meta, rows, heads)

    def take(self, path: Path, rows: list[int], meta: dict[str, Any],
             info: dict[str, Any]) -> AttentionMap:
        heads = np.arange(int(meta["shape"][1]))
        weights = torch.from_numpy(np.ascontiguousarray(
            self.read_heads(path, np.asarray(rows), heads, meta)))
        return _entry_map(info, weights)

    def key(self, meta: dict[str, Any]) -> Any:
        return (self.name, tuple(meta["shape"][1:]))

    def join(self, maps: list[AttentionMap]) -> AttentionMap:
        first = maps[0]
        weights = torch.cat([m.weights for m in maps]) if len(maps) > 1 else first.weights
        return _entry_map({"module": first.module, "kind": first.kind,
                           "call_index": first.call_index, "source": first.source,
                           "heads": first.heads, "reduced": first.reduced}, weights)


def _entry_map(info: dict[str, Any], weights: torch.Tensor, **extra: Any) -> AttentionMap:
    """A map carrying an entry's metadata, for a writer to store again."""
    return AttentionMap(module=info["module"], kind=info["kind"], weights=weights,
                        call_index=info["call_index"], source=info["source"],
                        heads=info["heads"], reduced=info["reduced"], **extra)


def _zarr_read(path: Path, meta: dict[str, Any], rows: np.ndarray,
               heads: np.ndarray) -> np.ndarray:
    """Rows and heads of an array in a layout of another tool, through zarr."""
    try:
        grid = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
        shape = [int(n) for n in meta["shape"]]
    except (KeyError, TypeError, ValueError):
        raise damaged(path, "its zarr.json has no readable chunk grid") from None
    if len(grid) != 4 or len(shape) != 4 or min(grid) < 1:
        raise damaged(path, f"its zarr.json has the chunk grid {grid} for shape {shape}")
    if all(shape):  # a missing shard or chunk would read back as NaN
        files = {shards.chunk_file(path, (int(r) // grid[0], int(h) // grid[1], 0, 0), meta)
                 for r in rows for h in heads}
        shards.check_chunks(path, sorted(files), False, path)
    return shards.read_zarr(path, path, (rows, heads), DTYPES, ours=False)


DENSE = register_form(DenseForm())
