"""What goes into a viewer page, decided from shapes alone, before any weight is read.

A page holds one *entry* per (module, step, sample). The selection (modules, steps,
samples, heads) is resolved here and the embedded size estimated, so a page that would
be too large is refused with the options that fit, without reading the data first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope import sources
from attnscope.errors import AttnscopeError, SelectionError
from attnscope.maps import Recording
from attnscope.viewer import _long

# base64 (4/3) over float16 cells (2 bytes), with the coarse levels and thumbnails on top
BYTES_PER_CELL = 2 * 4 / 3 * 1.1
DEFAULT_LIMIT_MB = 256.0


class ViewTooLargeError(AttnscopeError):
    """The selection would make a page larger than the limit; the message lists ones that fit."""


@dataclass
class Entry:
    """One (module, step, sample) map to embed, with its shape but not its weights."""

    module: str
    step: str | None
    sample: int
    graph: bool
    num_heads: int
    shape: tuple[int, ...]  # dense: (query, key); graph: (..., edge)
    qk_dim: int = 0  # > 0: shown from stored queries and keys (``_long``)

    def cells(self, heads: int) -> int:
        """Embedded values: the selected heads plus the head mean."""
        if self.qk_dim:  # queries, keys and coarse levels per head, no mean
            return heads * _long.embedded_cells(*self.shape, self.qk_dim)
        extra = heads + 1 if heads > 1 else heads
        size = int(np.prod(self.shape)) * extra
        return size + (2 * self.shape[-1] if self.graph else 0)  # edge_index as int32


def _store_entries(store: Any, names: list[str], steps: Any, samples: Sequence[int]
                   ) -> list[Entry]:
    out = []
    for step in sources.pick_steps(list(store.steps), steps):
        for name in names:
            if not store.segments(name, step):
                continue
            info = store.module_info(name, step)
            lengths = store.lengths(name, step)
            for s in sources.positions(samples, len(lengths), "sample",
                                       f"{name!r} in step {step!r}"):
                shape = tuple(int(v) for v in lengths[s])
                graph = bool(info.get("graph"))
                out.append(Entry(name, step, int(s), graph, int(info.get("num_heads") or 1),
                                 shape, 0 if graph else _long.qk_dim(store, name, step, s,
                                                                     shape)))
    return out


def _recording_entries(rec: Recording, names: list[str], samples: Sequence[int]) -> list[Entry]:
    out = []
    for name in names:
        rows = sources.map_rows(sources.recording_maps(rec, name)[1])
        for s in sources.positions(samples, len(rows), "sample", repr(name)):
            m, _ = rows[s]
            lead = 1 if m.weights.dim() > 2 else 0  # graph: (batch, ..., edge, head)
            shape = tuple(m.weights.shape[lead:-1]) if m.is_graph else tuple(m.weights.shape[2:4])
            out.append(Entry(name, None, int(s), m.is_graph, m.num_heads, shape))
    return out


def _array_entries(arr: Any, name: str, samples: Sequence[int]) -> list[Entry]:
    shape = tuple(arr.shape) if hasattr(arr, "shape") else tuple(sources.to_numpy(arr).shape)
    shape = {1: (1, 1, 1, *shape), 2: (1, 1, *shape), 3: (1, *shape)}.get(len(shape), shape)
    if len(shape) != 4:
        raise SelectionError(f"expected (key,), (query, key), (head, query, key) or "
                             f"(batch, head, query, key), got shape {shape}")
    return [Entry(name, None, int(s), False, shape[1], shape[2:])
            for s in sources.positions(samples, shape[0], "sample", "the array")]


def select(source: Any, modules: Any = None, steps: Any = None,
           samples: Sequence[int] | int = (0,)) -> list[Entry]:
    """Entries in display order (step, then module, then sample)."""
    samples = sources.as_list(samples)
    names = sources.pick_names(sources.names(source) or [""], modules)
    if sources.is_store(source):
        entries = _store_entries(source, names, steps, samples)
    elif isinstance(source, Recording):
        entries = _recording_entries(source, names, samples)
    elif isinstance(source, Mapping):
        entries = [e for n in names for e in _array_entries(source[n], n, samples)]
    else:
        entries = _array_entries(source, "", samples)
    if not entries:
        raise SelectionError("nothing to show: the selection matches no stored map")
    return entries


def head_count(entry: Entry, heads: Any) -> int:
    return len(sources.head_positions(heads, entry.num_heads))


def estimate_bytes(entries: Sequence[Entry], heads: Any = None) -> int:
    """Upper bound of the embedded data (before compression, which only shrinks it)."""
    return int(sum(e.cells(head_count(e, heads)) for e in entries) * BYTES_PER_CELL)


def check_size(entries: list[Entry], heads: Any, limit_mb: float) -> int:
    """The estimate in bytes, or :class:`ViewTooLargeError` naming selections that fit."""
    size = estimate_bytes(entries, heads)
    if size <= limit_mb * 1e6:
        return size
    mods = list(dict.fromkeys(e.module for e in entries))
    steps = list(dict.fromkeys(e.step for e in entries))
    samples = list(dict.fromkeys(e.sample for e in entries))
    options: list[tuple[str, int]] = []
    if len(steps) > 1:
        options.append((f"steps=['{steps[-1]}']",
                        estimate_bytes([e for e in entries if e.step == steps[-1]], heads)))
    if len(samples) > 1:
        options.append(("samples=[0]", estimate_bytes(
            [e for e in entries if e.sample == samples[0]], heads)))
    if max(e.num_heads for e in entries) > 1:
        options.append(("heads=[0]", estimate_bytes(entries, [0])))
    one = [e for e in entries if e.step == steps[-1] and e.sample == samples[0]]
    fit = [m for m in mods if estimate_bytes([e for e in one if e.module == m], heads)
           <= limit_mb * 1e6]
    if len(mods) > 1 and fit:
        options.append((f"modules=['{fit[-1]}'] steps=['{steps[-1]}'] samples=[{samples[0]}]",
                        estimate_bytes([e for e in one if e.module == fit[-1]], heads)))
    fits = [f"{o} (~{mb(b)})" for o, b in options if b <= limit_mb * 1e6]
    hint = ("; these fit: " + ", ".join(fits)) if fits else "; no single option fits"
    raise ViewTooLargeError(
        f"the page would embed ~{mb(size)} ({len(entries)} maps, {len(mods)} modules x "
        f"{len(steps)} steps x {len(samples)} samples), over the {mb(limit_mb * 1e6)} "
        f"limit{hint}; or raise max_mb")


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.3g} MB"


def estimate_page(source: Any, modules: Any = None, steps: Any = None,
                  samples: Sequence[int] | int = (0,), heads: Any = None) -> tuple[int, int]:
    """``(maps, bytes)`` a page of this selection would embed, from shapes alone: what
    ``attnscope view`` prints before it reads anything."""
    entries = select(sources.as_source(source), modules, steps, samples)
    return len(entries), estimate_bytes(entries, heads)
