"""Head scores of a long generation straight from its queries and keys.

A stitched q/k layer (:mod:`attnscope.generation.qk_steps`) holds ``O(L * dim)``; its
probabilities would be ``heads * L * L`` (at 8k tokens, 32 layers x 32 heads: ~270 GB
in float32). The metrics ``attnscope stats`` reports are all sums along rows, so they
are computed here one head and one block of query rows at a time: each block's
probabilities come from :func:`attnscope.kernels.qk_probabilities` (the function every
q/k read uses), so memory is ``O(block * L)`` and the numbers equal
:func:`attnscope.analysis.map_metrics` on the materialised map (tested to 1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from attnscope.analysis.metrics import METRICS, SPECIAL, entropy_rows, keys90_rows
from attnscope.generation.qk_steps import is_qk
from attnscope.kernels import BLOCK_ELEMENTS, QkInputs, qk_probabilities
from attnscope.options import LONG_MAP

LONG = LONG_MAP  # above this many tokens a q/k layer's probabilities are never all held


def row_blocks(inp: QkInputs, head: int, budget: int = BLOCK_ELEMENTS
               ) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first row, probabilities (rows, L) float32)`` of one head of sample 0, a block
    of at most ``budget`` cells at a time."""
    length = inp.query.shape[2]
    step = max(1, budget // max(1, inp.key.shape[2]))
    for a in range(0, length, step):
        b = min(length, a + step)
        yield a, qk_probabilities(inp, [0], [head], slice(a, b))[0, 0]


class _Tokens:
    """Token masks of a causal self-attention, one block of rows at a time."""

    def __init__(self, tokens: Sequence[str] | None, length: int) -> None:
        self.codes = None
        self.special = None
        if tokens is not None and len(tokens) == length:
            self.codes = np.unique(np.asarray(list(tokens), dtype=object).astype(str),
                                   return_inverse=True)[1].reshape(-1)
            self.special = np.array([bool(SPECIAL.match(str(t))) for t in tokens])

    def masks(self, a: int, b: int) -> dict[str, np.ndarray]:
        if self.codes is None:
            return {}
        n = len(self.codes)
        rows = np.arange(a, b)[:, None]
        same = self.codes[a:b, None] == self.codes[None, :]
        before = np.arange(n)[None, :] < rows
        ind = np.zeros((b - a, n), dtype=bool)
        ind[:, 1:] = same[:, :-1] & before[:, 1:]  # an earlier key after a copy of the query
        return {"dup_token": same & before, "induction": ind}


def head_metrics(inp: QkInputs, head: int, tokens: Sequence[str] | None = None,
                 metrics: Sequence[str] = METRICS, budget: int = BLOCK_ELEMENTS
                 ) -> dict[str, float]:
    """Every metric of :data:`attnscope.analysis.METRICS` of one head of a causal q/k
    segment, as ``map_metrics`` gives it on the materialised map (NaN where it has none)."""
    want = set(metrics)
    n = inp.query.shape[2]
    tok = _Tokens(tokens, n)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    lo, hi = math.inf, -math.inf

    def add(name: str, values: np.ndarray, rows: np.ndarray | None = None) -> None:
        if rows is not None:
            values = values[rows]
        sums[name] = sums.get(name, 0.0) + float(values.sum(dtype=np.float64))
        counts[name] = counts.get(name, 0) + len(values)

    keys = np.arange(n)
    for a, p in row_blocks(inp, head, budget):
        z = p.numpy()
        b = a + z.shape[0]
        idx = np.arange(a, b)
        lo = min(lo, float(z.min()))  # the causal future's cells are zeros of the map
        hi = max(hi, float(z.max()))
        add("mean", z.sum(-1, dtype=np.float64))
        if want & {"entropy", "norm_entropy"}:
            # allowed keys: the non-zero cells (the materialised map marks every exact
            # zero, the causal future included, as masked)
            ent, norm, support = entropy_rows(z, z > 0)
            add("entropy", ent)
            add("norm_entropy", norm, support > 1)
        if "peak" in want:
            add("peak", z.max(-1))
        if "keys90" in want:
            add("keys90", keys90_rows(z))
        if "distance" in want:
            dist = np.abs(idx[:, None] - keys[None, :]).astype(np.float32)
            add("distance", (z * dist).sum(-1))
        if "diagonal" in want:
            add("diagonal", z[np.arange(b - a), idx])
        if "prev_token" in want and n > 1:
            later = idx >= 1
            add("prev_token", z[np.arange(b - a)[later], idx[later] - 1])
        if "first" in want:
            add("first", z[:, 0])
        if "special" in want and tok.special is not None and tok.special.any():
            add("special", (z * tok.special[None, :]).sum(-1))
        for name, m in tok.masks(a, b).items():
            has = m.any(-1)
            if name in want and has.any():
                add(name, (z * m).sum(-1), has)
    out = {name: sums[name] / counts[name] if counts.get(name) else math.nan
           for name in METRICS}
    out["min"], out["max"] = lo, hi
    out["mean"] = sums["mean"] / (n * n)
    return {name: out[name] for name in metrics}


def layer_metrics(inp: QkInputs, tokens: Sequence[str] | None = None,
                  metrics: Sequence[str] = METRICS) -> list[dict[str, float]]:
    """:func:`head_metrics` of every head of a layer (its kept heads, in order)."""
    return [head_metrics(inp, h, tokens, metrics) for h in range(inp.query.shape[1])]


def block_factor(length: int, side: int = 512) -> int:
    """Tokens per block side so that a map of ``length`` tokens is at most ``side`` blocks."""
    return max(1, math.ceil(length / side))


def block_means(inp: QkInputs, factor: int, budget: int = BLOCK_ELEMENTS) -> np.ndarray:
    """``(head, R, R)`` float32, ``R = ceil(L / factor)``: each head's mean probability
    over the visible (causal) cells of each ``factor x factor`` block of tokens, NaN for
    a block with none; the figure of a long generation, from q/k in ``O(block * L)``."""
    heads, n = inp.query.shape[1], inp.query.shape[2]
    side = math.ceil(n / factor)
    pad = side * factor - n
    rows = max(factor, (max(1, budget // max(1, n)) // factor) * factor)
    out = np.full((heads, side, side), np.nan, dtype=np.float32)
    keys = torch.arange(side * factor)
    for h in range(heads):
        for a in range(0, n, rows):
            b = min(n, a + rows)
            p = qk_probabilities(inp, [0], [h], slice(a, b))[0, 0]
            vis = keys[None, :] <= torch.arange(a, b)[:, None]
            p = torch.nn.functional.pad(p, (0, pad, 0, 0))
            r = math.ceil((b - a) / factor)
            extra = r * factor - (b - a)
            p = torch.nn.functional.pad(p, (0, 0, 0, extra))
            vis = torch.nn.functional.pad(vis, (0, 0, 0, extra))
            shape = (r, factor, side, factor)
            total = p.reshape(shape).sum((1, 3), dtype=torch.float64)
            count = vis.reshape(shape).sum((1, 3))
            mean = (total / count.clamp(min=1)).masked_fill(count == 0, math.nan)
            out[h, a // factor:a // factor + r] = mean.float().numpy()
    return out


def stat_rows(maps: dict, tokens: Sequence[str] | None) -> list[dict]:
    """One row per (layer, head) with every metric, in layer order, as ``head_stats``
    writes them (module, step, sample, head, map, metrics): q/k layers blockwise
    (:func:`head_metrics`), layers kept as probabilities through ``head_stats``."""
    from attnscope.analysis import head_stats
    from attnscope.maps import Recording

    rows: list[dict] = []
    for name, m in maps.items():
        if is_qk(m):
            rows += [{"module": name, "step": "", "sample": 0, "head": h,
                      "map": "probability", "samples": 1, **values,
                      "nearest_head": "", "nearest_js": math.nan}
                     for h, values in enumerate(layer_metrics(m.qk, tokens))]
            continue
        rec = Recording()
        rec.maps = [m]
        report = head_stats(rec, tokens=tokens, similarity=False)
        rows += [{**r, "module": name, "sample": 0} for r in report.rows]
    return rows
