"""One sample of one dense map, from any source, as plain NumPy with its labels.

Dense arrays may be ``(key,)``, ``(query, key)``, ``(head, query, key)`` or
``(batch, head, query, key)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording
from attnscope.sources.base import (
    as_source,
    is_store,
    map_rows,
    recording_maps,
    store_step,
    to_numpy,
)
from attnscope.sources.index import HeadSpec, head_positions, pick_name, positions
from attnscope.sources.labels import AxisLabels, resolve, sample_labels


@dataclass
class Dense:
    """One sample of one dense map: ``weights`` is ``(head, query, key)`` float32."""

    weights: np.ndarray
    heads: list[int]
    module: str = ""
    kind: str | None = None
    step: str | None = None
    sample: int = 0
    labels: dict[str, Any] = field(default_factory=dict)  # this sample's (sample_labels)
    num_heads: int = 0  # heads of the source map before selection
    recorded: bool = False  # from a capture: -0.0 marks the cells the model masked
    reduced: str | None = None  # "mean": the one stored head is the mean of the heads
    # (head, query, key) cells the model masked, when they are not the weights' own
    # signed zeros: an ``@effective`` matrix can be negative, so -0.0 there is rounding
    hidden: np.ndarray | None = None

    def masked(self, which: int | str) -> np.ndarray | None:
        """``(query, key)`` cells the model masked, for head position ``which`` or the
        head ``"mean"`` (masked in every head); None when not captured by attnscope."""
        if self.hidden is not None:
            hidden = self.hidden
        elif self.recorded:
            hidden = (self.weights == 0) & np.signbit(self.weights)
        else:
            return None
        return hidden.all(axis=0) if which == "mean" else hidden[int(which)]

    def mask_for(self, which: int | str, mask: Any) -> Any:
        """``mask`` as given, except ``"auto"`` on captured maps: the recorded mask (plus
        NaN), never a weight that only rounded to zero in storage."""
        if isinstance(mask, str) and mask == "auto":
            found = self.masked(which)
            return found if found is not None else mask
        return mask

    def mean_title(self) -> str:
        """"mean of H heads" for head means, whether averaged here or at capture."""
        if self.reduced == "mean":
            return "mean of all heads" if len(self.heads) <= 1 else \
                f"mean of {len(self.heads)} heads"
        return f"mean of {len(self.heads)} heads" if len(self.heads) > 1 else \
            f"head {self.heads[0]}"

    def axis_labels(self, given: Mapping[str, Sequence[Any] | None] | None = None,
                    sides: Mapping[str, str] | None = None) -> AxisLabels:
        """Query and key labels of this map (see :func:`attnscope.sources.resolve`)."""
        q, k = self.weights.shape[-2:]
        return resolve(self.labels, q, k, module=self.module, kind=self.kind,
                       weights=self.weights, sides=sides, given=given)


def read_dense(source: Any, module: str | int | None = None, step: str | None = None,
               sample: int = 0, heads: HeadSpec = None) -> Dense:
    """One sample of one dense entry as :class:`Dense`, with the selected heads."""
    source = as_source(source)
    if isinstance(source, Recording):
        name, maps = recording_maps(source, module)
        if any(m.is_graph for m in maps):
            raise SelectionError(f"{name!r} holds graph maps; use plot_top_edges, "
                                 "plot_graph or plot_edge_matrix")
        rows = map_rows(maps)
        row = int(positions(sample, len(rows), "sample", repr(name))[0])
        m, i = rows[row]
        return _from_map(m, i, heads, name, row)
    if is_store(source):
        return _from_store(source, module, step, sample, heads)
    if isinstance(source, Mapping):
        name = pick_name(list(source), module)
        dense = read_dense(source[name], None, step, sample, heads)
        dense.module = name
        return dense
    w = to_numpy(source)
    w = {1: lambda a: a[None, None], 2: lambda a: a[None], 3: lambda a: a}.get(
        w.ndim, lambda a: a)(w)
    if w.ndim == 4:
        w = w[int(positions(sample, w.shape[0], "sample", "the array")[0])]
    if w.ndim != 3:
        raise ValueError(f"expected (key,), (query, key), (head, query, key) or "
                         f"(batch, head, query, key), got shape {w.shape}")
    pos = head_positions(heads, w.shape[0])
    return Dense(w[pos], pos, sample=sample, num_heads=w.shape[0])


def _from_map(m: AttentionMap, row: int, heads: HeadSpec, name: str, sample: int) -> Dense:
    pos = head_positions(heads, m.num_heads)
    ids = [m.heads[p] for p in pos] if m.heads else pos
    dense = Dense(to_numpy(m.weights[row][pos]), ids, name, m.kind, sample=sample,
                  num_heads=m.num_heads, recorded=True, reduced=m.reduced)
    if m.reduced == "mean":  # one stored head: the mean of the heads kept at capture
        dense.heads = list(m.heads) if m.heads else []
    return dense


def _from_store(store: Any, module: str | int | None, step: str | None, sample: int,
                heads: HeadSpec) -> Dense:
    name = pick_name(list(store.modules), module)
    info = store.module_info(name)
    if info.get("graph"):
        raise SelectionError(f"{name!r} holds graph maps; use --kind graph")
    step = store_step(store, name, step)
    total = store.num_samples(name, step)
    sample = int(positions(sample, total, "sample", f"{name!r} in {step!r}")[0])
    pos = head_positions(heads, int(info["num_heads"]))
    w = store.read(name, step=step, samples=[sample], heads=pos)[0]  # (head, query, key)
    q, k = (int(v) for v in store.lengths(name, step)[sample])
    ids = [info["heads"][p] for p in pos] if info.get("heads") else pos
    labels = sample_labels(store.labels(step), sample, total)
    info = store.module_info(name, step)
    dense = Dense(w[:, :q, :k], ids, name, info.get("kind"), step, sample, labels,
                  int(info["num_heads"]), recorded=True, reduced=info.get("reduced"))
    if dense.reduced == "mean":
        dense.heads = list(info["heads"]) if info.get("heads") else []
    if info.get("effective"):
        dense.weights, dense.hidden = effective_mask(store, name, step, sample, pos,
                                                     dense.weights)
    return dense


def effective_mask(store: Any, name: str, step: str, sample: int, pos: list[int],
                   w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An ``@effective`` matrix (probabilities changed after the softmax, e.g. plus a
    relative bias) with its zeros made unsigned, and the cells the model masked: those
    recorded in its probability entry (``name`` without ``@effective``), else none."""
    from attnscope.entries import entry_name, parse_entry

    hidden = np.zeros(w.shape, dtype=bool)
    module, call, _ = parse_entry(name)
    base = entry_name(module, call)
    if base in store.modules and store.segments(base, step):
        p = store.read(base, step=step, samples=[sample], heads=pos)[0]
        p = p[:, : w.shape[1], : w.shape[2]]
        if p.shape == w.shape:
            hidden = (p == 0) & np.signbit(p)
    return w + np.float32(0.0), hidden  # -0.0 + 0.0 is +0.0
