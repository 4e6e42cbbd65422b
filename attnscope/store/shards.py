"""Reading the shard files :func:`attnscope.store.codec.write_dense` writes, straight
from disk: a seek to the shard index and one read per inner chunk, ~20x less overhead
than zarr's async path for a single head.

Nothing is trusted: the index checksum, every offset against the file size, the decoded
size against the shape and each chunk's crc32c are checked before decompressing, and a
missing or truncated shard file names itself. Damage is a :class:`StoreError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.store.codec import BLOSC, chunk_key, crc, pool
from attnscope.store.errors import StoreError


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


_LAYOUTS = {("bytes", "blosc"): (False, True), ("bytes", "blosc", "crc32c"): (True, True),
            ("bytes", "crc32c"): (True, False)}  # inner codecs: (checksummed, compressed)


def _fast_layout(meta: dict[str, Any]) -> tuple[list[int], bool, bool] | None:
    """``(shard shape, chunks carry crc32c, chunks are blosc-compressed)`` when
    ``meta`` is laid out the way :func:`write_dense` writes it, else None."""
    try:
        (codec,) = meta["codecs"]
        cfg = codec["configuration"]
        shards = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
        names = tuple(c["name"] for c in cfg["codecs"])
        ok = (codec["name"] == "sharding_indexed" and cfg.get("index_location") == "end"
              and cfg["chunk_shape"][:2] == [1, 1] and len(meta["shape"]) == 4
              and len(shards) == 4 and min(shards) > 0
              and [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"]
              and names in _LAYOUTS)
    except (KeyError, TypeError, ValueError):
        return None
    return (shards, *_LAYOUTS[names]) if ok else None


def read_heads(path: Path, rows: np.ndarray, heads: np.ndarray,
               meta: dict[str, Any] | None = None) -> np.ndarray | None:
    """Read ``(len(rows), len(heads), query, key)`` straight from our shard files: a
    seek to the shard index and one read per inner chunk, ~20x less overhead than
    zarr's async path for a single head. ``None`` when the array is not laid out the
    way :func:`write_dense` writes it (then the caller asks zarr). Damage (a checksum,
    an offset or a size that does not fit) raises :class:`StoreError`."""
    meta = array_meta(path) if meta is None else meta
    found = _fast_layout(meta)
    if found is None:
        return None
    shards, checked, compressed = found
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
        file = chunk_file(path, (s // ns, h // nh, 0, 0), meta)
        try:
            f = open(file, "rb")  # noqa: SIM115  (closed by the ``with f`` below)
        except FileNotFoundError:
            raise damaged(s, h, f"has no shard file ({file.relative_to(path)} is missing)"
                          ) from None
        except OSError as e:
            raise damaged(s, h, f"has an unreadable shard file ({e.strerror})") from None
        with f:
            end = f.seek(0, os.SEEK_END)
            if end < index_bytes + 4:
                raise damaged(s, h, "has a shard file too short for its index")
            f.seek(end - index_bytes - 4)
            raw = f.read(index_bytes)
            if f.read(4) != crc(raw):
                raise damaged(s, h, "has a shard index that fails its checksum")
            index = np.frombuffer(raw, dtype="<u8").reshape(ns, nh, 2)
            off, size = (int(v) for v in index[s % ns, h % nh])
            if off + size > end - index_bytes - 4 or size < (4 if checked else 0):
                raise damaged(s, h, "points outside its shard file")
            f.seek(off)
            blob = f.read(size)
        if checked:
            blob, stored = blob[:-4], blob[-4:]
            if crc(blob) != stored:
                raise damaged(s, h, "fails its checksum (the file changed after writing)")
        if not compressed:
            if len(blob) != q * k * dtype.itemsize:
                raise damaged(s, h, f"holds {len(blob)} bytes, not the "
                              f"{q * k * dtype.itemsize} of its shape")
            return np.frombuffer(blob, dtype=dtype).reshape(q, k)
        if len(blob) < 16:
            raise damaged(s, h, "has no valid compressed header")
        # blosc header: version, lz version, flags, typesize, then uint32 nbytes,
        # blocksize, cbytes: check the sizes before anything is decompressed
        nbytes, _, cbytes = np.frombuffer(blob[4:16], dtype="<u4").tolist()
        if nbytes != q * k * dtype.itemsize or cbytes != len(blob):
            raise damaged(s, h, f"decodes to {nbytes} bytes, not the {q * k * dtype.itemsize} "
                          "of its shape")
        return np.frombuffer(BLOSC.decode(blob), dtype=dtype).reshape(q, k)

    tasks = [(int(s), int(h)) for s in rows for h in heads]
    if q * k == 0:  # nothing stored for empty maps
        return np.empty((len(rows), len(heads), q, k), dtype=dtype)
    parts = list(pool().map(one, tasks)) if len(tasks) > 4 else [one(t) for t in tasks]
    out = np.empty((len(rows), len(heads), q, k), dtype=dtype)
    for i, p in enumerate(parts):
        out[i // len(heads), i % len(heads)] = p
    return out


def chunk_file(path: Path, coords: tuple[int, ...], meta: dict[str, Any]) -> Path:
    """The file of the chunk (or shard) at grid ``coords``, with the separator the
    array's metadata names (``/``, zarr's default, when it names none): arrays written
    by :func:`write_dense` use ``.``, older ones and zarr's own ``/``."""
    try:
        sep = meta["chunk_key_encoding"]["configuration"]["separator"]
    except (KeyError, TypeError):
        sep = "/"
    return chunk_key(path, coords, sep)


def check_chunks(path: Path, files: list[Path], checksummed: bool, where: Path) -> None:
    """Every file exists (zarr would fill a missing one with the fill value, silently)
    and, for chunks that end in a crc32c, matches it. Damage names the file."""
    for file in files:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"segment '{where}' is damaged: {file.relative_to(where)} is "
                             "missing; re-capture this step") from None
        except OSError as e:
            raise StoreError(f"segment '{where}' is damaged: {file.relative_to(where)} is "
                             f"unreadable ({e.strerror}); re-capture this step") from None
        if checksummed and (len(raw) < 4 or crc(raw[:-4]) != raw[-4:]):
            raise StoreError(f"segment '{where}' is damaged: {file.relative_to(where)} fails "
                             "its checksum (the file changed after writing); re-capture "
                             "this step")


def ends_in_crc(meta: dict[str, Any]) -> bool:
    """Whether the array's chunks end in a crc32c (the last codec of an unsharded array)."""
    try:
        return meta["codecs"][-1]["name"] == "crc32c"
    except (KeyError, IndexError, TypeError):
        return False


def read_zarr(path: Path, where: Path, key: Any, dtypes: tuple[str, ...],
              ours: bool = True) -> np.ndarray:
    """``zarr.open_array(path)[key]`` (orthogonal indexing for tuples) where only damage
    becomes a :class:`StoreError`: metadata zarr cannot parse, a dtype this store never
    writes, a chunk that is unreadable or fails its checksum. ``ours``: the caller
    checked that the metadata is laid out as attnscope writes it, so any other error is
    a bug and is raised as it is, never reported as damage; otherwise an array zarr
    cannot read with its own metadata is damage."""
    import zarr

    name = path.relative_to(where).as_posix()

    def damage(why: str) -> StoreError:
        return StoreError(f"segment '{where}' is damaged: {name} {why}; re-capture this step")

    try:
        z = zarr.open_array(str(path), mode="r")
    except Exception as e:  # what zarr.json says cannot be an array
        raise damage(f"has metadata that is not a valid array ({type(e).__name__})") from None
    if str(z.dtype) not in dtypes:
        raise damage(f"claims dtype {z.dtype}, which this store never writes")
    try:
        return np.asarray(z.oindex[key] if isinstance(key, tuple) else z[key])
    except OSError as e:
        raise damage(f"has an unreadable chunk ({e.strerror})") from None
    except Exception as e:
        if isinstance(e, ValueError) and "checksum" in str(e):  # zarr's crc32c codec
            raise damage("has a chunk that fails its checksum") from None
        if ours:
            raise
        raise damage(f"is not readable as its zarr.json describes ({type(e).__name__})"
                     ) from None
