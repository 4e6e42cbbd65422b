"""Softmax computed inside attention modules (hand-written attention, LSTM attention,
annotated-transformer style code).

A softmax is a candidate when its calling module (its ``nn.Softmax``, or one parent) is
named like attention, or it runs inside an ``include``d module. A candidate is recorded
only on evidence that it is attention, so feature softmaxes (linear attention) are not:

* its input has the shape of a product of two activations (matmul, bmm, einsum, not a
  weight) made earlier in the same module call: query-key scores, scaled, biased or
  masked on the way; or
* it is 1-D attention: one weight per key and sample (additive / LSTM attention), in a
  module other than the model itself (a classifier's softmax ends the model); or
* its output multiplies the values over the softmax axis: ``probs @ v`` with the
  softmax axis last and ``v`` not itself a product.

Candidates without evidence when their module (or its caller) returns are skipped with
a note. ``include``d modules record every softmax, as the user asked. After a recorded
softmax, the first matmul of its module that multiplies a tensor of the same shape tells
whether the probabilities were changed on the way to V (a relative position bias added
after the softmax, say); if so, that matrix is kept as ``AttentionMap.effective``.
Dropout and dtype casts are not such a change.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from attnscope.capturing.frames import Frame
from attnscope.capturing.layout import band_to_dense
from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.selection import to_dense_layout
from attnscope.capturing.session import CaptureSession
from attnscope.capturing.strategies._products import (
    batch_rows,
    contracts_last,
    is_weight,
    operands,
    same_scores,
    softmax_dim,
)
from attnscope.capturing.strategies._softmax_qk import (
    attach_qk,
    effective_bias,
    form_qk,
    product_operands,
)
from attnscope.maps import AttentionMap

_SOFTMAXES = (F.softmax, torch.softmax, torch.Tensor.softmax, torch.special.softmax)
_SAME = (F.dropout, torch.dropout, torch.Tensor.to, torch.Tensor.type_as, torch.Tensor.float,
         torch.Tensor.contiguous)
_MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
            torch.Tensor.bmm, torch.einsum, torch.baddbmm, torch.Tensor.baddbmm)
_MULS = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__)
_KEEP_PRODUCTS = 8


@dataclass
class _Pending:
    """A candidate softmax output and the tensors that are it, only dropped out or cast."""

    probs: torch.Tensor
    key_dim: int
    owner: Frame
    recorded: bool = False
    record: AttentionMap | None = None  # the map, while an effective matrix can line up
    same: list[torch.Tensor] = field(default_factory=list)
    moved: bool = False  # handed to the caller's frame once
    done: bool = False  # recorded or refused by the layout check: nothing left to decide
    scores: torch.Tensor | None = None  # its input, kept only for a query/key store

    def is_same(self, t: object) -> bool:
        return any(t is s for s in self.same)

    def shares(self, t: object) -> bool:
        if not isinstance(t, torch.Tensor):
            return False
        ptr = t.untyped_storage().data_ptr()
        return any(s.untyped_storage().data_ptr() == ptr for s in self.same)


@register_strategy
class SoftmaxStrategy(Strategy):
    name = "softmax"
    description = "softmax inside modules named like attention, or inside include= modules"

    def attach(self, session: CaptureSession):
        session.frame_end.append(lambda frame: self._frame_end(session, frame))
        return []

    def handlers(self, session: CaptureSession):
        def on_softmax(func, args, kwargs):
            out = func(*args, **kwargs)
            owner = session.owner()
            if owner is None or owner.name in session.claimed or not args:
                return out
            if not session.wants(owner, session.attention_named()):
                session.note_ignored_softmax(owner)
                return out
            key_dim = softmax_dim(args, kwargs, out.ndim)
            pending = _Pending(out, key_dim, owner, same=[out])
            scores = args[0]
            from_product = isinstance(scores, torch.Tensor) and any(
                same_scores(entry[0], scores.shape) for entry in owner.products)
            if form_qk(session):  # the scores, to find their query and key (_softmax_qk)
                pending.scores = scores
            # Longformer's band has a documented layout (see layout.band_to_dense)
            band = isinstance(getattr(owner.module, "one_sided_attn_window_size", None), int)
            # one weight per key (additive/LSTM attention) in a module named attention,
            # not the model itself: a feature softmax always has a query-like axis
            one_d = out.numel() // out.shape[key_dim] == batch_rows(out, key_dim) and \
                owner.module is not session.root
            if (from_product or band or one_d or bool(session.include)) and \
                    not self._record(session, pending):
                return out
            owner.pending = [*(owner.pending or [])[-3:], pending]
            return out

        def on_same(func, args, kwargs):
            out = func(*args, **kwargs)
            for pending in self._waiting(session):
                if args and pending.is_same(args[0]) and isinstance(out, torch.Tensor) \
                        and out.shape == pending.probs.shape:
                    pending.same.append(out)
            return out

        def on_matmul(func, args, kwargs):
            out = func(*args, **kwargs)
            owner = session.owner()
            if owner is None:
                return out
            equation, ops = operands(func, args, kwargs)
            tensors = [t for t in ops if isinstance(t, torch.Tensor)]
            for pending in self._waiting(session):
                self._on_product(session, pending, equation, ops)
            if len(tensors) == 2 and not any(is_weight(t) for t in tensors):
                qk = product_operands(func, equation, ops) if form_qk(session) else None
                owner.products = [*owner.products[-_KEEP_PRODUCTS:],
                                  (out.shape, weakref.ref(out), qk)]
            return out

        def on_mul(func, args, kwargs):
            for pending in self._waiting(session):
                if not pending.recorded:
                    self._on_product(session, pending, "*", args[:2])
            return func(*args, **kwargs)

        table = {f: on_softmax for f in _SOFTMAXES}
        table.update({f: on_same for f in _SAME})
        table.update({f: on_matmul for f in _MATMULS})
        table.update({f: on_mul for f in _MULS})
        return table

    @staticmethod
    def _waiting(session: CaptureSession) -> list[_Pending]:
        """Candidates of the innermost module call (and those handed up to it)."""
        owner = session.owner()
        return list(owner.pending or ()) if owner is not None else []

    def _on_product(self, session: CaptureSession, pending: _Pending, equation, ops) -> None:
        probs, key_dim = pending.probs, pending.key_dim
        keys = probs.shape[key_dim]
        if pending.recorded:  # does V see the probabilities as they are?
            if equation == "*":
                return
            for t in ops:
                if isinstance(t, torch.Tensor) and t.shape == probs.shape:
                    self._drop(session, pending)
                    if not pending.is_same(t):
                        self._keep_effective(session, pending, t)
                    return
            return
        if pending.done:
            return
        one_d = probs.numel() // keys == batch_rows(probs, key_dim)
        for index, t in enumerate(ops):
            if not pending.shares(t):
                continue
            others = [o for o in ops if isinstance(o, torch.Tensor) and o is not t]
            if not others or any(is_weight(o) for o in others):
                return
            if one_d:
                evidence = any(keys in o.shape for o in others)
            else:
                products = [entry[1]() for entry in pending.owner.products]
                evidence = (equation != "*" and t.shape[-1] == keys
                            and key_dim == probs.ndim - 1
                            and contracts_last(equation, index, t.ndim)
                            and not any(o is p for o in others for p in products))
            if evidence:
                self._record(session, pending)
            return

    @staticmethod
    def _drop(session: CaptureSession, pending: _Pending) -> None:
        for frame in (pending.owner, session.owner()):
            if frame is not None and frame.pending:
                frame.pending = [p for p in frame.pending if p is not pending] or None

    def _record(self, session: CaptureSession, pending: _Pending) -> bool:
        owner, probs = pending.owner, pending.probs
        pending.done = True
        t = probs.movedim(pending.key_dim, -1)
        window = getattr(owner.module, "one_sided_attn_window_size", None)
        if isinstance(window, int):
            if probs.ndim != 4 or pending.key_dim != 3 or probs.shape[-1] != 2 * window + 1:
                session.note(f"{owner.name}: Longformer attention with global tokens "
                             f"(softmax of shape {list(probs.shape)}) not recorded")
                return False
            dense = band_to_dense(probs, window)
        else:
            dense = session.fit(owner, t, "softmax")
        if dense is None:
            return False
        kind = session.dense_kind(owner, lengths=(dense.shape[-2], dense.shape[-1]))
        m = session.record(owner, dense, kind=kind, source="softmax")
        pending.recorded = m is not None
        # an effective matrix lines up only when the map is a view of the softmax output
        plain = to_dense_layout(t, -1)
        if dense.shape == plain.shape and dense.data_ptr() == plain.data_ptr():
            pending.record = m
            if m is not None and pending.scores is not None and pending.key_dim == probs.ndim - 1:
                attach_qk(session, m, owner, pending.scores)
        pending.scores = None
        return pending.recorded

    def _frame_end(self, session: CaptureSession, frame: Frame) -> None:
        """Candidates without evidence go to the caller once, then are noted."""
        parent = session.owner()
        for pending in frame.pending or ():
            if pending.done:
                continue
            if not pending.moved and parent is not None:
                pending.moved = True
                parent.pending = [*(parent.pending or [])[-3:], pending]
                continue
            session.note(
                f"{pending.owner.name or '<root>'}: softmax over axis {pending.key_dim} of "
                f"shape {list(pending.probs.shape)} not recorded: no query-key product "
                "before it and it never multiplied values (a feature softmax, as in linear "
                "attention?); pass include= to record it anyway")
        frame.pending = None

    @staticmethod
    def _keep_effective(session: CaptureSession, pending: _Pending, used: torch.Tensor) -> None:
        m = pending.record
        if m is None:
            return
        eff, _, _ = session.select(to_dense_layout(used.detach(), pending.key_dim), m.module,
                                   graph=False)
        m.effective = session.detach_copy(session.selection.finish(eff, 1), (used,))
        if m.qk is not None and m.reduced is None:  # a relative bias: q/k form for it too
            m.effective_bias = effective_bias(session, pending, eff, m)
