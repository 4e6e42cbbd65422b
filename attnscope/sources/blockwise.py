"""Blocks of maps to analyse, read one bounded piece at a time from any source, so
memory stays flat however large a store is.

A block is some samples and heads of one entry (module call) in one step, cropped to
the true ``(query, key)`` size of those samples (the store pads mixed lengths with NaN).
When the step's labels differ per sample (``sample_tokens`` ...), each block holds one
sample, so its tokens are that sample's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording
from attnscope.sources.base import as_source, is_store, to_numpy
from attnscope.sources.index import positions
from attnscope.sources.labels import has_sample_labels, resolve, sample_labels

# elements of float32 weights per block (16 MB); metrics need a few temporaries of this
BUDGET = 4 * 1024 * 1024
TOKEN_KEYS = ("tokens",)  # blocks carry tokens for token metrics, not time steps/classes


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


def _chunks(n: int, heads: int, per_head: int, budget: int, one_sample: bool
            ) -> Iterator[tuple[slice, slice]]:
    """(sample slice, head slice) pieces of at most ``budget`` elements (one head of
    one sample at least)."""
    if heads * per_head <= budget:
        step = 1 if one_sample else max(1, budget // (heads * per_head))
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
    for name in (list(modules) if modules else list(store.modules)):
        info = store.module_info(name)
        for step in (list(steps) if steps else store.steps):
            segs = store.segments(name, step)
            if not segs:
                continue
            total = sum(s.shape[0] for s in segs)
            wanted = np.unique(positions(samples, total, "sample", f"step {step!r}"))
            labels = store.labels(step)
            per_sample = has_sample_labels(labels)
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
                for ss, hs in _chunks(len(pos), h, qmax * kmax, budget, per_sample):
                    idx, heads = pos[ss], np.arange(h)[hs]
                    w = store.read(name, step=step, samples=idx, heads=heads)[..., :q, :k]
                    found = resolve(sample_labels(labels, int(idx[0]), total), q, k,
                                    module=name, kind=info["kind"], weights=w,
                                    generic=TOKEN_KEYS)
                    yield Block(name, step, info["kind"], idx, heads, w, found.query,
                                found.key, all_heads=len(heads) == h)


def _graph_blocks(store: Any, name: str, step: str, info: dict, pos: np.ndarray
                  ) -> Iterator[Block]:
    for i in pos:
        w = store.read(name, step=step, samples=[int(i)])
        edges = store.edge_index(name, step=step, sample=int(i))
        w = w[..., : edges.shape[1], :]
        yield Block(name, step, info["kind"], np.array([i]), np.arange(w.shape[-1]), w,
                    graph=True, edge_index=edges)


def recording_blocks(rec: Recording, modules: Sequence[str] | None = None,
                     tokens: Sequence[str] | None = None) -> Iterator[Block]:
    """One block per map of a recording; samples are counted per entry across calls."""
    seen: dict[str, int] = {}
    for m in rec.maps:
        name = m.entry
        if modules and name not in modules and m.module not in modules:
            continue
        w = to_numpy(m.weights)
        n = w.shape[0] if not m.is_graph or w.ndim > 2 else 1
        first = seen.get(name, 0)
        seen[name] = first + n
        samples = np.arange(first, first + n)
        if m.is_graph:
            w = w if w.ndim > 2 else w[None]
            yield Block(name, "", m.kind, samples, np.arange(w.shape[-1]), w, graph=True,
                        edge_index=m.edge_index.numpy())
            continue
        yield _dense_block(name, "", m.kind, samples, w, tokens)


def _dense_block(name: str, step: str, kind: str, samples: np.ndarray, w: np.ndarray,
                 tokens: Sequence[str] | None) -> Block:
    q, k = w.shape[2:]
    found = resolve({}, q, k, module=name, kind=kind, weights=w, generic=TOKEN_KEYS,
                    given={"tokens": None if tokens is None else list(tokens)})
    return Block(name, step, kind, samples, np.arange(w.shape[1]), w, found.query, found.key)


def blocks(source: Any, modules: Sequence[str] | None = None,
           steps: Sequence[str] | None = None, samples: Any = None,
           tokens: Sequence[str] | None = None, budget: int = BUDGET) -> Iterator[Block]:
    """Blocks of a store (or its path), a :class:`~attnscope.Recording`, an
    ``AttentionMap``, a ``{name: array}`` mapping or one ``(sample, head, query, key)``
    array. ``tokens`` labels recordings and arrays (stores carry their own labels)."""
    source = as_source(source)
    if is_store(source):
        yield from store_blocks(source, modules, steps, samples, budget)
    elif isinstance(source, Recording):
        yield from recording_blocks(source, modules, tokens)
    elif isinstance(source, Mapping):
        for name, a in source.items():
            if not modules or name in modules:
                yield array_block(name, a, tokens)
    else:
        yield array_block("map", source, tokens)


def array_block(name: str, a: Any, tokens: Sequence[str] | None = None) -> Block:
    """One array ``(query, key)`` ... ``(sample, head, query, key)`` as a block."""
    if isinstance(a, AttentionMap):
        return next(recording_blocks(as_source(a), None, tokens))
    w = to_numpy(a)
    if w.ndim < 2 or w.ndim > 4:
        raise SelectionError(f"{name!r}: expected (query, key), (head, query, key) or "
                             f"(sample, head, query, key) weights, got shape {w.shape}")
    w = w.reshape((1,) * (4 - w.ndim) + w.shape)
    kind = "self" if w.shape[2] == w.shape[3] else "cross"
    return _dense_block(name, "", kind, np.arange(w.shape[0]), w, tokens)
