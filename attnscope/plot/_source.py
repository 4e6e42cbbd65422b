"""Turn whatever the user holds into plain NumPy for one sample.

Accepted sources: an :class:`~attnscope.maps.AttentionMap`, a
:class:`~attnscope.maps.Recording`, a store (anything with ``read``/``modules``/``steps``,
see :mod:`attnscope.store`), a ``{name: array}`` mapping, a NumPy array or a tensor.
Dense arrays may be ``(key,)``, ``(query, key)``, ``(head, query, key)`` or
``(batch, head, query, key)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.entries import parse_entry
from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording

HeadSpec = int | str | Sequence[int] | None


@dataclass
class Dense:
    """One sample of one dense map: ``weights`` is ``(head, query, key)`` float32."""

    weights: np.ndarray
    heads: list[int]
    module: str = ""
    kind: str | None = None
    step: str | None = None
    sample: int = 0
    labels: dict[str, Any] = field(default_factory=dict)
    num_heads: int = 0  # heads of the source map before selection
    recorded: bool = False  # from a capture: -0.0 marks the cells the model masked
    reduced: str | None = None  # "mean": the one stored head is the mean of the heads

    def masked(self, which: int | str) -> np.ndarray | None:
        """``(query, key)`` cells the model masked, for head position ``which`` or the
        head ``"mean"`` (masked in every head); None when not captured by attnscope."""
        if not self.recorded:
            return None
        hidden = (self.weights == 0) & np.signbit(self.weights)
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


@dataclass
class Graph:
    """One sample of one graph map: ``weights`` ``(edge, head)``, ``edge_index`` ``(2, edge)``."""

    weights: np.ndarray
    edge_index: np.ndarray
    module: str = ""
    step: str | None = None
    sample: int = 0
    where: str = ""


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def is_store(source: Any) -> bool:
    return all(hasattr(source, a) for a in ("read", "modules", "steps"))


def module_names(source: Any) -> list[str]:
    if isinstance(source, Recording) or is_store(source):
        return list(source.modules)
    if isinstance(source, Mapping):
        return list(source)
    return []


def pick_module(names: Sequence[str], module: str | int | None, what: str = "module") -> str:
    """A name from ``names``: given by name, by position (negative: from the end), or the
    only one. Anything else raises a one-line :class:`SelectionError` listing the names."""
    listing = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    if module is None:
        if len(names) == 1:
            return names[0]
        raise SelectionError(f"several {what}s are available, pick one: {listing}")
    if isinstance(module, int) or (isinstance(module, str) and re.fullmatch(r"-?\d+", module)):
        i = int(module)
        if -len(names) <= i < len(names):
            return names[i]
        raise SelectionError(f"{what} index {i} out of range ({len(names)} {what}s: {listing})")
    if module not in names:
        raise SelectionError(f"no {what} {module!r}; available: {listing}")
    return module


def head_positions(spec: HeadSpec, num_heads: int) -> list[int]:
    """Positions selected by ``spec`` (int, list, ``"all"``/``"mean"``/None = all)."""
    if spec is None or (isinstance(spec, str) and spec in ("all", "mean")):
        return list(range(num_heads))
    if isinstance(spec, str):
        raise SelectionError(f"head must be an index, a list, 'mean' or 'all', not {spec!r}")
    out = [int(spec)] if np.isscalar(spec) else [int(h) for h in spec]
    bad = [h for h in out if not -num_heads <= h < num_heads]
    if bad:
        raise SelectionError(f"no head {bad[0]}: this map has {num_heads} heads "
                             f"(0..{num_heads - 1}, 'mean' or 'all')")
    return [h % num_heads for h in out]


def _recording_maps(rec: Recording, module: str | int | None) -> tuple[str, list[AttentionMap]]:
    names = list(dict.fromkeys(m.entry for m in rec.maps))
    name = pick_module(names, module)
    base, call, _ = parse_entry(name)
    maps = [m for m in rec.maps if m.module == base and m.call_index == call]
    return name, maps


def read_dense(source: Any, module: str | int | None = None, step: str | None = None,
               sample: int = 0, heads: HeadSpec = None) -> Dense:
    """One sample as :class:`Dense` with the selected heads."""
    if isinstance(source, Recording):
        name, maps = _recording_maps(source, module)
        seen = 0
        for m in maps:
            if m.is_graph:
                raise SelectionError(f"{name!r} holds graph maps; use plot_top_edges, "
                                     "plot_graph or plot_edge_matrix")
            n = m.weights.shape[0]
            if sample < seen + n:
                return _from_map(m, sample - seen, heads, name, sample)
            seen += n
        raise SelectionError(f"sample {sample} out of range: {name!r} has {seen} samples")
    if isinstance(source, AttentionMap):
        if source.is_graph:
            raise SelectionError("this is a graph map; use plot_top_edges, plot_graph or "
                                 "plot_edge_matrix")
        return _from_map(source, sample, heads, source.module, sample)
    if is_store(source):
        return _from_store(source, module, step, sample, heads)
    if isinstance(source, Mapping):
        name = pick_module(list(source), module)
        dense = read_dense(source[name], None, step, sample, heads)
        dense.module = name
        return dense
    w = to_numpy(source)
    w = {1: lambda a: a[None, None], 2: lambda a: a[None], 3: lambda a: a}.get(
        w.ndim, lambda a: a)(w)
    if w.ndim == 4:
        if not -w.shape[0] <= sample < w.shape[0]:
            raise SelectionError(f"sample {sample} out of range: the array has {w.shape[0]}")
        w = w[sample]
    if w.ndim != 3:
        raise ValueError(f"expected (key,), (query, key), (head, query, key) or "
                         f"(batch, head, query, key), got shape {w.shape}")
    pos = head_positions(heads, w.shape[0])
    return Dense(w[pos], pos, sample=sample, num_heads=w.shape[0])


def _from_map(m: AttentionMap, row: int, heads: HeadSpec, name: str, sample: int) -> Dense:
    if not -m.weights.shape[0] <= row < m.weights.shape[0]:
        raise SelectionError(f"sample {row} out of range: {name!r} has {m.weights.shape[0]}")
    pos = head_positions(heads, m.num_heads)
    ids = [m.heads[p] for p in pos] if m.heads else pos
    dense = Dense(to_numpy(m.weights[row][pos]), ids, name, m.kind, sample=sample,
                  num_heads=m.num_heads, recorded=True, reduced=m.reduced)
    if m.reduced == "mean":  # one stored head: the mean of the heads kept at capture
        dense.heads = list(m.heads) if m.heads else []
    return dense


def _from_store(store: Any, module: str | int | None, step: str | None, sample: int,
                heads: HeadSpec) -> Dense:
    name = pick_module(list(store.modules), module)
    info = store.module_info(name)
    if info.get("graph"):
        raise SelectionError(f"{name!r} holds graph maps; use --kind graph")
    steps = [s for s in store.steps if store.segments(name, s)]
    step = pick_module(steps, step, "step") if step is not None or len(steps) != 1 else steps[0]
    total = store.num_samples(name, step)
    if not -total <= sample < total:
        raise SelectionError(f"sample {sample} out of range: {name!r} has {total} in {step!r}")
    pos = head_positions(heads, int(info["num_heads"]))
    w = store.read(name, step=step, samples=[sample], heads=pos)[0]  # (head, query, key)
    q, k = (int(v) for v in store.lengths(name, step)[sample])
    ids = [info["heads"][p] for p in pos] if info.get("heads") else pos
    labels = _sample_labels(store.labels(step), sample, total)
    info = store.module_info(name, step)
    dense = Dense(w[:, :q, :k], ids, name, info.get("kind"), step, sample, labels,
                  int(info["num_heads"]), recorded=True, reduced=info.get("reduced"))
    if dense.reduced == "mean":
        dense.heads = list(info["heads"]) if info.get("heads") else []
    return dense


def _sample_labels(labels: dict[str, Any], sample: int, total: int) -> dict[str, Any]:
    """Step labels, with per-sample lists (one list per stored sample, e.g. tokens of
    each sentence or ``true->pred`` of each night's epochs) cut to ``sample``'s."""
    out = dict(labels)
    for key, value in labels.items():
        if (isinstance(value, list) and len(value) == total and value
                and all(isinstance(v, list) for v in value)):
            out[key] = value[sample]
            if key == "sample_epoch_labels":
                out.setdefault("classes", value[sample])
    return out


def read_graph(source: Any, module: str | int | None = None, step: str | None = None,
               sample: int = 0, select: Sequence[int] | None = None) -> Graph:
    """One graph sample: ``sample`` indexes calls (or the first leading dim of weights
    shaped ``(batch, ..., edge, head)``); ``select`` picks the other leading dims."""
    return _lead(graph_sample(source, module, step, sample), select)


def graph_sample(source: Any, module: str | int | None = None, step: str | None = None,
                 sample: int = 0) -> Graph:
    """One graph sample with every leading dim kept: weights ``(..., edge, head)``."""
    if is_store(source):
        name = pick_module(list(source.modules), module)
        if not source.module_info(name).get("graph"):
            raise SelectionError(f"{name!r} holds dense maps, not edge weights")
        total = source.num_samples(name, step)
        if not -total <= sample < total:
            raise SelectionError(f"sample {sample} out of range: {name!r} has {total}")
        w = source.read(name, step=step, samples=[sample])[0]
        ei = source.edge_index(name, step=step, sample=sample % total)
        return Graph(w, np.asarray(ei), name, step, sample)
    if isinstance(source, Recording):
        name, maps = _recording_maps(source, module)
    elif isinstance(source, AttentionMap):
        name, maps = source.module, [source]
    else:
        raise TypeError("graph views need an AttentionMap, a Recording or a store")
    seen = 0
    for m in maps:
        if not m.is_graph:
            raise SelectionError(f"{name or '<root>'!r} holds dense maps, not edge weights; "
                                 "use plot_heatmap")
        w = to_numpy(m.weights)
        rows = [w] if w.ndim == 2 else list(w)
        if sample < seen + len(rows):
            return Graph(rows[sample - seen], m.edge_index.cpu().numpy(), name, sample=sample)
        seen += len(rows)
    raise SelectionError(f"sample {sample} out of range: {name!r} has {seen} samples")


def _lead(g: Graph, select: Sequence[int] | None) -> Graph:
    """Index the leading dims between sample and ``(edge, head)`` (default: first of each)."""
    extra = g.weights.ndim - 2
    if extra <= 0:
        return g
    idx = tuple(select) if select is not None else (0,) * extra
    if len(idx) != extra:
        raise SelectionError(f"weights have {extra} leading dims {g.weights.shape[:-2]}; "
                             f"pass select= with {extra} indices")
    g.weights = g.weights[idx]
    # not "name[0]": that reads like the module's call index (entry names use it)
    g.where = (f" \u00b7 slice {idx[0]} of the leading axis" if extra == 1 else
               f" \u00b7 slice ({', '.join(map(str, idx))}) of the leading axes")
    return g
