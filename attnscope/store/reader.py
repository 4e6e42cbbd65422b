"""Reading a store: NumPy arrays of any (sample, head) selection, with only the chunks
needed touched. The xarray/dask view lives in :mod:`attnscope.store.xview`.

A store opened while another process writes shows the batches committed when it was
opened; :meth:`Store.refresh` picks up newer ones.

Nothing read from disk is trusted unchecked: metadata and journals are validated on
open (:mod:`attnscope.store.schema`), each segment's own ``zarr.json`` must agree with
the journal on its shape and module, every chunk is checksummed, and a read that would
not fit in memory is refused before allocating. Damage is a :class:`StoreError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnscope.store import axes as graph_axes
from attnscope.store import layout
from attnscope.store.errors import StoreError
from attnscope.store.segment import Segment, read_rows


class Store:
    """An attnscope store on disk.

    Example:
        >>> store = open_store("runs/attn")
        >>> store.steps, store.modules
        >>> x = store.read("encoder.layers.0.self_attn", step="epoch_000", heads=[0])
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.refresh()

    def refresh(self) -> None:
        """Re-read metadata and journals (see batches committed since opening)."""
        for attempt in range(3):
            try:
                return self._load()
            except _NewerThanMeta:
                # a writer registered a module and committed it between our reading the
                # metadata and its journal: read again, the metadata now has it
                if attempt == 2:
                    raise
        return None

    def _load(self) -> None:
        meta = layout.read_meta(self.root)
        segments: dict[tuple[str, str], list[Segment]] = {}
        by_key = {info["key"]: name for name, info in meta["modules"].items()}
        for step in meta["steps"]:
            directory = layout.step_dir(self.root, step, meta)
            for entry in layout.read_journal(directory / layout.JOURNAL, step):
                for rec in entry["maps"]:
                    name = by_key.get(rec["key"])
                    if name is None:
                        raise _NewerThanMeta(f"store '{self.root}' is inconsistent: the journal "
                                             f"of step {step!r} names unknown entry "
                                             f"{rec['key']}; re-capture this step")
                    if not meta["modules"][name]["graph"] and len(rec["shape"]) != 4:
                        raise StoreError(f"the journal of step {step!r} is damaged: entry "
                                         f"{name[:80]!r} has shape {rec['shape']}, not "
                                         "(sample, head, query, key); re-capture this step")
                    seg = Segment(directory / rec["key"] / rec["seg"], tuple(rec["shape"]),
                                  entry["batch"], rec.get("rows"), name, rec.get("form"))
                    segments.setdefault((step, name), []).append(seg)
        self.meta: dict[str, Any] = meta
        self._segments = segments

    @property
    def steps(self) -> list[str]:
        """Step names with at least one committed batch, in the order first written."""
        return [s for s in self.meta["steps"] if any(k[0] == s for k in self._segments)]

    @property
    def modules(self) -> list[str]:
        """Stored entries in capture order (``name[1]`` for later calls of one module)."""
        return [n for n in self.meta["modules"] if any(k[1] == n for k in self._segments)]

    @property
    def model(self) -> str | None:
        return self.meta.get("model")

    def module_info(self, module: str, step: str | None = None) -> dict[str, Any]:
        """Kind, head count, original head ids, source strategy ... of one entry; with
        ``step``, the head count, head ids and reduction that step was written with."""
        if module not in self.meta["modules"]:
            names = ", ".join(self.modules[:8]) + (" ..." if len(self.modules) > 8 else "")
            raise StoreError(f"no module {module!r} in store '{self.root}'; stored: {names}")
        info = dict(self.meta["modules"][module])
        if step is not None:
            info.update(self.meta["steps"].get(step, {}).get("heads", {}).get(module, {}))
        return info

    def labels(self, step: str) -> dict[str, Any]:
        """Axis labels given to the writer of ``step`` (tokens, time_steps, channels ...)."""
        return dict(self.meta["steps"].get(step, {}).get("labels", {}))

    def notes(self, step: str) -> list[str]:
        """What the capture of ``step`` did not record (or reshaped), and why."""
        return list(self.meta["steps"].get(step, {}).get("notes", []))

    def segments(self, module: str, step: str | None = None) -> list[Segment]:
        step = self._step(module, step)
        return self._segments.get((step, module), [])

    def num_samples(self, module: str, step: str | None = None) -> int:
        return sum(s.shape[0] for s in self.segments(module, step))

    def samples(self, module: str, step: str | None = None) -> list[tuple[int, int]]:
        """``(batch, row)`` of every stored sample: the forward call it came from (counted
        within the step) and its index in that call's batch (selection-aware)."""
        return [(s.batch, r) for s in self.checked(module, step)
                for r in (s.rows if s.rows is not None else range(s.shape[0]))]

    def lengths(self, module: str, step: str | None = None) -> np.ndarray:
        """True ``(query, key)`` size per sample (``(edge,)`` for graphs); ``read`` pads to
        the longest with NaN when batches differ."""
        graph = self.module_info(module)["graph"]
        return np.array([s.shape[-2:-1] if graph else s.shape[2:4]
                         for s in self.checked(module, step) for _ in range(s.shape[0])])

    def read(self, module: str, step: str | None = None, samples: Any = None,
             heads: Any = None, select: dict[str, Any] | None = None) -> np.ndarray:
        """Weights as float32: dense ``(sample, head, query, key)``; graph
        ``(sample, ..., edge, head)``. ``samples``/``heads`` are positions (int, list,
        slice or None for all); batches of different lengths are NaN-padded. ``select``
        picks graph dims between sample and edge by name (see :meth:`axes`), e.g.
        ``{"node": 3}`` (an int drops the dim, a list keeps it)."""
        wanted = self.axes(module, step) if select else []  # bad names fail before reading
        if select:
            graph_axes.positions(wanted, select)
        try:
            out = self._read(module, step, samples, heads)
        except StoreError:
            self._check_not_replaced(module, step)
            raise
        return graph_axes.pick(out, wanted, select)

    def axes(self, module: str, step: str | None = None) -> list[graph_axes.Axis]:
        """Named dims between sample and ``(edge, head)`` of a graph entry (node, time,
        channel, epoch, or ``dim<i>`` of the model's tensor), with their labels; empty
        for dense entries and plain ``(edge, head)`` maps (see :mod:`attnscope.store.axes`)."""
        info = self.module_info(module)
        segs = self.segments(module, step)
        if not info["graph"] or not segs or len(segs[0].shape) <= 3:
            return []
        step = self._step(module, step)
        sizes = [max(s.shape[i] for s in segs) for i in range(1, len(segs[0].shape) - 2)]
        edges = self.edge_index(module, step=step, sample=0)
        nodes = int(edges.max()) + 1 if edges.size else 0
        return graph_axes.resolve(info.get("axes", []), sizes, self.labels(step), nodes,
                                  module)

    def locate(self, module: str, step: str | None, sample: int) -> tuple[Segment, int] | None:
        """The segment holding ``sample`` (0-based over the step) and its row in it, or
        None when the step has fewer samples (unchecked: :meth:`Segment.meta` checks)."""
        start = 0
        for seg in self.segments(module, step):
            if start <= sample < start + seg.shape[0]:
                return seg, sample - start
            start += seg.shape[0]
        return None

    def checked(self, module: str, step: str | None = None) -> list[Segment]:
        """:meth:`segments`, each checked against its own ``zarr.json`` (shape, module)
        before any size from the journal is used to allocate."""
        segs = self.segments(module, step)
        for seg in segs:
            seg.meta()
        return segs

    def _check_not_replaced(self, module: str, step: str | None) -> None:
        """A step overwritten by another process since opening is not damage: say so."""
        segs = self.segments(module, step)
        try:
            now = layout.read_meta(self.root)
        except StoreError:
            return
        if segs and layout.step_dir(self.root, self._step(module, step), now) != \
                segs[0].path.parent.parent:
            raise StoreError(f"step {self._step(module, step)!r} of '{self.root}' was "
                             "overwritten by another process after this store was opened; "
                             "call store.refresh() or open it again") from None

    def _read(self, module: str, step: str | None, samples: Any, heads: Any) -> np.ndarray:
        segs = self.checked(module, step)
        if not segs:
            raise StoreError(f"{module!r} has no committed batches in step {step!r}")
        return read_rows(segs, samples, heads, f"{module!r} in step {step!r}")

    def edge_index(self, module: str, step: str | None = None, sample: int = 0) -> np.ndarray:
        """``(2, edge)`` connectivity used for ``sample`` of a graph entry."""
        if not self.module_info(module)["graph"]:
            raise StoreError(f"{module!r} holds dense maps; edge_index is only for graph maps")
        from attnscope.store.forms.graph import GRAPH

        start = 0
        for seg in self.segments(module, step):
            if sample < start + seg.shape[0]:
                seg.meta()
                edges = GRAPH.edge_index(seg.path)
                if edges.ndim != 2 or edges.shape[0] != 2:
                    raise StoreError(f"segment '{seg.path}' has a damaged edge_index "
                                     f"{edges.shape}; re-capture this step")
                return edges
            start += seg.shape[0]
        raise StoreError(f"sample {sample} out of range: {module!r} has {start} samples")

    def nbytes(self, module: str, step: str | None = None) -> int:
        """Bytes on disk of one entry in one step."""
        return sum(f.stat().st_size for s in self.segments(module, step)
                   for f in s.path.rglob("*") if f.is_file())

    def to_xarray(self, module: str, steps: list[str] | None = None) -> Any:
        """Lazy ``xarray.DataArray`` with dims (step, sample, head, query, key)."""
        from attnscope.store.xview import to_xarray

        return to_xarray(self, module, steps)

    def _step(self, module: str, step: str | None) -> str:
        self.module_info(module)
        have = [s for s in self.steps if (s, module) in self._segments]
        if step is None:
            if len(have) != 1:
                raise StoreError(f"{module!r} is stored for steps {have}; pass step=")
            return have[0]
        if step not in self.meta["steps"]:
            raise StoreError(f"no step {step!r} in store '{self.root}'; steps: {self.steps}")
        return step

    def __repr__(self) -> str:
        return f"Store('{self.root}', steps={self.steps}, modules={len(self.modules)})"


class _NewerThanMeta(StoreError):
    """A journal names an entry the metadata read just before did not have yet."""
