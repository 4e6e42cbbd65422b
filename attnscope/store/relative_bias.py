"""``@effective`` matrices in query/key form: the probabilities (recomputed from the
stored queries and keys) plus a relative bias added after the softmax that depends only
on the offset ``query - key`` (ConvTranPlus's eRPE, ``Attention_Rel_Scl``), kept as
one vector per head, ``(head, 2 * key - 1)``, and expanded on read.

A bias that differs between samples, or is not a function of the offset alone, is not
kept this way: the entry is then stored as probabilities, with the store's note.

Example:
    >>> vec = toeplitz(post)          # post: (batch, head, L, L) = effective - probs
    >>> expand(vec, [0, 3], None)     # (2, L, L) for heads 0 and 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import Crc32cCodec

POST = "relative_bias"  # array name inside a qk segment group, and its attribute flag


def toeplitz(post: torch.Tensor, atol: float = 1e-7) -> torch.Tensor | None:
    """``(head, 2L - 1)`` with ``post[b, h, i, j] == vec[h, i - j + L - 1]`` for every
    sample ``b`` (to ``atol``), else None. ``post`` is ``(batch, head, L, L)`` float."""
    if post.ndim != 4 or post.shape[-1] != post.shape[-2] or post.shape[0] == 0:
        return None
    n = post.shape[-1]
    first = post[0].float()
    # offsets i - j from -(L-1) (top right) to L-1 (bottom left)
    vec = torch.cat([first[:, 0, 1:].flip(-1), first[:, :, 0]], dim=-1)  # (head, 2L-1)
    if not torch.allclose(expand_tensor(vec, n), post.float(), rtol=0, atol=atol):
        return None
    return vec.contiguous()


def expand_tensor(vec: torch.Tensor, n: int, queries: Any = None) -> torch.Tensor:
    """``(head, query, key)`` from ``(head, 2n - 1)`` (only ``queries`` rows if given)."""
    rows = torch.arange(n) if queries is None else torch.as_tensor(queries)
    index = rows[:, None] - torch.arange(n)[None, :] + n - 1
    return vec[:, index]


def write(path: Path, vec: torch.Tensor) -> int:
    """Add the bias vectors to the qk segment group at ``path``; bytes written."""
    data = vec.detach().to(torch.float32).numpy()
    z = zarr.create_array(store=str(path / POST), shape=data.shape, dtype=data.dtype,
                          chunks=data.shape, compressors=[Crc32cCodec()],  # damage: an error
                          overwrite=True)
    z[...] = data
    group = zarr.open_group(str(path), mode="r+")
    group.attrs[POST] = list(data.shape)
    return sum(f.stat().st_size for f in (path / POST).rglob("*") if f.is_file())


def add(path: Path, attrs: dict[str, Any], out: np.ndarray, heads: list[int],
        queries: Any) -> np.ndarray:
    """``out`` ``(sample, head, query, key)`` plus the stored bias, when the segment has
    one (an ``@effective`` entry); unchanged otherwise."""
    if not attrs.get(POST):
        return out
    vec = torch.from_numpy(np.asarray(zarr.open_array(str(path / POST), mode="r")[...]))
    bias = expand_tensor(vec[heads], out.shape[-1], queries).numpy()
    return out + bias[None]
