"""Turning one batch of maps into one zarr v3 array on disk, fast.

Layout of a dense segment ``(batch, head, query, key)``: the inner chunk is one head of
one sample ``(1, 1, query, key)``, so reading it touches nothing else; inner chunks are
packed into shards of several samples (zarr v3 sharding) so a batch is a few files, not
thousands. Compression is blosc-lz4 with bit-shuffle: measured on softmax maps it is
both the fastest and the smallest of zstd/lz4/blosclz with and without shuffling.

zarr itself writes the array metadata; the shard files are assembled here because
zarr's async pipeline compresses at ~1 GB/s where a thread pool over inner chunks
reaches several GB/s. The files follow the zarr v3 sharding spec (chunks, then an index
of (offset, nbytes) uint64 pairs and its crc32c), and tests read them back with zarr.

Every inner chunk ends in its crc32c (zarr's ``crc32c`` codec), and the fast reader
checks it, the index checksum, every offset against the file size and the decoded size
against the shape before decompressing: a flipped bit is an error, never other numbers.

Lossy mode (opt-in ``keepbits``): mantissa bits below ``keepbits`` are rounded to
nearest before compression, so ``|x' - x| <= 2**-(keepbits+1) * |x|`` for normal
float16 values plus ``2**-(15+keepbits)`` absolute for subnormals (below 6.1e-5).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import torch
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, Crc32cCodec

from attnscope.store.errors import StoreError

SHARD_BYTES = 16 << 20  # ~16 MB shards: a few per batch, so two cores share the work
MANTISSA = {torch.float16: 10, torch.float32: 23}
_EMPTY = np.iinfo(np.uint64).max
_pool: ThreadPoolExecutor | None = None
_blosc = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)


def pool() -> ThreadPoolExecutor:
    """The compression/decompression threads, started on first use."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="attnscope")
    return _pool


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads: it would wait forever
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def tune_allocator() -> bool:
    """Opt-in: keep glibc from recycling the store's many-MB shard buffers through its
    heap, for long captures. Process-wide, so attnscope never does it on its own.

    glibc raises its mmap threshold after each big free, so buffers of later batches
    land in per-thread arenas that never shrink: measured, peak RSS grew 2x one batch
    and page faults halved throughput. A fixed 4 MB threshold (glibc's own mechanism,
    affecting only allocations >= 4 MB) gave 0.55x and ~2x the speed. Returns False off
    glibc (nothing changed).
    """
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, 4 << 20))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def to_storage(weights: torch.Tensor, dtype: torch.dtype, keepbits: int | None) -> np.ndarray:
    """Cast in torch (NumPy's float16 cast is ~20x slower) and bit-round if asked."""
    copy = keepbits is not None and weights.dtype == dtype
    t = weights.detach().to(dtype=dtype, copy=copy).contiguous()  # slices need a copy too
    drop = MANTISSA[dtype] - keepbits if keepbits is not None else 0
    if drop > 0:
        bits = t.view(torch.int16 if dtype == torch.float16 else torch.int32)
        carry = bits >> drop  # round half to even on the kept bits, one temporary
        carry.bitwise_and_(1).add_((1 << (drop - 1)) - 1)
        bits.add_(carry).bitwise_and_(-1 << drop)
    return t.numpy()


def shard_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Whole heads of a few samples per shard; big samples split over heads."""
    batch, heads, q, k = shape
    head_bytes = max(1, q * k * itemsize)  # zero-length sequences still get a shard
    per_sample = heads * head_bytes
    q, k = max(1, q), max(1, k)  # zarr needs chunks of at least 1 on every axis
    if per_sample <= SHARD_BYTES:
        return (max(1, min(batch, SHARD_BYTES // max(1, per_sample))), max(1, heads), q, k)
    return (1, max(1, min(heads, SHARD_BYTES // head_bytes)), q, k)


def write_dense(path: Path, weights: torch.Tensor, dtype: torch.dtype, keepbits: int | None,
                attrs: dict, durable: bool = True) -> int:
    """Write ``weights`` ``(batch, head, query, key)`` as a sharded zarr array; return bytes.

    Each shard is cast and compressed by its own worker, so the converted copy never
    exists for the whole batch at once: memory stays near one batch of input.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    shape = tuple(weights.shape)
    shards = shard_shape(shape, itemsize)
    compressor = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=itemsize)
    zarr.create_array(
        store=str(path), shape=shape, dtype=str(dtype).replace("torch.", ""),
        chunks=(1, 1, *shards[2:]), shards=shards, compressors=[compressor, Crc32cCodec()],
        fill_value=float("nan"), attributes=attrs, overwrite=True,
    )
    if 0 in shape:  # zero-length sequences (or no samples): metadata only, no chunks
        return (path / "zarr.json").stat().st_size
    jobs = []
    for s0 in range(0, shape[0], shards[0]):
        for h0 in range(0, shape[1], shards[1]):
            part = weights[s0:s0 + shards[0], h0:h0 + shards[1]]
            jobs.append(pool().submit(_write_shard, path, part, dtype, keepbits, s0, h0,
                                      shards, durable))
    return sum(j.result() for j in jobs) + (path / "zarr.json").stat().st_size


def _write_shard(path: Path, part: torch.Tensor, dtype: torch.dtype, keepbits: int | None,
                 s0: int, h0: int, shards: tuple[int, ...], durable: bool) -> int:
    data = to_storage(part, dtype, keepbits)  # (shard samples, shard heads, query, key)
    ns, nh = shards[0], shards[1]
    index = np.full((ns, nh, 1, 1, 2), _EMPTY, dtype="<u8")
    parts, offset = [], 0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):  # chunks beyond the array edge stay empty (spec)
            blob = _blosc.encode(data[i, j])
            parts.append(blob)
            parts.append(_crc(blob))
            index[i, j, 0, 0] = (offset, len(blob) + 4)
            offset += len(blob) + 4
    del data
    raw = index.tobytes()
    parts.append(raw)
    parts.append(_crc(raw))
    file = path / "c" / str(s0 // ns) / str(h0 // nh) / "0" / "0"
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as f:
        for p in parts:
            f.write(p)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    return offset + len(raw) + 4


def _crc(data: bytes) -> bytes:
    return np.uint32(google_crc32c.value(data)).astype("<u4").tobytes()


def write_plain(path: Path, data: np.ndarray, chunks: tuple[int, ...], attrs: dict) -> int:
    """Small arrays (graph weights, edge_index) through zarr itself; speed is not an issue.
    Every chunk carries a crc32c that zarr checks when reading."""
    compressor = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=data.itemsize)
    fill = float("nan") if data.dtype.kind == "f" else 0
    chunks = tuple(max(1, c) for c in chunks)  # zarr refuses empty chunks (no edges)
    z = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, chunks=chunks,
                          compressors=[compressor, Crc32cCodec()], fill_value=fill,
                          attributes=attrs, overwrite=True)
    z[...] = data
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def array_meta(path: Path) -> dict[str, Any]:
    """The ``zarr.json`` of a segment array (StoreError when missing or unparsable)."""
    try:
        meta = json.loads((path / "zarr.json").read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise StoreError(f"segment '{path}' is unreadable ({type(e).__name__}); the store is "
                         "damaged, re-capture this step") from None
    if not isinstance(meta, dict):
        raise StoreError(f"segment '{path}' has damaged metadata; re-capture this step")
    return meta


def _fast_layout(meta: dict[str, Any]) -> tuple[list[int], bool] | None:
    """``(shard shape, chunks carry crc32c)`` when ``meta`` is laid out the way
    :func:`write_dense` writes it, else None."""
    try:
        (codec,) = meta["codecs"]
        cfg = codec["configuration"]
        shards = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
        names = [c["name"] for c in cfg["codecs"]]
        ok = (codec["name"] == "sharding_indexed" and cfg.get("index_location") == "end"
              and cfg["chunk_shape"][:2] == [1, 1] and len(meta["shape"]) == 4
              and len(shards) == 4 and min(shards) > 0
              and [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"]
              and names in (["bytes", "blosc"], ["bytes", "blosc", "crc32c"]))
    except (KeyError, TypeError, ValueError):
        return None
    return (shards, names[-1] == "crc32c") if ok else None


def read_heads(path: Path, rows: np.ndarray, heads: np.ndarray,
               meta: dict[str, Any] | None = None) -> np.ndarray | None:
    """Read ``(len(rows), len(heads), query, key)`` straight from our shard files: a
    seek to the shard index and one read per inner chunk, ~20x less overhead than
    zarr's async path for a single head. ``None`` when the array is not laid out the
    way :func:`write_dense` writes it (then the caller asks zarr). Damage (a checksum,
    an offset or a size that does not fit) raises :class:`StoreError`."""
    from attnscope.store import qk  # hook: query/key segments compute on read

    if qk.is_qk(path):
        return qk.read_heads(path, rows, heads)
    meta = array_meta(path) if meta is None else meta
    found = _fast_layout(meta)
    if found is None:
        return None
    shards, checked = found
    try:
        dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        q, k = (int(n) for n in meta["shape"][2:])
    except (KeyError, TypeError, ValueError):
        return None
    ns, nh = shards[0], shards[1]
    index_bytes = ns * nh * 16

    def damaged(s: int, h: int, why: str) -> StoreError:
        return StoreError(f"segment '{path}' is damaged: sample {s}, head {h} {why}; "
                          "re-capture this step")

    def one(task: tuple[int, int]) -> np.ndarray:
        s, h = task
        file = path / "c" / str(s // ns) / str(h // nh) / "0" / "0"
        with open(file, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end < index_bytes + 4:
                raise damaged(s, h, "has a shard file too short for its index")
            f.seek(end - index_bytes - 4)
            raw = f.read(index_bytes)
            if f.read(4) != _crc(raw):
                raise damaged(s, h, "has a shard index that fails its checksum")
            index = np.frombuffer(raw, dtype="<u8").reshape(ns, nh, 2)
            off, size = (int(v) for v in index[s % ns, h % nh])
            if off + size > end - index_bytes - 4 or size < (4 if checked else 0):
                raise damaged(s, h, "points outside its shard file")
            f.seek(off)
            blob = f.read(size)
        if checked:
            blob, crc = blob[:-4], blob[-4:]
            if _crc(blob) != crc:
                raise damaged(s, h, "fails its checksum (the file changed after writing)")
        if len(blob) < 16:
            raise damaged(s, h, "has no valid compressed header")
        # blosc header: version, lz version, flags, typesize, then uint32 nbytes,
        # blocksize, cbytes: check the sizes before anything is decompressed
        nbytes, _, cbytes = np.frombuffer(blob[4:16], dtype="<u4").tolist()
        if nbytes != q * k * dtype.itemsize or cbytes != len(blob):
            raise damaged(s, h, f"decodes to {nbytes} bytes, not the {q * k * dtype.itemsize} "
                          "of its shape")
        return np.frombuffer(_blosc.decode(blob), dtype=dtype).reshape(q, k)

    tasks = [(int(s), int(h)) for s in rows for h in heads]
    if q * k == 0:  # nothing stored for empty maps
        return np.empty((len(rows), len(heads), q, k), dtype=dtype)
    parts = list(pool().map(one, tasks)) if len(tasks) > 4 else [one(t) for t in tasks]
    out = np.empty((len(rows), len(heads), q, k), dtype=dtype)
    for i, p in enumerate(parts):
        out[i // len(heads), i % len(heads)] = p
    return out
