"""What a source is: a Recording, an AttentionMap, a store (or its path), a
``{name: array}`` mapping, or one array/tensor; and the names each one holds."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.entries import parse_entry
from attnscope.maps import AttentionMap, Recording
from attnscope.sources.index import pick_name

STORE_API = ("read", "modules", "steps", "module_info", "segments")


def is_store(source: Any) -> bool:
    """Whether ``source`` reads like an attnscope store (duck-typed: no zarr import)."""
    return not isinstance(source, (Recording, AttentionMap, Mapping, np.ndarray)) and all(
        hasattr(source, a) for a in STORE_API)


def as_source(source: Any) -> Any:
    """A store path opened as a store, a single AttentionMap as a one-map Recording;
    anything else as it is."""
    if isinstance(source, (str, os.PathLike)):
        from attnscope.store import open_store

        return open_store(source)
    if isinstance(source, AttentionMap):
        rec = Recording()
        rec.maps.append(source)
        return rec
    return source


def to_numpy(x: Any) -> np.ndarray:
    """float32 NumPy of a tensor (any device/dtype) or array-like."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def names(source: Any) -> list[str]:
    """Entry names (``module``, ``module[1]`` ...) in order; ``[]`` for a bare array."""
    if isinstance(source, Recording):
        return list(dict.fromkeys(m.entry for m in source.maps))
    if isinstance(source, AttentionMap):
        return [source.entry]
    if is_store(source):
        return list(source.modules)
    if isinstance(source, Mapping):
        return list(source)
    return []


def recording_maps(rec: Recording, module: str | int | None) -> tuple[str, list[AttentionMap]]:
    """The entry chosen by ``module`` and its maps, one per model call, in order."""
    name = pick_name(names(rec), module)
    base, call, _ = parse_entry(name)
    return name, [m for m in rec.maps if m.module == base and m.call_index == call]


def map_rows(maps: list[AttentionMap]) -> list[tuple[AttentionMap, int]]:
    """(map, row) for every sample of an entry's maps: samples are counted across calls."""
    rows: list[tuple[AttentionMap, int]] = []
    for m in maps:
        n = m.weights.shape[0] if not m.is_graph or m.weights.dim() > 2 else 1
        rows += [(m, i) for i in range(n)]
    return rows


def store_step(store: Any, name: str, step: str | None) -> str:
    """The step to read ``name`` from: the one given, or the only step that has it."""
    steps = [s for s in store.steps if store.segments(name, s)]
    if step is not None or len(steps) != 1:
        return pick_name(steps, step, "step")
    return steps[0]


def step_samples(store: Any) -> dict[str, int]:
    """Per step, the fewest rows any entry holds: the step's number of samples."""
    return {step: min((store.num_samples(m, step) for m in store.modules
                       if store.segments(m, step)), default=0) for step in store.steps}


def rows_per_sample(store: Any, module: str, step: str,
                    samples: dict[str, int] | None = None) -> int:
    """Rows per sample of ``module`` at ``step``: above 1 where epochs or channels were
    folded into the batch axis (the entry holds a whole multiple of the step's samples);
    such rows are items of a sample, not samples."""
    n = (samples or step_samples(store)).get(step, 0)
    rows = store.num_samples(module, step)
    return rows // n if n and rows != n and rows % n == 0 else 1


def row_name(row: int, per_sample: int = 1) -> str:
    """What a user reads for batch row ``row``: ``sample 5``, or with folded rows
    ``row 5 (sample 2, item 1)``."""
    if per_sample <= 1:
        return f"sample {row}"
    return f"row {row} (sample {row // per_sample}, item {row % per_sample})"
