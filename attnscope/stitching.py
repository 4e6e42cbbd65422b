"""Put back together the maps of a module that runs once per step.

A decoder generating token by token calls each attention module once per generated
token, so a capture holds ``T`` small maps per module (``name``, ``name[1]`` ... in a
store). A hierarchical model that loops over epochs and channels calls its temporal
attention once per (epoch, channel). :func:`stitch` turns such per-call maps back into
the structure the model computed:

* ``along="query"``: decode steps become one ``(batch, head, target, key)`` map: the
  rows each step added, one after another; cells a step never had (keys not generated
  yet: the causal future) are NaN, the project-wide sign of "no such cell" (the store
  reader pads the same way and the plots hatch NaN cells), never a 0;
* ``along="call"``: the calls are stacked into a new axis, optionally shaped into a
  ``grid`` such as ``(epoch, channel)``: ``(batch, *grid, head, query, key)``.

Left out on purpose: graph maps (their edge sets differ per call; read them one by one),
and sliding-window caches that drop early keys (keys are aligned at position 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording

ALONG = ("query", "call")
ROWS = ("auto", "append", "recompute")
STEPS = ("auto", "call", "forward")
_ENTRY = re.compile(r"^(?P<base>.*?)(?:\[(?P<call>\d+)\])?$")


def stitch(source: Any, module: str | None = None, *, along: str = "query",
           rows: str = "auto", steps: str = "auto", grid: Sequence[int] | None = None,
           step: str | None = None) -> Any:
    """One map per module from the maps of its per-step (or per-item) calls.

    Example:
        >>> with attnscope.capture(model) as rec:
        ...     tokens = greedy_decode(model, src)          # one decoder call per token
        >>> cross = attnscope.stitch(rec, "decoder.layers.1.cross_attn")
        >>> cross.weights.shape                             # (batch, head, target, source)
        >>> temporal = attnscope.stitch(rec, "temporal_attn", along="call", grid=(6, 3))
        >>> temporal.shape                                  # (batch, 6, 3, head, 1, time)

    Args:
        source: a ``Recording``, an iterable of ``AttentionMap``, or a store (its entries
            ``module``, ``module[1]``, ... of ``step`` are the calls).
        module: the module to stitch; ``None`` stitches every module and returns
            ``{module: result}``.
        along: ``"query"`` (decode steps -> one map whose rows are the steps' rows) or
            ``"call"`` (calls stacked into a new axis).
        rows: for ``along="query"``: ``"append"`` (cached decoding: each step adds its
            query rows after the earlier ones), ``"recompute"`` (each step recomputes the
            whole prefix: step ``s`` adds its rows past the previous step's; its earlier
            rows repeat what earlier steps saw), or ``"auto"``: recompute when the
            query count grows at every step, else append.
        steps: what a step is in a Recording: ``"call"`` (calls of the module inside one
            model call; separate model calls are batches, concatenated on the batch
            axis), ``"forward"`` (each model call is one step, as in Hugging Face
            ``generate``), or ``"auto"``: forward when every model call ran the module
            once, else call.
        grid: for ``along="call"``: the shape of the call axis, e.g. ``(epochs,
            channels)`` for calls made in ``for e: for c:`` order.
        step: the store step to read (default: the only one).

    Returns:
        ``along="query"``: an ``AttentionMap`` ``(batch, head, query, key)`` (call
        index 0, metadata of the first call); ``along="call"``: a tensor ``(batch,
        call..., head, query, key)``, NaN-padded where calls differ in size. With
        ``module=None``, a dict of those per module.

    Raises:
        SelectionError: unknown module or option, graph maps, or calls whose batch or
            head counts differ (they are not steps of one computation).
    """
    if along not in ALONG or rows not in ROWS or steps not in STEPS:
        raise SelectionError(f"stitch(along={along!r}, rows={rows!r}, steps={steps!r}): "
                             f"along is one of {ALONG}, rows of {ROWS}, steps of {STEPS}")
    if along != "call" and grid is not None:
        raise SelectionError("grid= shapes the call axis; pass it with along='call'")
    groups = _groups(source, step, steps)
    if module is not None:
        if module not in groups:
            raise SelectionError(f"no maps of module {module!r} to stitch; modules: "
                                 f"{', '.join(list(groups)[:8])}")
        return _one(module, groups[module], along, rows, grid)
    return {name: _one(name, parts, along, rows, grid) for name, parts in groups.items()}


# a group: per batch (model call), the module's maps in step order
Group = list[list[AttentionMap]]


def _one(name: str, group: Group, along: str, rows: str, grid: Sequence[int] | None) -> Any:
    if any(m.is_graph for batch in group for m in batch):
        raise SelectionError(f"{name!r} holds graph maps; stitch works on dense maps")
    counts = {len(batch) for batch in group}
    if len(counts) > 1:
        raise SelectionError(f"{name!r} ran {sorted(counts)} times in different model "
                             "calls; stitch one model call (or one example) at a time")
    if along == "call":
        return torch.cat([_stack_calls(name, batch, grid) for batch in group], dim=0)
    weights = torch.cat([_stitch_rows(name, batch, rows) for batch in group], dim=0)
    first = group[0][0]
    return AttentionMap(module=first.module, kind=first.kind, weights=weights,
                        forward_index=first.forward_index, call_index=0, source=first.source,
                        heads=first.heads, samples=first.samples, reduced=first.reduced)


def _check_same(name: str, parts: list[torch.Tensor]) -> None:
    lead = {tuple(p.shape[:2]) for p in parts}
    if len(lead) > 1:
        raise SelectionError(f"{name!r}: calls differ in (batch, head) {sorted(lead)}, so "
                             "they are not steps of one computation")


def _stitch_rows(name: str, maps: list[AttentionMap], rows: str) -> torch.Tensor:
    parts = [m.weights for m in maps]  # each (batch, head, query, key)
    _check_same(name, parts)
    qs = [p.shape[2] for p in parts]
    growing = len(qs) > 1 and all(b > a for a, b in zip(qs, qs[1:]))
    if rows == "auto":
        rows = "recompute" if growing else "append"
    if rows == "recompute" and len(qs) > 1 and not growing:
        raise SelectionError(f"{name!r}: rows='recompute' needs a query count that grows "
                             f"every step; got {qs}")
    total = qs[-1] if rows == "recompute" else sum(qs)
    width = max(p.shape[3] for p in parts)
    dtype = parts[0].dtype if parts[0].is_floating_point() else torch.float32
    out = torch.full((*parts[0].shape[:2], total, width), math.nan, dtype=dtype)
    start = 0
    for p, q in zip(parts, qs):
        k = p.shape[3]
        if rows == "recompute":  # rows before ``start`` repeat what earlier steps saw
            out[:, :, start:q, :k] = p[:, :, start:q].to(dtype)
            start = q
        else:
            out[:, :, start:start + q, :k] = p.to(dtype)
            start += q
    return out


def _stack_calls(name: str, maps: list[AttentionMap], grid: Sequence[int] | None
                 ) -> torch.Tensor:
    parts = [m.weights for m in maps]
    _check_same(name, parts)
    q = max(p.shape[2] for p in parts)
    k = max(p.shape[3] for p in parts)
    b, h = parts[0].shape[:2]
    dtype = parts[0].dtype if parts[0].is_floating_point() else torch.float32
    out = torch.full((b, len(parts), h, q, k), math.nan, dtype=dtype)
    for i, p in enumerate(parts):
        out[:, i, :, : p.shape[2], : p.shape[3]] = p.to(dtype)
    if grid is None:
        return out
    shape = tuple(int(g) for g in grid)
    if math.prod(shape) != len(parts):
        raise SelectionError(f"{name!r} ran {len(parts)} times; grid={shape} holds "
                             f"{math.prod(shape)} calls")
    return out.reshape(b, *shape, h, q, k)


def _groups(source: Any, step: str | None, steps: str) -> dict[str, Group]:
    """``{module: [[maps of model call 0 in step order], [model call 1 ...], ...]}``."""
    from attnscope.sources import is_store

    if is_store(source):
        return _store_groups(source, step)
    maps = source.maps if isinstance(source, Recording) else list(source)
    if not all(isinstance(m, AttentionMap) for m in maps):
        raise SelectionError("stitch needs a Recording, AttentionMaps or a store")
    by_module: dict[str, list[AttentionMap]] = {}
    for m in maps:
        by_module.setdefault(m.module, []).append(m)
    out: dict[str, Group] = {}
    for name, found in by_module.items():
        found.sort(key=lambda m: (m.forward_index, m.call_index))
        forwards: dict[int, list[AttentionMap]] = {}
        for m in found:
            forwards.setdefault(m.forward_index, []).append(m)
        once = all(len(v) == 1 for v in forwards.values())
        if steps == "forward" or (steps == "auto" and once and len(forwards) > 1):
            out[name] = [found]  # every model call is one step of one computation
        else:
            out[name] = list(forwards.values())
    return out


def _store_groups(store: Any, step: str | None) -> dict[str, Group]:
    entries: dict[str, list[tuple[int, str]]] = {}
    for entry in store.modules:
        if entry.endswith("@effective"):
            continue
        found = _ENTRY.match(entry)
        assert found is not None  # the pattern matches every string
        entries.setdefault(found["base"], []).append((int(found["call"] or 0), entry))
    out: dict[str, Group] = {}
    for base, calls in entries.items():
        calls.sort()
        if [c for c, _ in calls] != list(range(len(calls))):
            continue  # an entry whose name merely ends in [n]: not a call series
        maps = []
        for call, entry in calls:
            info = store.module_info(entry, step)
            if info.get("graph"):
                break
            data = _read(store, entry, step)
            maps.append(AttentionMap(module=base, kind=info.get("kind", "self"),
                                     weights=torch.from_numpy(data), call_index=call,
                                     source=info.get("source", ""), heads=info.get("heads"),
                                     reduced=info.get("reduced")))
        else:
            out[base] = [maps]
    return out


def _read(store: Any, entry: str, step: str | None) -> np.ndarray:
    return np.ascontiguousarray(store.read(entry, step=step), dtype=np.float32)

