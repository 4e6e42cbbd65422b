"""Turning one batch of maps into one zarr v3 array on disk, fast.

Layout of a dense segment ``(batch, head, query, key)``: the inner chunk is one head of
one sample ``(1, 1, query, key)``, so reading it touches nothing else; inner chunks are
packed into shards of several samples (zarr v3 sharding) so a batch is a few files, not
thousands. Shard files are named with zarr's ``.`` key separator (``c.0.0.0.0`` beside
``zarr.json``), not nested folders: creating four folders per array and batch cost more
than writing a small array (~85 us per folder on the disks measured).

Compression is blosc-lz4 with bit-shuffle: measured on softmax maps it is both the
fastest and the smallest of zstd/lz4/blosclz with and without shuffling. Arrays that
do not compress (query/key activations: 0.90 of their size at best) are written raw
(``compress=False``: codecs ``bytes`` + ``crc32c``), which costs a copy.

zarr itself writes the array metadata; the shard files are assembled here because
zarr's async pipeline compresses at ~1 GB/s where a thread pool over inner chunks
reaches several GB/s. The files follow the zarr v3 sharding spec (chunks, then an index
of (offset, nbytes) uint64 pairs and its crc32c), and tests read them back with zarr.

Every inner chunk ends in its crc32c (zarr's ``crc32c`` codec), and the fast reader
(:mod:`attnscope.store.shards`) checks it, the index checksum, every offset against the
file size and the decoded size against the shape before decompressing: a flipped bit is
an error, never other numbers.

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
from zarr.codecs import BloscCodec, Crc32cCodec

SHARD_BYTES = 16 << 20  # ~16 MB shards: a few per batch, so two cores share the work
MANTISSA = {torch.float16: 10, torch.float32: 23}
_EMPTY = np.iinfo(np.uint64).max
_pool: ThreadPoolExecutor | None = None
_TEMPLATES: dict[tuple, dict] = {}
BLOSC = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)
SEPARATOR = "."  # zarr's chunk-key separator in arrays written here: c.0.0.0.0


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


def array_json(shape: tuple[int, ...], dtype: torch.dtype, shards: tuple[int, ...],
               fill: float | int, attrs: dict, compress: bool = True) -> bytes:
    """The ``zarr.json`` zarr writes for such an array, built by zarr once per layout
    (in memory) and reused: creating the array through zarr costs milliseconds per
    call, which per layer and batch is most of a query/key segment's write time.
    Encoded without indentation: the indenting encoder is pure Python, ~20x slower."""
    key = (shape, str(dtype), shards, repr(fill), compress)
    meta = _TEMPLATES.get(key)
    if meta is None:
        from zarr.storage import MemoryStore

        itemsize = torch.empty((), dtype=dtype).element_size()
        compressor = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=itemsize)
        mem = MemoryStore()
        zarr.create_array(store=mem, shape=shape, dtype=str(dtype).replace("torch.", ""),
                          chunks=(1, 1, *shards[2:]), shards=shards, fill_value=fill,
                          compressors=[compressor, Crc32cCodec()] if compress
                          else [Crc32cCodec()],
                          chunk_key_encoding={"name": "default", "separator": SEPARATOR})
        meta = json.loads(mem._store_dict["zarr.json"].to_bytes())
        if len(_TEMPLATES) > 256:
            _TEMPLATES.clear()
        _TEMPLATES[key] = meta
    return json.dumps({**meta, "attributes": attrs}).encode()


def write_json(path: Path, data: bytes) -> None:
    """A metadata file (``zarr.json``), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def group_node(path: Path, attrs: dict) -> None:
    """A zarr v3 group node at ``path`` (the ``zarr.json`` zarr writes for
    ``open_group(mode="a", attributes=attrs)``), unless one is there: a file write, not
    a zarr call (milliseconds each, per entry of every new writer)."""
    if not (path / "zarr.json").exists():
        write_json(path / "zarr.json", json.dumps(
            {"attributes": attrs, "zarr_format": 3, "node_type": "group"}, indent=2).encode())


def write_dense(path: Path, weights: torch.Tensor, dtype: torch.dtype, keepbits: int | None,
                attrs: dict, durable: bool = True, fill: float | int = float("nan"),
                compress: bool = True) -> int:
    """Write ``weights`` ``(batch, head, query, key)`` as a sharded zarr array; return bytes.

    Each shard is cast and compressed by its own worker, so the converted copy never
    exists for the whole batch at once: memory stays near one batch of input. A single
    shard is written on the calling thread (a hand-over to a worker costs more than it
    saves there).
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    shape = tuple(weights.shape)
    shards = shard_shape(shape, itemsize)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    meta = array_json(shape, dtype, shards, fill, attrs, compress)
    write_json(path / "zarr.json", meta)
    if 0 in shape:  # zero-length sequences (or no samples): metadata only, no chunks
        return len(meta)
    starts = [(s0, h0) for s0 in range(0, shape[0], shards[0])
              for h0 in range(0, shape[1], shards[1])]
    args = [(path, weights[s0:s0 + shards[0], h0:h0 + shards[1]], dtype, keepbits, s0, h0,
             shards, durable, compress) for s0, h0 in starts]
    if len(args) == 1:
        return _write_shard(*args[0]) + len(meta)
    jobs = [pool().submit(_write_shard, *a) for a in args]
    return sum(j.result() for j in jobs) + len(meta)


def _write_shard(path: Path, part: torch.Tensor, dtype: torch.dtype, keepbits: int | None,
                 s0: int, h0: int, shards: tuple[int, ...], durable: bool,
                 compress: bool = True) -> int:
    data = to_storage(part, dtype, keepbits)  # (shard samples, shard heads, query, key)
    ns, nh = shards[0], shards[1]
    index = np.full((ns, nh, 2), _EMPTY, dtype="<u8")
    parts, offset = [], 0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):  # chunks beyond the array edge stay empty (spec)
            blob = BLOSC.encode(data[i, j]) if compress else data[i, j]  # raw: no copy
            size = blob.nbytes if isinstance(blob, np.ndarray) else len(blob)
            parts.append(blob)
            parts.append(crc(blob))
            index[i, j] = (offset, size + 4)
            offset += size + 4
    raw = index.tobytes()
    parts.append(raw)
    parts.append(crc(raw))
    body = b"".join(parts)  # one write call, not two per chunk
    del data, parts
    with open(chunk_key(path, (s0 // ns, h0 // nh, 0, 0)), "wb") as f:  # path exists
        f.write(body)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    return len(body)


def chunk_key(path: Path, coords: tuple[int, ...], separator: str = SEPARATOR) -> Path:
    """The file of the chunk (or shard) at grid ``coords`` of the array at ``path``, by
    zarr v3's default key encoding: ``c.0.0`` beside ``zarr.json`` with ``.``, nested
    folders ``c/0/0`` with ``/`` (zarr's own default)."""
    if separator == ".":
        return path / ".".join(["c", *(str(c) for c in coords)])
    return path.joinpath("c", *(str(c) for c in coords))


def crc(data: bytes) -> bytes:
    return google_crc32c.value(data).to_bytes(4, "little")


def write_plain(path: Path, data: np.ndarray, chunks: tuple[int, ...], attrs: dict) -> int:
    """Small arrays (graph weights, edge_index) through zarr itself; speed is not an issue.
    Every chunk carries a crc32c that zarr checks when reading."""
    compressor = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=data.itemsize)
    fill = float("nan") if data.dtype.kind == "f" else 0
    chunks = tuple(max(1, c) for c in chunks)  # zarr refuses empty chunks (no edges)
    z = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, chunks=chunks,
                          compressors=[compressor, Crc32cCodec()], fill_value=fill,
                          attributes=attrs, overwrite=True,
                          config={"write_empty_chunks": True})  # a missing chunk is damage
    z[...] = data
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
