"""Named leading axes of graph entries: the dims between ``sample`` and ``(edge, head)``.

A spatio-temporal model keeps one edge map per node (temporal graph, tsl/SPIN's
``(batch, time-edge, node, head)``) or per time step (spatial graph). The capture names
those dims by what it knows (``dim2``: axis 2 of the model's tensor); the step's labels
say what they are: a dim as long as ``nodes`` is the node axis, one as long as
``time_steps`` the time axis (``channels``, ``epochs`` likewise). When a size fits
several label lists, the graph's own node set decides (a temporal graph's other dim is
the node axis; its one dim without a fitting list is the node axis too), and
``labels={"axes": {entry: ["node"]}}`` names them outright.

Example:
    >>> store.axes("encoder.temporal", "test")
    [Axis(name='node', size=12, labels=['s0', ...])]
    >>> store.read("encoder.temporal", "test", select={"node": 3})   # (sample, edge, head)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.store.errors import StoreError

# label list -> axis name; the names the CLI selects with --node / --time-step
LABEL_AXES = {"nodes": "node", "time_steps": "time", "channels": "channel", "epochs": "epoch"}
AXIS_TEXT = {"node": "node", "time": "time step", "channel": "channel", "epoch": "epoch"}


@dataclass
class Axis:
    """One leading dim of a graph entry: its name, length and labels (if the step has
    a label list of that length)."""

    name: str
    size: int
    labels: list[str] | None = None

    def text(self, index: int) -> str:
        """``"node s3"`` / ``"time step 7"``: one position, for titles."""
        what = AXIS_TEXT.get(self.name, self.name)
        label = self.labels[index] if self.labels is not None else None
        return f"{what} {label}" if label is not None and label != str(index) else \
            f"{what} {index}"


def _fits(labels: Mapping[str, Any], key: str, size: int) -> list[str] | None:
    found = labels.get(key)
    if isinstance(found, list) and len(found) == size and \
            not any(isinstance(v, (list, dict)) for v in found):
        return [str(v) for v in found]
    return None


def resolve(raw: Sequence[str], sizes: Sequence[int], labels: Mapping[str, Any],
            num_nodes: int, entry: str = "") -> list[Axis]:
    """Axes named from the capture's names, the step's labels and the graph's size."""
    given = labels.get("axes", {}).get(entry) if isinstance(labels.get("axes"), dict) else None
    names = list(given) if isinstance(given, list) and len(given) == len(sizes) else list(raw)
    if len(names) != len(sizes):  # a store written before axes were named
        names = [f"dim{i + 1}" for i in range(len(sizes))]
    own = [k for k in LABEL_AXES if _fits(labels, k, num_nodes)]  # what the graph spans
    out: list[Axis] = []
    for name, size in zip(names, sizes):
        key = next((k for k, v in LABEL_AXES.items() if v == name), None)
        if not name.startswith("dim") or key is not None:
            out.append(Axis(str(name), int(size), _fits(labels, key, size) if key else None))
            continue
        fitting = [k for k in LABEL_AXES if _fits(labels, k, size)
                   and LABEL_AXES[k] not in {a.name for a in out}]
        if len(fitting) > 1:  # e.g. 12 nodes and 12 time steps: not the graph's own set
            fitting = [k for k in fitting if k not in own] or fitting
        if len(fitting) == 1:
            out.append(Axis(LABEL_AXES[fitting[0]], int(size), _fits(labels, fitting[0], size)))
        else:
            out.append(Axis(str(name), int(size)))
    # a spatio-temporal graph over time steps keeps one map per node, and vice versa:
    # its one unnamed dim is the other kind, even without a label list for it
    other = {("time_steps",): "node", ("nodes",): "time"}.get(tuple(
        k for k in own if k in ("time_steps", "nodes")))
    unnamed = [a for a in out if a.name.startswith("dim")]
    if other and len(unnamed) == 1 and other not in {a.name for a in out}:
        unnamed[0].name = other
    return out


def node_kind(labels: Mapping[str, Any], num_nodes: int, axes: Sequence[Axis] = (),
              wanted: str = "auto") -> str:
    """``"time"`` when the graph's nodes are time steps, else ``"node"``: a leading dim
    named ``node`` makes the graph temporal, one named ``time`` spatial; otherwise the
    label list whose length is the node count decides."""
    if wanted not in ("auto", "node", "time"):
        raise StoreError(f"graph axis must be 'auto', 'node' or 'time', not {wanted!r}")
    if wanted != "auto":
        return wanted
    names = {a.name for a in axes}
    if "node" in names and "time" not in names:
        return "time"
    if "time" in names:
        return "node"
    fits = (lambda k: isinstance(labels.get(k), list)  # noqa: E731
            and len(labels[k]) == num_nodes)
    return "time" if fits("time_steps") and not fits("nodes") else "node"


def node_names(labels: Mapping[str, Any], kind: str, num_nodes: int) -> list[str] | None:
    key = next(k for k, v in LABEL_AXES.items() if v == kind)
    found = labels.get(key)
    return [str(v) for v in found] if isinstance(found, list) and len(found) == num_nodes \
        else None


def positions(axes: Sequence[Axis], select: Mapping[str, Any] | None
              ) -> tuple[Any, ...]:
    """NumPy index for the leading dims from ``{axis name: int or list}``; an axis not
    named keeps all positions. Unknown names and out-of-range positions are one-line
    :class:`StoreError` s."""
    select = dict(select or {})
    known = [a.name for a in axes]
    for name in select:
        if name not in known:
            raise StoreError(f"no axis {name!r} to select; this entry's axes between sample "
                             f"and (edge, head) are {known or 'none'}")
    idx: list[Any] = []
    for a in axes:
        want = select.get(a.name)
        if want is None:
            idx.append(slice(None))
            continue
        arr = np.atleast_1d(np.asarray(want, dtype=np.int64))
        bad = arr[(arr < -a.size) | (arr >= a.size)]
        if bad.size:
            raise StoreError(f"{a.name} {int(bad[0])} out of range: the axis has {a.size} "
                             f"(0..{a.size - 1})")
        idx.append(int(arr[0] % a.size) if np.ndim(want) == 0 else arr % a.size)
    return tuple(idx)


def pick(weights: np.ndarray, axes: Sequence[Axis], select: Mapping[str, Any] | None
         ) -> np.ndarray:
    """``(sample, ..., edge, head)`` with the named leading dims selected (an int drops
    the dim, a list keeps it)."""
    if not select:
        return weights
    idx = positions(axes, select)
    out = weights
    for i, one in reversed(list(enumerate(idx))):  # one dim at a time: lists never mix
        out = out[(slice(None),) * (i + 1) + (one,)]
    return out


def keep_dims(select: Mapping[str, Any] | None) -> dict[str, list[int]] | None:
    """``select`` with every position a list, so an export keeps each named dim (of
    length 1 when one position was picked) and its ``dims`` stay true."""
    if not select:
        return None
    return {k: [int(v)] if np.ndim(v) == 0 else [int(i) for i in v] for k, v in select.items()}


def npz_axis_arrays(store: Any, module: str, steps: Sequence[str],
                    select: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Axis arrays of a graph entry for an ``.npz``: ``dims`` (``sample, node, edge,
    head``), ``time_steps`` (labels of the time dim, or of the graph's nodes when they
    are time steps; absent when the entry has no time) and ``nodes`` likewise; with
    ``select`` (see :func:`keep_dims`), the labels of the positions kept."""
    step = next(s for s in steps if store.segments(module, s))
    axes = store.axes(module, step)
    for a in axes:
        picked = (keep_dims(select) or {}).get(a.name)
        if picked is not None:
            kept = [i % a.size for i in picked]
            a.labels = [a.labels[i] for i in kept] if a.labels else [str(i) for i in kept]
            a.size = len(kept)
    edges = store.edge_index(module, step=step, sample=0)
    n = int(edges.max()) + 1 if edges.size else 0
    labels = store.labels(step)
    kind = node_kind(labels, n, axes)
    out = {"dims": np.array(["sample", *(a.name for a in axes), "edge", "head"])}
    for name, key in (("time", "time_steps"), ("node", "nodes")):
        found = next((a for a in axes if a.name == name), None)
        if found is not None:
            out[key] = np.asarray(found.labels or np.arange(found.size))
        elif kind == name:  # the graph's own nodes
            out[key] = np.asarray(node_names(labels, kind, n) or np.arange(n))
    return out
