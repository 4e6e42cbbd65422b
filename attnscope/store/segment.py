"""One committed batch of one entry (a :class:`Segment`), reading rows and heads across
an entry's segments, and the position rule of store reads (int, list, slice or None)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnscope._memory import gb, size_text, too_big
from attnscope.store import forms
from attnscope.store.errors import StoreError


@dataclass
class Segment:
    """One committed batch of one entry, stored in the form its journal record names
    (:mod:`attnscope.store.forms`; inferred for segments written before forms had names)."""

    path: Path
    shape: tuple[int, ...]
    batch: int
    rows: list[int] | None
    name: str = ""  # the entry it belongs to, checked against the segment's own record
    form_name: str | None = None
    _meta: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _form: forms.SegmentForm | None = field(default=None, repr=False, compare=False)

    @property
    def form(self) -> forms.SegmentForm:
        if self._form is None:  # named by the journal, or inferred from the files once
            self._form = forms.of_segment(self.path, self.form_name)
        return self._form

    def meta(self) -> dict[str, Any]:
        """The segment's own metadata, checked against the journal: same shape, same
        module (metadata whose module keys were swapped is caught here)."""
        if self._meta is None:
            meta = self.form.describe(self.path)
            attrs = meta.get("attributes")
            owner = attrs.get("module") if isinstance(attrs, dict) else None
            if owner != self.name:
                raise StoreError(f"segment '{self.path}' belongs to {str(owner)[:80]!r}, not "
                                 f"{self.name[:80]!r}: the store's metadata is damaged; "
                                 "re-capture this step")
            if meta.get("shape") != list(self.shape):
                raise StoreError(f"segment '{self.path}' has shape {meta.get('shape')} but the "
                                 f"journal says {list(self.shape)}: the store is damaged; "
                                 "re-capture this step")
            self._meta = meta
        return self._meta

    def read(self, rows: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """The given sample rows and heads, through the form's checked reader."""
        return self.form.read_heads(self.path, rows, heads, self.meta())

    def array(self) -> forms.SegmentArray:
        """A lazy, checked array view (for dask): reads go through :meth:`read`'s checks."""
        return forms.SegmentArray(self.path, self.form, self.meta())


def read_rows(segs: list[Segment], samples: Any, heads: Any, where: str) -> np.ndarray:
    """The chosen sample rows and heads of an entry's checked segments, stitched in
    order into one float32 array, NaN-padded where batches differ in length; a read that
    would not fit in memory is refused before allocating."""
    total = sum(s.shape[0] for s in segs)
    rows = positions(samples, total, "sample")
    hax = segs[0].form.head_axis
    if len({s.form.head_axis for s in segs}) != 1:
        raise StoreError(f"{where} mixes graph and dense segments; "
                         "the store is damaged, re-capture this step")
    nheads = max((s.shape[hax] for s in segs), default=0)
    hsel = positions(heads, nheads, "head")
    if len({len(s.shape) for s in segs}) != 1:
        raise StoreError(f"{where} mixes segments of different rank; "
                         "the store is damaged, re-capture this step")
    tail = [max(s.shape[i] for s in segs) for i in range(1, len(segs[0].shape))]
    tail[hax if hax < 0 else hax - 1] = len(hsel)
    shape = (len(rows), *tail)
    refuse, free = too_big(4 * int(np.prod(shape, dtype=np.float64)))
    if refuse:
        raise StoreError(f"reading {where} would need {size_text(shape, 4)} but only "
                         f"{gb(free)} of memory is available; read fewer samples "
                         "or heads (samples=, heads=) or use store.to_xarray(...)")
    out = np.full(shape, np.nan, dtype=np.float32)
    start = 0
    for seg in segs:
        n = seg.shape[0]
        mask = (rows >= start) & (rows < start + n)
        if mask.any():
            local = rows[mask] - start
            hs = hsel[hsel < seg.shape[hax]]
            block = seg.read(local, hs)  # damage is a StoreError naming it
            if block.shape[0] != len(local) or any(
                    b > t for b, t in zip(block.shape[1:], out.shape[1:])):
                raise StoreError(f"segment '{seg.path}' holds {block.shape}, not what its "
                                 "journal says; the store is damaged, re-capture this step")
            block = block.astype(np.float32)
            at = np.nonzero(mask)[0]
            idx = (at, *[slice(0, d) for d in block.shape[1:]])
            out[idx] = block
        start += n
    return out


def positions(sel: Any, n: int, what: str) -> np.ndarray:
    """int / list / slice / None -> sorted-as-given int array, checked against ``n``."""
    if sel is None:
        return np.arange(n)
    if isinstance(sel, slice):
        if sel.step == 0:
            raise StoreError(f"{what} slice {sel.start}:{sel.stop}:0 has step 0; use 1 or more")
        try:
            return np.arange(n)[sel]
        except (TypeError, ValueError, IndexError):
            raise StoreError(f"{what} slice {sel!r} is not a slice of integers") from None
    try:
        idx = np.atleast_1d(np.asarray(sel, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):
        raise StoreError(f"{what} selection {sel!r} is not integers") from None
    if idx.ndim != 1:
        raise StoreError(f"{what} selection must be an integer or a flat list of integers")
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise StoreError(f"{what} index out of range: {np.asarray(sel).tolist()} (have {n})")
    return idx
