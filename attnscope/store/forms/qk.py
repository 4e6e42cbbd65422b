"""Segments in query/key form: the inputs of an sdpa call on disk, probabilities
computed on read.

A qk segment is a zarr group ``b000012/`` holding ``q`` ``(batch, head, query, dim)``,
``k`` ``(batch or 1, key_head, key, dim)``, optionally ``mask``, and attributes with
the causal flag, scale, grouped-query layout (``kv_index``), array shapes and dtypes and
the shape of the probabilities it stands for. Arrays use the map layout of
``codec.write_dense`` (one inner chunk per head of one sample), so one head reads
without the others; queries and keys are stored raw (they do not compress). Masks are
stored compact (:func:`attnscope.kernels.compact_mask`), two-valued ones as packed bits
(:mod:`attnscope.store.forms.qk_mask`), blosc-compressed, and read back bit for bit.
Every chunk and shard index carries a crc32c, as in probability segments: damage (a
flipped byte, garbled attributes, arrays that do not fit them) is a
:class:`StoreError`, never other numbers.

The form is registered as ``qk`` (:mod:`attnscope.store.forms`): ``Store.read``, the
xarray view and merges ask it like any other form, so everything built on them works on
a qk store unchanged. The policy notes (``form``/``note`` of an entry whose maps fell
back to probabilities) live in :mod:`attnscope.store.forms.policy`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from attnscope.kernels import QkInputs, qk_probabilities
from attnscope.maps import AttentionMap
from attnscope.store import codec, relative_bias, shards
from attnscope.store.errors import StoreError
from attnscope.store.forms import WriteContext, register_form
from attnscope.store.forms.dense import _entry_map
from attnscope.store.forms.qk_mask import decode_mask, encode_mask

_BITS = {torch.bfloat16: torch.int16}  # dtypes NumPy lacks: stored as raw bits


def _write_array(path: Path, t: torch.Tensor, durable: bool, compress: bool) -> int:
    """A 4-D array written by the shard path probability maps use
    (:func:`codec.write_dense`: inner chunk one head of one sample, no zarr call per
    array), so ``shards.read_heads`` reads any head directly. Queries and keys are
    written raw (``compress=False``): blosc keeps 0.90 of them at ~10x the time."""
    raw = _BITS.get(t.dtype)
    data = t.view(raw) if raw is not None else t
    return codec.write_dense(path, data, data.dtype, None,
                             {"torch_dtype": str(t.dtype).replace("torch.", "")},
                             durable, fill=0, compress=compress)


def _read_array(path: Path, shape: list[int], dtype: str, rows: list[int],
                heads: list[int]) -> torch.Tensor:
    """``(len(rows), len(heads), ...)`` of a 4-D array; size-1 axes broadcast."""
    rows = rows if shape[0] > 1 else [0]
    heads = heads if shape[1] > 1 else [0]
    data = shards.read_heads(path, np.asarray(rows), np.asarray(heads))
    if data is None:  # written by another zarr layout: let zarr read it
        data = zarr.open_array(str(path), mode="r").oindex[rows, heads]
    t = torch.from_numpy(np.ascontiguousarray(data))
    want = getattr(torch, dtype)
    return t.view(want) if want in _BITS else t


def write_segment(path: Path, inp: QkInputs, attrs: dict[str, Any],
                  durable: bool = True) -> int:
    """Write one batch of one entry in query/key form; return the bytes written."""
    mask, kind, values = (None, None, None) if inp.mask is None else encode_mask(inp.mask)
    dtype = lambda t: str(t.dtype).replace("torch.", "")  # noqa: E731
    meta = {**attrs, "form": "qk", "shape": list(inp.shape), "causal": inp.causal,
            "scale": inp.scale, "kv_index": inp.kv_index, "reduced": inp.reduced,
            "key_len": inp.key.shape[-2],
            "q": [list(inp.query.shape), dtype(inp.query)],
            "k": [list(inp.key.shape), dtype(inp.key)],
            "mask": None if mask is None else [list(mask.shape), dtype(inp.mask), kind, values]}
    group = json.dumps({"attributes": meta, "zarr_format": 3, "node_type": "group"}).encode()
    codec.write_json(path / "zarr.json", group)
    n = (_write_array(path / "q", inp.query, durable, compress=False)
         + _write_array(path / "k", inp.key, durable, compress=False))
    if mask is not None:  # packed bits, mostly runs: compresses well
        n += _write_array(path / "mask", mask, durable, compress=True)
    return n + len(group)


def _attrs(path: Path) -> dict[str, Any]:
    return segment_meta(path)["attributes"]


def segment_meta(path: Path) -> dict[str, Any]:
    """The group's ``zarr.json`` with the probability shape on top, as readers that
    check a segment array's metadata expect."""
    try:
        meta = json.loads((path / "zarr.json").read_bytes())
        return {**meta, "shape": list(meta["attributes"]["shape"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreError(f"segment '{path}' is unreadable ({type(e).__name__}); the store is "
                         "damaged, re-capture this step") from None


def load(path: Path, samples: list[int], heads: list[int]) -> QkInputs:
    """The stored inputs of ``samples`` and ``heads`` (positions in the segment)."""
    a = _attrs(path)
    ints = lambda v: isinstance(v, list) and all(type(i) is int for i in v)  # noqa: E731
    if not (isinstance(a["causal"], bool) and type(a["scale"]) in (int, float)
            and ints(a["kv_index"]) and type(a["key_len"]) is int):
        raise StoreError(f"segment '{path}' has damaged attributes; re-capture this step")
    if a["reduced"]:  # a head mean needs every kept head
        heads = list(range(len(a["kv_index"])))
    q = _read_array(path / "q", *a["q"], samples, heads)
    needed = sorted({a["kv_index"][h] for h in heads})
    k = _read_array(path / "k", *a["k"], samples, needed)
    kv = [needed.index(a["kv_index"][h]) for h in heads]
    mask = None
    if a["mask"] is not None:
        shape, dtype, kind, values = a["mask"]
        mask = decode_mask(_read_array(path / "mask", shape,
                                       "uint8" if kind == "bits" else dtype, samples, heads),
                           a["key_len"], dtype, kind, values)
    return QkInputs(q, k, kv, mask, bool(a["causal"]), float(a["scale"]), a["reduced"])


def read_heads(path: Path, rows: Any, heads: Any, queries: Any = None) -> np.ndarray:
    """Probabilities ``(len(rows), len(heads), query, key)`` float32 of one segment,
    computing only the given samples, heads and (optionally) query rows."""
    rows, heads = [int(r) for r in rows], [int(h) for h in heads]
    shape = _attrs(path)["shape"]
    if not rows or not heads:
        return np.zeros((len(rows), len(heads), *shape[2:]), dtype=np.float32)
    try:
        out = qk_probabilities(load(path, rows, heads), rows=queries).numpy()
        out = relative_bias.add(path, _attrs(path), out, heads, queries)  # @effective
        want = (len(rows), len(heads), len(queries) if queries is not None else shape[2],
                shape[3])
    except StoreError:  # a chunk that fails its checksum, from shards.read_heads
        raise
    except Exception as e:  # garbled attributes, arrays that do not fit them ...
        raise StoreError(f"segment '{path}' is unreadable ({type(e).__name__}); the store is "
                         "damaged, re-capture this step") from None
    if out.shape != want:
        raise StoreError(f"segment '{path}' computes {list(out.shape)}, not the {list(want)} "
                         "its metadata says; the store is damaged, re-capture this step")
    return out


def _cat(parts: list[torch.Tensor | None], batches: list[int]) -> torch.Tensor | None:
    """Concatenate along the batch axis; a size-1 (broadcast) batch axis stays one row
    when every part holds the same row, else it is repeated to its part's batch."""
    if parts[0] is None:
        return None
    if all(p.shape[0] == 1 for p in parts) and all(torch.equal(p, parts[0]) for p in parts):
        return parts[0]
    axes = [max(p.shape[i] for p in parts) for i in range(1, parts[0].ndim)]
    return torch.cat([p.expand(n, *axes) for p, n in zip(parts, batches, strict=True)])


class QkForm:
    name, holds, head_axis, priority = "qk", "qk", 1, 10

    def accepts(self, m: AttentionMap, weights: torch.Tensor, policy: str) -> bool:
        """Only a map's own weights (not its ``@effective`` matrix) with inputs attached;
        a map carrying inputs alone (no probabilities) always."""
        inputs = getattr(m, "qk", None)
        if inputs is None or m.edge_index is not None:
            return False
        if weights is m.effective:  # probabilities plus a relative bias (relative_bias.py)
            return getattr(m, "effective_bias", None) is not None and policy != "probs"
        return weights is m.weights and (policy != "probs" or weights.is_meta)

    def write(self, path: Path, m: AttentionMap, weights: torch.Tensor,
              ctx: WriteContext) -> tuple[int, list[int]]:
        n = write_segment(path, m.qk, ctx.attrs, ctx.durable)
        if weights is m.effective:
            n += relative_bias.write(path, m.effective_bias)
        return n, list(m.qk.shape)

    def detect(self, path: Path) -> bool:
        return (path / "q" / "zarr.json").exists()

    def describe(self, path: Path) -> dict[str, Any]:
        return segment_meta(path)

    def read_heads(self, path: Path, rows: np.ndarray, heads: np.ndarray,
                   meta: dict[str, Any], queries: list[int] | None = None) -> np.ndarray:
        return read_heads(path, rows, heads, queries)

    def take(self, path: Path, rows: list[int], meta: dict[str, Any],
             info: dict[str, Any]) -> AttentionMap:
        attrs = meta["attributes"]
        try:
            inputs = load(path, list(rows), list(range(len(attrs["kv_index"]))))
        except StoreError:
            raise
        except Exception as e:  # garbled attributes, arrays that do not fit them ...
            raise StoreError(f"segment '{path}' is unreadable ({type(e).__name__}); the "
                             "store is damaged, re-capture this step") from None
        return self._map(info, inputs)

    @staticmethod
    def _map(info: dict[str, Any], inputs: QkInputs) -> AttentionMap:
        m = _entry_map(info, torch.empty(inputs.shape, dtype=torch.float32, device="meta"))
        m.qk = inputs
        return m

    def key(self, meta: dict[str, Any]) -> Any:
        a = meta["attributes"]
        mask = a["mask"]
        return (self.name, tuple(a["shape"][1:]), a["causal"], a["scale"],
                tuple(a["kv_index"]), a["reduced"], a["q"][1], a["k"][1],
                tuple(a["k"][0][1:]), None if mask is None else (mask[1], mask[0][-1]))

    def join(self, maps: list[AttentionMap]) -> AttentionMap:
        if len(maps) == 1:
            return maps[0]
        parts = [m.qk for m in maps]
        batches = [p.query.shape[0] for p in parts]
        first = parts[0]
        inputs = QkInputs(torch.cat([p.query for p in parts]),
                          _cat([p.key for p in parts], batches), first.kv_index,
                          _cat([p.mask for p in parts], batches), first.causal, first.scale,
                          first.reduced)
        m0 = maps[0]
        return self._map({"module": m0.module, "kind": m0.kind, "call_index": m0.call_index,
                          "source": m0.source, "heads": m0.heads, "reduced": m0.reduced},
                         inputs)


QK = register_form(QkForm())
