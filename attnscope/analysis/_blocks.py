"""Blocks of maps to analyse, read one bounded piece at a time from a store, a
recording, or plain arrays, so memory stays flat however large the store is.

A block is some samples and heads of one entry (module call) in one step, cropped to
the true ``(query, key)`` size of those samples (the store pads mixed lengths with NaN).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.entries import entry_name
from attnscope.errors import AttnscopeError

# elements of float32 weights per block (16 MB); metrics need a few temporaries of this
BUDGET = 4 * 1024 * 1024


class AnalysisError(AttnscopeError, ValueError):
    """An analysis request the data cannot satisfy; the message is one line."""


@dataclass
class Block:
    """``weights`` ``(sample, head, query, key)`` float32 of one entry in one step."""

    module: str
    step: str
    kind: str
    samples: np.ndarray  # positions of these samples within (module, step)
    heads: np.ndarray  # head positions
    weights: np.ndarray
    query_tokens: Sequence[str] | None = None
    key_tokens: Sequence[str] | None = None
    graph: bool = False
    edge_index: np.ndarray | None = None  # graph blocks: (2, edge)
    all_heads: bool = True  # False when one sample was too large to read whole


def is_store(source: Any) -> bool:
    return hasattr(source, "segments") and hasattr(source, "read")


def _tokens(labels: Mapping[str, Any], keys: Sequence[str], n: int) -> Sequence[str] | None:
    for key in keys:
        t = labels.get(key)
        if isinstance(t, (list, tuple)) and len(t) == n and all(isinstance(x, str) for x in t):
            return list(t)
    return None


def _chunks(n: int, heads: int, per_head: int, budget: int
            ) -> Iterator[tuple[slice, slice]]:
    """(sample slice, head slice) pieces of at most ``budget`` elements (one head of
    one sample at least)."""
    if heads * per_head <= budget:
        step = max(1, budget // (heads * per_head))
        for s in range(0, n, step):
            yield slice(s, min(n, s + step)), slice(0, heads)
    else:
        step = max(1, budget // per_head)
        for s in range(n):
            for h in range(0, heads, step):
                yield slice(s, s + 1), slice(h, min(heads, h + step))


def store_blocks(store: Any, modules: Sequence[str] | None = None,
                 steps: Sequence[str] | None = None, samples: Any = None,
                 budget: int = BUDGET) -> Iterator[Block]:
    """Blocks of a store, entry by entry, step by step, batch by batch."""
    names = list(modules) if modules else list(store.modules)
    for name in names:
        info = store.module_info(name)
        for step in (list(steps) if steps else store.steps):
            segs = store.segments(name, step)
            if not segs:
                continue
            total = sum(s.shape[0] for s in segs)
            wanted = _selected(samples, total)
            labels = store.labels(step)
            # store.read pads to the step's largest batch: budget by that size
            qmax, kmax = (max(s.shape[i] for s in segs) for i in (2, 3)) \
                if not info["graph"] else (1, 1)
            start = 0
            for seg in segs:
                pos = wanted[(wanted >= start) & (wanted < start + seg.shape[0])]
                start += seg.shape[0]
                if not len(pos):
                    continue
                if info["graph"]:
                    yield from _graph_blocks(store, name, step, info, pos)
                    continue
                _, h, q, k = seg.shape
                for ss, hs in _chunks(len(pos), h, qmax * kmax, budget):
                    idx, heads = pos[ss], np.arange(h)[hs]
                    w = store.read(name, step=step, samples=idx, heads=heads)[..., :q, :k]
                    yield Block(name, step, info["kind"], idx, heads, w,
                                _tokens(labels, ("target_tokens", "query_tokens", "tokens"), q),
                                _tokens(labels, ("source_tokens", "key_tokens", "tokens"), k),
                                all_heads=len(heads) == h)


def _graph_blocks(store: Any, name: str, step: str, info: dict, pos: np.ndarray
                  ) -> Iterator[Block]:
    for i in pos:
        w = store.read(name, step=step, samples=[int(i)])
        edges = store.edge_index(name, step=step, sample=int(i))
        w = w[..., : edges.shape[1], :]
        yield Block(name, step, info["kind"], np.array([i]), np.arange(w.shape[-1]), w,
                    graph=True, edge_index=edges)


def recording_blocks(rec: Any, modules: Sequence[str] | None = None,
                     tokens: Sequence[str] | None = None) -> Iterator[Block]:
    """One block per map of a recording; samples are counted per entry across calls."""
    seen: dict[str, int] = {}
    for m in rec.maps:
        name = entry_name(m.module, m.call_index)
        if modules and name not in modules and m.module not in modules:
            continue
        w = m.weights.detach().float().numpy()
        n = w.shape[0] if not m.is_graph or w.ndim > 2 else 1
        first = seen.get(name, 0)
        seen[name] = first + n
        samples = np.arange(first, first + n)
        if m.is_graph:
            w = w if w.ndim > 2 else w[None]
            yield Block(name, "", m.kind, samples, np.arange(w.shape[-1]), w, graph=True,
                        edge_index=m.edge_index.numpy())
            continue
        q, k = w.shape[2:]
        yield Block(name, "", m.kind, samples, np.arange(w.shape[1]), w,
                    tokens if tokens is not None and len(tokens) == q else None,
                    tokens if tokens is not None and len(tokens) == k else None)


def blocks(source: Any, modules: Sequence[str] | None = None,
           steps: Sequence[str] | None = None, samples: Any = None,
           tokens: Sequence[str] | None = None, budget: int = BUDGET) -> Iterator[Block]:
    """Blocks of a store, a :class:`~attnscope.Recording`, an ``AttentionMap``, a
    ``{name: array}`` mapping or one ``(sample, head, query, key)`` array."""
    if is_store(source):
        yield from store_blocks(source, modules, steps, samples, budget)
    elif hasattr(source, "maps"):
        yield from recording_blocks(source, modules, tokens)
    elif hasattr(source, "weights") and hasattr(source, "module"):
        yield from recording_blocks(type("R", (), {"maps": [source]})(), modules, tokens)
    elif isinstance(source, Mapping):
        for name, a in source.items():
            if not modules or name in modules:
                yield _array_block(name, a, tokens)
    else:
        yield _array_block("map", source, tokens)


def _array_block(name: str, a: Any, tokens: Sequence[str] | None) -> Block:
    w = np.asarray(a.detach().cpu().float() if hasattr(a, "detach") else a, dtype=np.float32)
    if w.ndim < 2 or w.ndim > 4:
        raise AnalysisError(f"{name!r}: expected (query, key), (head, query, key) or "
                            f"(sample, head, query, key) weights, got shape {w.shape}")
    w = w.reshape((1,) * (4 - w.ndim) + w.shape)
    q, k = w.shape[2:]
    kind = "self" if q == k else "cross"
    return Block(name, "", kind, np.arange(w.shape[0]), np.arange(w.shape[1]), w,
                 tokens if tokens is not None and len(tokens) == q else None,
                 tokens if tokens is not None and len(tokens) == k else None)


def _selected(samples: Any, total: int) -> np.ndarray:
    if samples is None:
        return np.arange(total)
    if isinstance(samples, slice):
        return np.arange(total)[samples]
    idx = np.atleast_1d(np.asarray(samples, dtype=np.int64))
    idx = np.where(idx < 0, idx + total, idx)
    bad = idx[(idx < 0) | (idx >= total)]
    if len(bad):
        raise AnalysisError(f"sample {int(bad[0])} out of range: the step has {total} samples")
    return np.unique(idx)
