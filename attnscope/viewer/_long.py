"""Long maps from stored queries and keys: the page computes their cells itself.

A 32k-token map has 1e9 cells, far too many to embed. For a store entry in query/key
form (no mask, or sdpa's causal flag only) the page instead gets, per selected head,
the queries and keys (float16), each row's log-sum-exp (float32) and the coarse pyramid
levels up to ``EMBED_MAX`` a side; all are computed here in blocks of rows, never the
whole ``query x key`` matrix. When the user zooms in to one cell per pixel, the page
computes the cells it shows as ``exp(q . k * scale - lse[row])`` (see ``static/long.js``).
The log-sum-exp is taken over the float16-rounded queries and keys the page holds, so
the page's values are the softmax of exactly what it multiplies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from attnscope.viewer._pack import FACTOR, PYRAMID_FROM, TILE, Packer, f16_planes

EMBED_MAX = 2048  # coarse levels up to this side are embedded; finer cells are computed
BLOCK_BYTES = 1 << 27  # float32 scores of one block of rows


def factors(rows: int, cols: int) -> list[int]:
    """Block sizes of the embedded coarse levels (the pyramid of ``_pack``, minus the
    levels too large to embed; the coarsest is always kept)."""
    out, f = [], 1
    while max(math.ceil(rows / f), math.ceil(cols / f)) > PYRAMID_FROM:
        f *= FACTOR
        out.append(f)
    kept = [f for f in out if max(math.ceil(rows / f), math.ceil(cols / f)) <= EMBED_MAX]
    return kept or out[-1:]


def qk_dim(store: Any, module: str, step: str | None, sample: int,
           shape: tuple[int, ...]) -> int:
    """The head dimension where this entry can be shown from its queries and keys (a long
    map in query/key form, no mask, no head mean), else 0."""
    from attnscope.store.forms import qk

    if len(shape) != 2 or max(shape) <= PYRAMID_FROM:
        return 0
    found = store.locate(module, step, sample)
    if found is None or not qk.QK.detect(found[0].path):
        return 0
    a = qk.segment_meta(found[0].path)["attributes"]
    if a.get("reduced") or (a.get("mask") is not None and not _causal_mask(qk, found, a)):
        return 0
    return int(a["q"][0][-1])


def _causal_mask(qk: Any, found: tuple[Any, int], a: dict[str, Any]) -> bool:
    """Whether a stored mask only hides the causal triangle (a model that passes its own
    causal mask instead of sdpa's flag), checked block by block against the triangle."""
    shape, _, kind, values = a["mask"]
    if kind != "bits" or shape[2] == 1:
        return False
    if values is not None:  # two values: bits mark the lower one, which must hide
        lo, hi = (float.fromhex(v) for v in values)
        if hi != 0.0 or lo > -1e4:
            return False
    mask = qk.load(found[0].path, [found[1]], [0]).mask
    if mask is None or mask.dtype != torch.bool:  # float masks: the two values, unpacked
        mask = None if mask is None else mask == 0
    if mask is None or mask.shape[1] != 1:  # one mask for every head
        return False
    m = mask[0, 0]
    keys = torch.arange(m.shape[1])
    for r in range(0, m.shape[0], 1024):
        rows = torch.arange(r, min(r + 1024, m.shape[0]))[:, None]
        if not bool((m[r:r + 1024] == (keys[None, :] <= rows)).all()):
            return False
    return True


def embedded_cells(rows: int, cols: int, dim: int) -> int:
    """float16-sized values one head embeds: queries, keys, lse and the coarse levels."""
    coarse = sum(math.ceil(rows / f) * math.ceil(cols / f) for f in factors(rows, cols))
    return (rows + cols) * dim + 2 * rows + 2 * coarse


def _reduce(p: torch.Tensor, vis: torch.Tensor, f: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block mean and max of visible cells (NaN where a block has none)."""
    r, c = p.shape
    pr, pc = math.ceil(r / f) * f, math.ceil(c / f) * f
    p = torch.nn.functional.pad(p, (0, pc - c, 0, pr - r))
    vis = torch.nn.functional.pad(vis, (0, pc - c, 0, pr - r))
    shape = (pr // f, f, pc // f, f)
    total = p.reshape(shape).sum((1, 3))
    count = vis.reshape(shape).sum((1, 3))
    top = p.masked_fill(~vis, -math.inf).reshape(shape).amax((1, 3))
    empty = count == 0
    mean = (total / count.clamp(min=1)).masked_fill(empty, math.nan)
    return mean, top.masked_fill(empty, math.nan)


def head_levels(q: torch.Tensor, k: torch.Tensor, scale: float, causal: bool
                ) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]], float, float]:
    """``(lse, [(f, mean, max)], vmin, vmax)`` of one head's softmax(q k^T * scale),
    computed in blocks of rows."""
    rows, cols = q.shape[0], k.shape[0]
    fs = factors(rows, cols)
    step = max(fs) * max(1, (BLOCK_BYTES // (4 * cols)) // max(fs))
    lse = torch.empty(rows, dtype=torch.float32)
    parts: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {f: ([], []) for f in fs}
    lo, hi = math.inf, -math.inf
    keys = torch.arange(cols)
    for a in range(0, rows, step):
        b = min(rows, a + step)
        s = (q[a:b] @ k.T) * scale
        vis = (keys[None, :] <= torch.arange(a, b)[:, None]) if causal else \
            torch.ones(b - a, cols, dtype=torch.bool)
        s.masked_fill_(~vis, -math.inf)
        lse[a:b] = torch.logsumexp(s, -1)
        p = torch.exp(s - lse[a:b, None])
        del s
        hi = max(hi, float(p.max()))
        lo = min(lo, float(p.masked_fill(~vis, math.inf).min()))
        for f in fs:
            mean, top = _reduce(p, vis, f)
            parts[f][0].append(mean)
            parts[f][1].append(top)
    levels = [(f, torch.cat(parts[f][0]).numpy(), torch.cat(parts[f][1]).numpy()) for f in fs]
    return lse.numpy(), levels, lo, hi


def _tiles(packer: Packer, m: np.ndarray, hot: bool) -> list[int]:
    return [packer.add(f16_planes(m[y:y + TILE, x:x + TILE]), hot)
            for y in range(0, m.shape[0], TILE) for x in range(0, m.shape[1], TILE)]


def pack_head(packer: Packer, q: torch.Tensor, k: torch.Tensor, scale: float, causal: bool,
              hot: bool = False) -> tuple[dict[str, Any], np.ndarray]:
    """One head's map as the page computes it, and its coarsest block means (for the
    overview thumbnail). ``hot``: the first view shows it (its coarsest level in part 0)."""
    q16, k16 = q.to(torch.float16).float(), k.to(torch.float16).float()
    lse, coarse, lo, hi = head_levels(q16, k16, scale, causal)
    rows, cols = q.shape[0], k.shape[0]
    levels: list[dict[str, Any]] = [{"fy": 1, "fx": 1, "rows": rows, "cols": cols,
                                     "tx": math.ceil(cols / TILE), "mean": None, "max": None,
                                     "qk": True}]
    for f, mean, top in coarse:
        last = f == coarse[-1][0]
        levels.append({"fy": f, "fx": f, "rows": mean.shape[0], "cols": mean.shape[1],
                       "tx": math.ceil(mean.shape[1] / TILE),
                       "mean": _tiles(packer, mean, hot and last),
                       "max": _tiles(packer, top, hot and last)})
    inputs = {"q": packer.add(f16_planes(q16.numpy())), "k": packer.add(f16_planes(k16.numpy())),
              "lse": packer.add(np.ascontiguousarray(lse, dtype="<f4").tobytes()),
              "dim": int(q.shape[1]), "scale": float(scale), "causal": bool(causal)}
    return {"vmax": hi if math.isfinite(hi) else 0.0, "vmin": lo if math.isfinite(lo) else 0.0,
            "levels": levels, "qk": inputs}, coarse[-1][1]


def load_heads(store: Any, module: str, step: str | None, sample: int,
               heads: list[int]) -> Any:
    """The stored queries and keys of ``heads`` of one sample (:class:`QkInputs`)."""
    from attnscope.store.forms import qk

    seg, row = store.locate(module, step, sample)  # type: ignore[misc]
    return qk.load(seg.path, [row], heads)
