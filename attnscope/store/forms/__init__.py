"""Segment forms: how one committed batch of one entry lies on disk.

Every form is one module with one object behind the small :class:`SegmentForm`
protocol (write, describe, read heads, and take rows for a merge). The writer asks
:func:`choose` which form a map goes to, names the form in the segment's journal record
and attributes, and the reader asks :func:`of_segment` for it: neither knows any form.
Segments written before forms were named carry no name; their form is inferred from
the files they hold (:meth:`SegmentForm.detect`).

Built in: ``dense`` (probabilities ``(batch, head, query, key)``), ``graph`` (edge
weights ``(batch, ..., edge, head)`` with their ``edge_index``) and ``qk`` (what an sdpa
call received; probabilities computed on read). A new form is one module here plus one
:func:`register_form` call at its end.

Example:
    >>> form = choose(m, m.weights, policy="qk")       # writer
    >>> nbytes, shape = form.write(path, m, m.weights, ctx)
    >>> of_segment(path, "qk").read_heads(path, rows, heads, meta)   # reader
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from attnscope.maps import AttentionMap
from attnscope.store.errors import StoreError

__all__ = ["SegmentArray", "SegmentForm", "WriteContext", "choose", "damaged", "form_names",
           "get_form", "of_segment", "register_form"]


@dataclass
class WriteContext:
    """What every form needs to write a segment: the step's storage choices and the
    attributes that identify the segment (module, step, batch)."""

    dtype: torch.dtype
    keepbits: int | None
    durable: bool
    attrs: dict[str, Any]


class SegmentForm(Protocol):
    """One way of laying out a segment. ``name`` goes into each journal record;
    ``holds`` is what ``Store.module_info(name)["form"]`` reports (``"probs"`` or
    ``"qk"``); ``head_axis`` is the head axis of what :meth:`read_heads` returns."""

    name: str
    holds: str
    head_axis: int
    priority: int  # lower is asked first by :func:`choose`

    def accepts(self, m: AttentionMap, weights: torch.Tensor, policy: str) -> bool:
        """Whether this form stores ``weights`` of ``m`` in a writer of ``policy``."""

    def write(self, path: Path, m: AttentionMap, weights: torch.Tensor,
              ctx: WriteContext) -> tuple[int, list[int]]:
        """Write one segment; return bytes written and the shape readers will see."""

    def detect(self, path: Path) -> bool:
        """Whether an unnamed (older) segment at ``path`` is in this form."""

    def describe(self, path: Path) -> dict[str, Any]:
        """The segment's own metadata: at least ``shape`` and ``attributes``."""

    def read_heads(self, path: Path, rows: np.ndarray, heads: np.ndarray,
                   meta: dict[str, Any], queries: list[int] | None = None) -> np.ndarray:
        """``(len(rows), ...)`` of the given sample rows and heads (and query rows);
        damage is a :class:`StoreError` naming it."""

    def take(self, path: Path, rows: list[int], meta: dict[str, Any],
             info: dict[str, Any]) -> AttentionMap:
        """Rows of the segment as a map the writer stores again in the same form."""

    def key(self, meta: dict[str, Any]) -> Any:
        """Segments with equal keys can be joined into one (:meth:`join`); ``None``:
        never joined."""

    def join(self, maps: list[AttentionMap]) -> AttentionMap:
        """Maps taken from segments with equal :meth:`key`, as one map."""


_FORMS: dict[str, SegmentForm] = {}


def register_form(form: SegmentForm) -> SegmentForm:
    """Make ``form`` known to writers and readers (a name can be registered once)."""
    if form.name in _FORMS and _FORMS[form.name] is not form:
        raise ValueError(f"segment form {form.name!r} is already registered")
    _FORMS[form.name] = form
    return form


def form_names() -> list[str]:
    return list(_FORMS)


def _ordered() -> list[SegmentForm]:
    return sorted(_FORMS.values(), key=lambda f: f.priority)


def choose(m: AttentionMap, weights: torch.Tensor, policy: str) -> SegmentForm:
    """The form ``weights`` of ``m`` is written in, by a writer of ``policy``."""
    for form in _ordered():
        if form.accepts(m, weights, policy):
            return form
    raise StoreError(f"{m.module!r}: no store form takes weights of shape "
                     f"{tuple(weights.shape)}; dense weights must be (batch, head, query, key)")


def get_form(name: str, where: Any = "") -> SegmentForm:
    """The form called ``name`` (one a newer attnscope wrote is a clear error)."""
    form = _FORMS.get(name)
    if form is None:
        raise StoreError(f"segment '{where}' is in form {name!r}, which this attnscope does "
                         f"not know ({', '.join(_FORMS)}); upgrade attnscope to read it")
    return form


def of_segment(path: Path, name: str | None) -> SegmentForm:
    """The form of the segment at ``path``: the one its record names, else inferred."""
    if name is not None:
        return get_form(name, path)
    for form in _ordered():
        if form.detect(path):
            return form
    return _FORMS["dense"]  # nothing there: the dense reader names what is missing


def damaged(path: Path, why: str) -> StoreError:
    """The one message for real damage (a checksum, a missing or truncated file)."""
    return StoreError(f"segment '{path}' is damaged: {why}; re-capture this step")


class SegmentArray:
    """Read-only array view of one segment for dask: indexing with ints and slices reads
    only the selected samples and heads (and, where the form can, query rows) through
    the form's checked reader, so a lazy view raises the same :class:`StoreError` as
    ``Store.read`` and never fills missing data with numbers."""

    dtype = np.dtype("float32")

    def __init__(self, path: Path, form: SegmentForm, meta: dict[str, Any]) -> None:
        self.path, self.form, self.meta = path, form, meta
        self.shape = tuple(int(n) for n in meta["shape"])
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        picks = [np.arange(n)[k] for n, k in zip(self.shape, key, strict=True)]
        flat = [np.atleast_1d(p) for p in picks]
        whole = np.array_equal(flat[2], np.arange(self.shape[2]))
        rows = None if whole else flat[2].tolist()
        out = self.form.read_heads(self.path, flat[0], flat[1], self.meta, rows)
        out = np.asarray(out, dtype=np.float32)
        if rows is not None and out.shape[2] != len(rows):  # the form read every row
            out = out[:, :, flat[2]]
        out = out[..., flat[3]]
        drop = tuple(i for i, p in enumerate(picks) if np.ndim(p) == 0)
        return out.squeeze(drop) if drop else out

    def __len__(self) -> int:
        return self.shape[0]


def _register_builtins() -> None:
    from attnscope.store.forms import dense, graph, qk  # noqa: F401  (each registers itself)


_register_builtins()
