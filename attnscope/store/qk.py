"""Segments in query/key form: the inputs of an sdpa call on disk, probabilities
computed on read.

A qk segment is a zarr group ``b000012/`` holding ``q`` ``(batch, head, query, dim)``,
``k`` ``(batch or 1, key_head, key, dim)``, optionally ``mask``, and attributes with
the causal flag, scale, grouped-query layout (``kv_index``), array shapes and dtypes and
the shape of the probabilities it stands for. Arrays use the map layout of
``codec.write_dense`` (one inner chunk per head of one sample), so one head reads
without the others. Masks are stored compact
(:func:`attnscope.capturing.qk_inputs.compact_mask`), bool-valued ones (also additive
masks with two values, such as ``0``/``finfo.min``) as packed bits plus the two values
(as hex floats), so they read back bit for bit. Every chunk and shard index carries a
crc32c, as in probability segments: damage (a flipped byte, garbled attributes, arrays
that do not fit them) is a :class:`StoreError`, never other numbers.

The store reader asks :func:`read_heads` (through ``codec.read_heads``) and
:class:`QkArray` (through ``Segment.array``), so every reader built on ``Store.read``
or the xarray view works on a qk store unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from attnscope import notes
from attnscope.capturing.qk_inputs import QkInputs, qk_probabilities
from attnscope.store import codec, relative_bias
from attnscope.store.errors import StoreError

_BITS = {torch.bfloat16: torch.int16}  # dtypes NumPy lacks: stored as raw bits


def is_qk(path: Path) -> bool:
    """Whether the segment at ``path`` is in query/key form."""
    return (path / "q" / "zarr.json").exists()


def writes_qk(form: str, m: Any) -> bool:
    """Whether a writer of ``form`` stores map ``m`` in query/key form (a map that carries
    no probabilities, only inputs, always is)."""
    inputs = getattr(m, "qk", None)
    return inputs is not None and (form != "probs" or m.weights.is_meta)


def note_form(info: dict[str, Any], form: str, m: Any, warned: set[str], name: str) -> None:
    """Set the entry ``name``'s ``form`` in its module metadata ``info`` on its first map,
    and a ``note`` (plus one warning) whenever a qk store falls back to probabilities:
    the strategy cannot see queries and keys, or the layout check rebuilt the map
    (``m.qk_note``), so the stored inputs would not match the recorded map."""
    stored_qk = writes_qk(form, m) and (not name.endswith("@effective")
                                        or getattr(m, "effective_bias", None) is not None)
    if form == "probs" and not stored_qk:
        return
    info.setdefault("form", "qk" if stored_qk else "probs")
    if stored_qk:
        return
    why = getattr(m, "qk_note", None) or (f"queries and keys are not reachable for "
                                          f"{m.source or 'this'} maps")
    note = f"{why}; stored as probabilities"
    if info["form"] == "qk":  # earlier calls were stored as queries and keys
        note = f"some calls: {note}"
    if note not in info.get("note", ""):
        info["note"] = f"{info['note']} | {note}" if info.get("note") else note
    if name not in warned:
        warned.add(name)
        notes.note(f"{name!r}: {note}")  # one line, no source path


def merge_notes(modules: dict[str, Any], later: dict[str, dict[str, Any]]) -> bool:
    """Add the fallback notes gathered (by :func:`note_form`) for entries registered by an
    earlier commit to their module metadata; whether anything changed."""
    changed = False
    for name, extra in later.items():
        info, note = modules.get(name), extra.get("note")
        if info is None or not note:
            continue
        if info.get("form") == "qk" and not note.startswith("some calls"):
            note = f"some calls: {note}"
        if note not in info.get("note", ""):
            info["note"] = f"{info['note']} | {note}" if info.get("note") else note
            changed = True
    return changed


def _write_array(path: Path, t: torch.Tensor) -> int:
    """A 4-D array laid out as ``codec.write_dense`` lays out maps (inner chunk: one head
    of one sample, one shard file), so ``codec.read_heads`` reads any head directly."""
    raw = _BITS.get(t.dtype)
    data = (t.view(raw) if raw is not None else t).numpy()
    compressor = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle",
                            typesize=data.itemsize)
    z = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype,
                          chunks=(1, 1, *data.shape[2:]), shards=data.shape,
                          compressors=[compressor, Crc32cCodec()], fill_value=0, overwrite=True,
                          config={"write_empty_chunks": True},  # read_heads needs them all
                          attributes={"torch_dtype": str(t.dtype).replace("torch.", "")})
    z[...] = data
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _read_array(path: Path, shape: list[int], dtype: str, rows: list[int],
                heads: list[int]) -> torch.Tensor:
    """``(len(rows), len(heads), ...)`` of a 4-D array; size-1 axes broadcast."""
    rows = rows if shape[0] > 1 else [0]
    heads = heads if shape[1] > 1 else [0]
    data = codec.read_heads(path, np.asarray(rows), np.asarray(heads))
    if data is None:  # written by another zarr layout: let zarr read it
        data = zarr.open_array(str(path), mode="r").oindex[rows, heads]
    t = torch.from_numpy(np.ascontiguousarray(data))
    want = getattr(torch, dtype)
    return t.view(want) if want in _BITS else t


def write_segment(path: Path, inp: QkInputs, attrs: dict[str, Any]) -> int:
    """Write one batch of one entry in query/key form; return the bytes written."""
    mask, kind, values = inp.mask, None, None
    if mask is not None:
        kind = "raw"
        if mask.dtype == torch.bool:
            kind = "bits"
        else:
            lo, hi = mask.min(), mask.max()
            if bool(((mask == lo) | (mask == hi)).all()):  # exact as hex: no JSON rounding
                kind, values, mask = "bits", [float(lo).hex(), float(hi).hex()], mask == lo
        if kind == "bits":  # 1 bit per (query, key): bool, or which of two values
            mask = torch.from_numpy(np.packbits(mask.numpy(), axis=-1))
    dtype = lambda t: str(t.dtype).replace("torch.", "")  # noqa: E731
    meta = {**attrs, "form": "qk", "shape": list(inp.shape), "causal": inp.causal,
            "scale": inp.scale, "kv_index": inp.kv_index, "reduced": inp.reduced,
            "key_len": inp.key.shape[-2],
            "q": [list(inp.query.shape), dtype(inp.query)],
            "k": [list(inp.key.shape), dtype(inp.key)],
            "mask": None if mask is None else [list(mask.shape), dtype(inp.mask), kind, values]}
    zarr.open_group(str(path), mode="w", attributes=meta)
    n = _write_array(path / "q", inp.query) + _write_array(path / "k", inp.key)
    if mask is not None:
        n += _write_array(path / "mask", mask)
    return n + (path / "zarr.json").stat().st_size


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
        mask = _read_array(path / "mask", shape, "uint8" if kind == "bits" else dtype,
                           samples, heads)
        if kind == "bits":
            bits = np.unpackbits(mask.numpy(), axis=-1, count=a["key_len"]).astype(bool)
            mask = torch.from_numpy(bits)
            if values is not None:
                lo, hi = (torch.tensor(float.fromhex(v), dtype=getattr(torch, dtype))
                          for v in values)
                mask = torch.where(mask, lo, hi)
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
    except StoreError:  # a chunk that fails its checksum, from codec.read_heads
        raise
    except Exception as e:  # garbled attributes, arrays that do not fit them ...
        raise StoreError(f"segment '{path}' is unreadable ({type(e).__name__}); the store is "
                         "damaged, re-capture this step") from None
    if out.shape != want:
        raise StoreError(f"segment '{path}' computes {list(out.shape)}, not the {list(want)} "
                         "its metadata says; the store is damaged, re-capture this step")
    return out


class QkArray:
    """Read-only array view of a qk segment for dask (``Segment.array``): indexing with
    ints and slices computes only the selected samples, heads and query rows."""

    dtype = np.dtype("float32")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shape = tuple(_attrs(path)["shape"])
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        picks = [np.arange(n)[k] for n, k in zip(self.shape, key, strict=True)]
        flat = [np.atleast_1d(p) for p in picks]
        whole = np.array_equal(flat[2], np.arange(self.shape[2]))
        rows = None if whole else flat[2].tolist()
        out = read_heads(self.path, flat[0], flat[1], rows)[..., flat[3]]
        drop = tuple(i for i, p in enumerate(picks) if np.ndim(p) == 0)
        return out.squeeze(drop) if drop else out

    def __len__(self) -> int:
        return self.shape[0]
