"""Join steps written by several processes (one per rank of a multi-GPU run) into one
step, streaming: one run of samples at a time is read from its source segment and
written again in the same form, so memory stays near ``budget`` bytes whatever the
size of the step, and a query/key step stays query/key.

Samples come out in dataset order when each part names its samples (the
``sample_ids`` label, as the Lightning callback writes it); a sample that several parts
hold (DistributedSampler repeats some to even out the ranks) is kept once. Parts
without ids follow in part order. The merged step replaces ``step`` atomically when it
is complete (``if_exists="overwrite"``); the parts are deleted afterwards.

Example:
    >>> merge_steps("runs/attn", "epoch_003", ["epoch_003.rank0", "epoch_003.rank1"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from attnscope.store.reader import Store
from attnscope.store.segment import Segment
from attnscope.store.steps import delete_step
from attnscope.store.writer import StoreWriter

BUDGET = 64 << 20  # bytes of decoded weights (or inputs) read at once


def merge_steps(root: str | os.PathLike, step: str, parts: list[str], *,
                budget: int = BUDGET, delete_parts: bool = True) -> None:
    """Write the samples of ``parts`` (steps of the store at ``root``) as ``step``."""
    root = Path(root)
    store = Store(root)
    parts = [p for p in parts if p in store.steps]
    if not parts:
        return
    ids = [store.labels(p).get("sample_ids") for p in parts]
    labels = {k: v for k, v in store.labels(parts[0]).items() if k != "sample_ids"}
    labels["sample_ids"] = sorted({int(i) for part in ids for i in part or []})
    first = store.meta["steps"][parts[0]]
    writer = StoreWriter(root, step, model=None, dtype=first.get("dtype", "float16"),
                         expected_samples=None, labels=labels,
                         keepbits=first.get("keepbits"), if_exists="overwrite", durable=True)
    with writer:
        for name in store.modules:
            _merge_entry(store, writer, name, parts, ids, budget)
    if delete_parts:
        for part in parts:
            delete_step(root, part)


def _merge_entry(store: Store, writer: StoreWriter, name: str, parts: list[str],
                 ids: list[Any], budget: int) -> None:
    """Stream one entry: runs of consecutive output samples that sit in segments of one
    kind (:meth:`SegmentForm.key`) become one output segment of at most ``budget``."""
    where: list[tuple[Segment, int]] = []  # (segment, row) of every part sample, in order
    order: list[int | None] = []
    step_of = {}
    for part, part_ids in zip(parts, ids, strict=True):
        segs = store.checked(name, part)
        rows = [(seg, r) for seg in segs for r in range(seg.shape[0])]
        for seg in segs:
            step_of[id(seg)] = part
        where += rows
        known = part_ids is not None and len(part_ids) == len(rows)
        order += [int(i) for i in part_ids] if known else [None] * len(rows)
    if not where:
        return
    info = store.module_info(name, step=step_of[id(where[0][0])])
    run: list[tuple[Segment, list[int]]] = []
    run_key, run_bytes = None, 0
    sizes: dict[int, int] = {}
    for pos in first_occurrence_in_order(order):
        seg, row = where[pos]
        key = seg.form.key(seg.meta())
        size = sizes.get(id(seg)) or sizes.setdefault(id(seg), _row_bytes(seg))
        joinable = bool(run) and (run[-1][0] is seg or (key is not None and key == run_key))
        if run and (not joinable or run_bytes + size > budget):
            _write_run(writer, name, info, run)
            run, run_bytes = [], 0
        if run and run[-1][0] is seg:
            run[-1][1].append(row)
        else:
            run.append((seg, [row]))
        run_key, run_bytes = key, run_bytes + size
    if run:
        _write_run(writer, name, info, run)


def _write_run(writer: StoreWriter, name: str, info: dict[str, Any],
               run: list[tuple[Segment, list[int]]]) -> None:
    form = run[0][0].form
    taken = [form.take(seg.path, rows, seg.meta(), info) for seg, rows in run]
    m = form.join(taken)
    writer.write_entry(name, m, m.weights)
    writer.commit()


def _row_bytes(seg: Segment) -> int:
    """Decoded bytes of one sample of ``seg``, estimated from its files (float32 reads
    of compressed float16 take about four times the bytes on disk)."""
    on_disk = sum(f.stat().st_size for f in seg.path.rglob("*") if f.is_file())
    return max(1, 4 * on_disk // max(1, seg.shape[0]))


def first_occurrence_in_order(ids: list[int | None]) -> list[int]:
    """Positions to keep: sorted by sample id, each id once (unknown ids kept in order)."""
    seen: set[int] = set()
    known, unknown = [], []
    for pos, i in enumerate(ids):
        if i is None:
            unknown.append(pos)
        elif i not in seen:
            seen.add(i)
            known.append((i, pos))
    return [pos for _, pos in sorted(known)] + unknown
