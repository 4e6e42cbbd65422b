"""Graph (edge) attention: weights ``(batch, ..., edge, head)`` and the ``edge_index``
``(2, edge)`` the layer used, as two small zarr arrays in the segment group.

A layer that ran on several samples per call (a batch axis before the edges, and
leading axes such as nodes or time steps) is read with an explicit index per axis, so
any selection of samples and heads works. Every chunk carries a crc32c; a chunk file
that is missing or fails it is damage (zarr would silently fill a missing one with NaN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from attnscope.maps import AttentionMap
from attnscope.store import codec, shards
from attnscope.store.errors import StoreError
from attnscope.store.forms import WriteContext, register_form
from attnscope.store.forms.dense import _entry_map
from attnscope.store.schema import DTYPES


class GraphForm:
    name, holds, head_axis, priority = "graph", "probs", -1, 0

    def accepts(self, m: AttentionMap, weights: torch.Tensor, policy: str) -> bool:
        return m.edge_index is not None

    def write(self, path: Path, m: AttentionMap, weights: torch.Tensor,
              ctx: WriteContext) -> tuple[int, list[int]]:
        w = weights if weights.dim() > 2 else weights.unsqueeze(0)  # (batch, ..., edge, head)
        data = codec.to_storage(w, ctx.dtype, ctx.keepbits)
        attrs = {**ctx.attrs, "form": self.name}
        zarr.open_group(str(path), mode="w", attributes=attrs)  # weights + edge_index
        n = codec.write_plain(path / "weights", data, (1, *data.shape[1:]), attrs)
        edges = m.edge_index.detach().cpu().to(torch.int64).numpy()
        n += codec.write_plain(path / "edge_index", edges, edges.shape, {})
        return n, list(data.shape)

    def detect(self, path: Path) -> bool:
        return (path / "weights").exists()

    def describe(self, path: Path) -> dict[str, Any]:
        return shards.array_meta(path / "weights")

    def read_heads(self, path: Path, rows: np.ndarray, heads: np.ndarray,
                   meta: dict[str, Any], queries: list[int] | None = None) -> np.ndarray:
        rows, heads = np.asarray(rows, dtype=np.int64), np.asarray(heads, dtype=np.int64)
        shape = [int(n) for n in meta["shape"]]
        weights = path / "weights"
        ours = _layout_ok(meta, [1, *(max(1, n) for n in shape[1:])])
        if all(shape) and len(rows):  # one chunk per sample: each must be there, intact
            files = [shards.chunk_file(weights, (int(r),) + (0,) * (len(shape) - 1), meta)
                     for r in sorted(set(rows.tolist()))]
            shards.check_chunks(weights, files, shards.ends_in_crc(meta), path)
        middle = (slice(None),) * (len(shape) - 2)  # leading axes (node, time step ...)
        return shards.read_zarr(weights, path, (rows, *middle, heads), DTYPES, ours)

    def edge_index(self, path: Path) -> np.ndarray:
        """``(2, edge)`` connectivity of the segment."""
        meta = shards.array_meta(path / "edge_index")
        shape = meta.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and shape[0] == 2):
            raise StoreError(f"segment '{path}' has a damaged edge_index {shape}; "
                             "re-capture this step")
        if all(shape) and _layout_ok(meta, shape):  # one chunk, as written here
            shards.check_chunks(path / "edge_index",
                                [shards.chunk_file(path / "edge_index", (0, 0), meta)],
                                shards.ends_in_crc(meta), path)
        return shards.read_zarr(path / "edge_index", path, Ellipsis, ("int64",),
                                _layout_ok(meta, shape))

    def take(self, path: Path, rows: list[int], meta: dict[str, Any],
             info: dict[str, Any]) -> AttentionMap:
        heads = np.arange(int(meta["shape"][-1]))
        w = torch.from_numpy(np.ascontiguousarray(
            self.read_heads(path, np.asarray(rows), heads, meta)))
        return _entry_map(info, w, edge_index=torch.from_numpy(self.edge_index(path)))

    def key(self, meta: dict[str, Any]) -> Any:
        return None  # each segment keeps its own edge_index: never joined

    def join(self, maps: list[AttentionMap]) -> AttentionMap:
        if len(maps) != 1:
            raise ValueError("graph segments are not joined (each has its own edge_index)")
        return maps[0]


def _layout_ok(meta: dict[str, Any], chunks: list[int]) -> bool:
    """Whether an array's metadata is what :func:`codec.write_plain` writes with
    ``chunks``: then an error zarr raises while reading it is not damage."""
    try:
        grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
        names = [c["name"] for c in meta["codecs"]]
    except (KeyError, TypeError):
        return False
    return grid == chunks and names == ["bytes", "blosc", "crc32c"]


GRAPH = register_form(GraphForm())
