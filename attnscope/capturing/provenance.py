"""How the operands of attention were built, from the reshapes, permutes, splits and cats
the interception mode sees: evidence for the layout check instead of defaults.

Each tracked tensor carries a :class:`Tag`: per axis, the factors it is made of, outer
to inner, each named ``"B"`` (the model call's samples), ``"H"`` (heads) or ``"?"``. A
``(batch, seq, head*dim)`` activation split by a view gets ``H`` on the axis just before
the head dimension; permutes move the names, merges concatenate them; ``torch.cat`` of
the pieces of one split of the feature axis, along axis 0 (braindecode's ATCNet), puts
``H`` outside. So ``(batch*head, ...)`` and ``(head*batch, ...)`` are told apart however
the model wrote it (view/transpose/reshape, einops, split/cat).

Also tagged: query rows picked by an index (ProbSparse's top-u queries; ``rows`` holds
the index along the query axis) and values picked by ``topk`` (Autoformer's lags), so a
softmax over them is not mistaken for attention over every key.

Cost: following an op stores a closure (:class:`Lazy`); tags are worked out only for
the operands attention asks about. Lookups are by ``id`` checked against a weak
reference, so an untracked tensor costs one dict miss. Deliberately left out:
``expand``/``repeat``, whose new axes have no name, and elementwise ops between tensors
of different shapes (scores that lose their tag fall back to the product they came
from).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

from attnscope.capturing.axes import Tag, fold_order

_UNSET = object()


class Lazy:
    """A tag computed on first use: following an op costs a closure, and only the few
    operands attention asks about are ever worked out. Never raises: a shape the
    tracker did not foresee gives no tag."""

    __slots__ = ("fn", "value")

    def __init__(self, fn: Callable[[], Tag | None]) -> None:
        self.fn, self.value = fn, _UNSET

    def __call__(self) -> Tag | None:
        if self.value is _UNSET:
            try:
                self.value = self.fn()
            except Exception:  # noqa: BLE001
                self.value = None
            self.fn = None
        return self.value


def resolve(value: Tag | Lazy | None) -> Tag | None:
    return value() if isinstance(value, Lazy) else value


def of(session: Any) -> Provenance:
    """The session's tracker, made on first use."""
    tracker = getattr(session, "provenance", None)
    if tracker is None:
        tracker = session.provenance = Provenance(lambda: session.call_batch, session.owner)
    return tracker


class Provenance:
    """Tags of the tensors made during one capture (see the module docstring)."""

    def __init__(self, batch: Any, owner: Any = lambda: None) -> None:
        self._batch = batch  # callable: the current model call's batch size
        self.owner = owner  # callable: the module call running now
        self._tags: dict[int, tuple[weakref.ref, Tag | Lazy]] = {}
        # (module call, shape, tag) of the last tagged products: scores often outlive
        # the product they came from only as a copy (a mask added, then a view)
        self.products: list[tuple[Any, torch.Size, Tag | Lazy]] = []
        # tags holding query rows picked by an index made so far: while there are none,
        # a 4-D operand has no evidence to give and is not worked out (see sdpa.py)
        self.rows_made = 0

    # -- lookup ---------------------------------------------------------------------
    def lazy(self, t: Any) -> Tag | Lazy | None:
        """``t``'s tag as stored: computed only when someone asks (see :class:`Lazy`)."""
        entry = self._tags.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        return entry[1]

    def get(self, t: Any) -> Tag | None:
        return resolve(self.lazy(t))

    def tag(self, t: Any, tag: Tag | Lazy) -> None:
        if not isinstance(t, torch.Tensor):
            return
        key, tags = id(t), self._tags
        tags[key] = (weakref.ref(t, lambda r: tags.pop(key, None)
                                 if tags.get(key, (None,))[0] is r else None), tag)

    def batch(self) -> int | None:
        return self._batch()

    def initial(self, t: torch.Tensor) -> Lazy:
        """The tag of a tensor nothing is known about: axis 0 is the batch if it has the
        model call's size."""
        shape, batch = tuple(t.shape), self._batch()
        return Lazy(lambda: Tag(tuple(((("B" if i == 0 and s == batch else "?"), s),)
                                      for i, s in enumerate(shape))))

    def evidence(self, t: Any, frame: Any = None) -> dict[str, Any]:
        """What the layout check may use about ``t`` (attention scores, or an sdpa
        query): how its leading axis was folded, which query rows it holds. Scores lose
        part of their tag on the way (a mask added, then a view), so the latest product
        of the same elements made in module call ``frame`` fills what ``t`` lacks; a fold
        that names the heads beats one that only names the samples."""
        tags = [self.get(t)]
        if frame is not None and isinstance(t, torch.Tensor):
            tags.append(resolve(next((made for f, shape, made in reversed(self.products)
                                      if f is frame and shape[-2:] == t.shape[-2:] and
                                      shape.numel() == t.numel()), None)))
        folds = [fold_order(g.axes[0]) for g in tags if g is not None and g.axes]
        folds = [f for f in folds if f is not None]
        found: dict[str, Any] = {}
        if folds:
            found["fold"] = next((f for f in folds if f[1] is not None), folds[0])
        rows = next((g.rows for g in tags if g is not None and g.rows is not None), None)
        if rows is not None:
            found["rows"] = rows
        return found

    def picked(self, t: Any) -> bool:
        """Whether ``t`` holds values chosen by ``topk`` (not scores over every key)."""
        tag = self.get(t)
        return tag is not None and tag.picked

    # -- propagation ----------------------------------------------------------------
    def handlers(self) -> dict[Any, Any]:
        """Torch functions to follow, mapped to handlers (see ``tracking``)."""
        from attnscope.capturing.tracking import handlers

        return handlers(self)
