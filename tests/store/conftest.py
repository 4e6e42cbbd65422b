from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnscope.maps import AttentionMap


def dense(batch: int = 4, heads: int = 3, q: int = 8, k: int = 8, seed: int = 0,
          **kw) -> AttentionMap:
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(torch.randn(batch, heads, q, k, generator=g) * 2, -1)
    return AttentionMap(kw.pop("module", "enc.attn"), kw.pop("kind", "self"), w, **kw)


@pytest.fixture
def make_dense():
    return dense


def chunk_files(array: Path) -> list[Path]:
    """The chunk or shard files of the zarr array at ``array`` (``c.0.0.0.0`` beside
    ``zarr.json`` as attnscope writes them, or nested ``c/0/...`` as zarr does)."""
    return sorted(p for p in array.rglob("*") if p.is_file() and p.name != "zarr.json"
                  and (p.name.startswith("c.") or "c" in p.relative_to(array).parts[:1]))


def fail_shard_writes(monkeypatch, after: int, error: OSError) -> None:
    """The first ``after`` shard files are written, every later one raises ``error``:
    a disk that fills up or turns read-only in the middle of a capture."""
    from attnscope.store import codec

    real, calls = codec._write_shard, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, "_write_shard", failing)
