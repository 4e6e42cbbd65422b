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

Lossy mode (opt-in ``keepbits``): mantissa bits below ``keepbits`` are rounded to
nearest before compression, so ``|x' - x| <= 2**-(keepbits+1) * |x|`` for normal
float16 values plus ``2**-(15+keepbits)`` absolute for subnormals (below 6.1e-5).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np
import torch
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec

SHARD_BYTES = 16 << 20  # ~16 MB shards: a few per batch, so two cores share the work
MANTISSA = {torch.float16: 10, torch.float32: 23}
_EMPTY = np.iinfo(np.uint64).max
_pool: ThreadPoolExecutor | None = None
_blosc = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _fix_mmap_threshold()
        _pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="attnscope")
    return _pool


def _fix_mmap_threshold() -> None:
    """Keep glibc from recycling our many-MB shard buffers through its heap.

    glibc raises its mmap threshold after each big free, so buffers of later batches
    land in per-thread arenas that never shrink: measured, peak RSS grew 2x one batch
    and page faults halved throughput. A fixed 4 MB threshold (glibc's own mechanism,
    affecting only allocations >= 4 MB) gave 0.55x and ~2x the speed. Opt out with
    ``ATTNSCOPE_NO_MALLOPT=1``; a no-op off glibc.
    """
    if os.environ.get("ATTNSCOPE_NO_MALLOPT"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


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
    head_bytes = q * k * itemsize
    per_sample = heads * head_bytes
    if per_sample <= SHARD_BYTES:
        return (max(1, min(batch, SHARD_BYTES // per_sample)), heads, q, k)
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
        chunks=(1, 1, *shape[2:]), shards=shards, compressors=compressor,
        fill_value=float("nan"), attributes=attrs, overwrite=True,
    )
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
            index[i, j, 0, 0] = (offset, len(blob))
            parts.append(blob)
            offset += len(blob)
    del data
    raw = index.tobytes()
    parts.append(raw)
    parts.append(np.uint32(google_crc32c.value(raw)).astype("<u4").tobytes())
    file = path / "c" / str(s0 // ns) / str(h0 // nh) / "0" / "0"
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as f:
        for p in parts:
            f.write(p)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    return offset + len(raw) + 4


def write_plain(path: Path, data: np.ndarray, chunks: tuple[int, ...], attrs: dict) -> int:
    """Small arrays (graph weights, edge_index) through zarr itself; speed is not an issue."""
    compressor = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=data.itemsize)
    fill = float("nan") if data.dtype.kind == "f" else 0
    z = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, chunks=chunks,
                          compressors=compressor, fill_value=fill, attributes=attrs,
                          overwrite=True)
    z[...] = data
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def read_heads(path: Path, rows: np.ndarray, heads: np.ndarray) -> np.ndarray | None:
    """Read ``(len(rows), len(heads), query, key)`` straight from our shard files: a
    seek to the shard index and one read per inner chunk, ~20x less overhead than
    zarr's async path for a single head. ``None`` when the array is not laid out the
    way :func:`write_dense` writes it (then the caller asks zarr)."""
    from attnscope.store import qk  # hook: query/key segments compute on read

    if qk.is_qk(path):
        return qk.read_heads(path, rows, heads)
    meta = json.loads((path / "zarr.json").read_text())
    try:
        (codec,) = meta["codecs"]
        cfg = codec["configuration"]
        shards = meta["chunk_grid"]["configuration"]["chunk_shape"]
        ok = (codec["name"] == "sharding_indexed" and cfg.get("index_location") == "end"
              and cfg["chunk_shape"][:2] == [1, 1] and len(meta["shape"]) == 4
              and [c["name"] for c in cfg["codecs"]] == ["bytes", "blosc"])
    except (KeyError, TypeError, ValueError):
        return None
    if not ok:
        return None
    dtype = np.dtype(meta["data_type"]).newbyteorder("<")
    ns, nh = shards[0], shards[1]
    q, k = meta["shape"][2:]

    def one(task: tuple[int, int]) -> np.ndarray:
        s, h = task
        file = path / "c" / str(s // ns) / str(h // nh) / "0" / "0"
        with open(file, "rb") as f:
            f.seek(-(ns * nh * 16 + 4), os.SEEK_END)
            index = np.frombuffer(f.read(ns * nh * 16), dtype="<u8").reshape(ns, nh, 2)
            off, size = index[s % ns, h % nh]
            f.seek(int(off))
            blob = f.read(int(size))
        return np.frombuffer(_blosc.decode(blob), dtype=dtype).reshape(q, k)

    tasks = [(int(s), int(h)) for s in rows for h in heads]
    parts = list(pool().map(one, tasks)) if len(tasks) > 4 else [one(t) for t in tasks]
    out = np.empty((len(rows), len(heads), q, k), dtype=dtype)
    for i, p in enumerate(parts):
        out[i // len(heads), i % len(heads)] = p
    return out
