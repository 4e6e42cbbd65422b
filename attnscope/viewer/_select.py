"""What goes into a viewer page, decided from shapes alone, before any weight is read.

A page holds one *entry* per (module, step, sample). The selection (modules, steps,
samples, heads) is resolved here and the embedded size estimated, so a page that would
be too large is refused with the options that fit, without reading the data first.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.errors import AttnscopeError, SelectionError
from attnscope.maps import AttentionMap, Recording
from attnscope.plot._source import _recording_maps, head_positions, is_store, to_numpy

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

    def cells(self, heads: int) -> int:
        """Embedded values: the selected heads plus the head mean."""
        extra = heads + 1 if heads > 1 else heads
        size = int(np.prod(self.shape)) * extra
        return size + (2 * self.shape[-1] if self.graph else 0)  # edge_index as int32


def _names(source: Any) -> list[str]:
    if isinstance(source, Recording):
        return list(dict.fromkeys(m.entry for m in source.maps))
    if is_store(source):
        return list(source.modules)
    if isinstance(source, Mapping):
        return list(source)
    return [""]


def pick_modules(names: list[str], modules: str | Sequence[str | int] | None) -> list[str]:
    """A glob, a list of names or positions, or None (all)."""
    if modules is None:
        return names
    if isinstance(modules, str) and modules not in names:
        chosen = [n for n in names if fnmatch.fnmatchcase(n, modules)]
        if not chosen:
            raise SelectionError(f"no module matches {modules!r}; available: "
                                 + ", ".join(names[:12]) + (" ..." if len(names) > 12 else ""))
        return chosen
    items = [modules] if isinstance(modules, (str, int)) else list(modules)
    out = []
    for m in items:
        if isinstance(m, int) or (isinstance(m, str) and m.lstrip("-").isdigit()):
            i = int(m)
            if not -len(names) <= i < len(names):
                raise SelectionError(f"module index {i} out of range ({len(names)} modules)")
            out.append(names[i])
        elif m in names:
            out.append(m)
        else:
            raise SelectionError(f"no module {m!r}; available: " + ", ".join(names[:12]))
    return out


def _pick_steps(have: list[str], steps: str | Sequence[str] | None) -> list[str]:
    if steps is None:
        return have
    wanted = [steps] if isinstance(steps, str) else list(steps)
    if wanted == ["last"]:
        return have[-1:]
    missing = [s for s in wanted if s not in have]
    if missing:
        raise SelectionError(f"no step {missing[0]!r}; steps: " + ", ".join(have[:12]))
    return wanted


def _store_entries(store: Any, names: list[str], steps: Any, samples: Sequence[int]
                   ) -> list[Entry]:
    out = []
    for step in _pick_steps(list(store.steps), steps):
        for name in names:
            if not store.segments(name, step):
                continue
            info = store.module_info(name, step)
            lengths = store.lengths(name, step)
            for s in samples:
                if not -len(lengths) <= s < len(lengths):
                    raise SelectionError(f"sample {s} out of range: {name!r} has "
                                         f"{len(lengths)} in step {step!r}")
                out.append(Entry(name, step, s % len(lengths), bool(info.get("graph")),
                                 int(info.get("num_heads") or 1),
                                 tuple(int(v) for v in lengths[s])))
    return out


def _recording_entries(rec: Recording, names: list[str], samples: Sequence[int]) -> list[Entry]:
    out = []
    for name in names:
        _, maps = _recording_maps(rec, name)
        rows: list[tuple[AttentionMap, int]] = []
        for m in maps:
            n = m.weights.shape[0] if not m.is_graph or m.weights.dim() > 2 else 1
            rows += [(m, i) for i in range(n)]
        for s in samples:
            if not -len(rows) <= s < len(rows):
                raise SelectionError(f"sample {s} out of range: {name!r} has {len(rows)}")
            m, _ = rows[s]
            lead = 1 if m.weights.dim() > 2 else 0  # graph: (batch, ..., edge, head)
            shape = tuple(m.weights.shape[lead:-1]) if m.is_graph else tuple(m.weights.shape[2:4])
            out.append(Entry(name, None, s % len(rows), m.is_graph, m.num_heads, shape))
    return out


def _array_entries(arr: Any, name: str, samples: Sequence[int]) -> list[Entry]:
    shape = tuple(to_numpy(arr).shape) if not hasattr(arr, "shape") else tuple(arr.shape)
    shape = {1: (1, 1, 1, *shape), 2: (1, 1, *shape), 3: (1, *shape)}.get(len(shape), shape)
    if len(shape) != 4:
        raise SelectionError(f"expected (key,), (query, key), (head, query, key) or "
                             f"(batch, head, query, key), got shape {shape}")
    for s in samples:
        if not -shape[0] <= s < shape[0]:
            raise SelectionError(f"sample {s} out of range: the array has {shape[0]}")
    return [Entry(name, None, s % shape[0], False, shape[1], shape[2:]) for s in samples]


def as_source(source: Any) -> Any:
    """A single AttentionMap becomes a one-map Recording, so one path reads both."""
    if isinstance(source, AttentionMap):
        rec = Recording()
        rec.maps.append(source)
        return rec
    return source


def select(source: Any, modules: Any = None, steps: Any = None,
           samples: Sequence[int] | int = (0,)) -> list[Entry]:
    """Entries in display order (step, then module, then sample)."""
    samples = [samples] if isinstance(samples, int) else list(samples)
    names = pick_modules(_names(source), modules)
    if is_store(source):
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
    return len(head_positions(heads, entry.num_heads))


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
