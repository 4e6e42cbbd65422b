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
a note. A softmax in a module *not* named like attention is not recorded (unless
``include``d), but the same evidence puts one line in ``rec.notes`` naming the module
and the ``include=`` that records it; a softmax without evidence there (a classifier's)
is not attention and is not mentioned. ``include``d modules record every softmax.
After a recorded softmax, the first matmul of its module on a tensor of the same shape
tells whether the probabilities changed on the way to V (a relative bias added after
the softmax); if so, that matrix is kept as ``AttentionMap.effective``.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from attnscope.capturing import aliases, provenance
from attnscope.capturing.frames import Frame
from attnscope.capturing.layout import band_to_dense
from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.selection import to_dense_layout
from attnscope.capturing.session import CaptureSession
from attnscope.capturing.strategies._products import (
    Pending,
    batch_rows,
    contracts_last,
    is_weight,
    note_skipped,
    operands,
    same_scores,
    softmax_dim,
)
from attnscope.capturing.strategies._softmax_qk import (
    attach_qk,
    form_qk,
    keep_effective,
    product_operands,
)

# where torch exposes each function (aliases.py says why not the function itself)
_SOFTMAXES = aliases.sites("softmax", F, torch, torch.Tensor, torch.special)
_SAME = aliases.sites("dropout", F, torch) + aliases.sites("to type_as float contiguous",
                                                           torch.Tensor)
_MATMULS = aliases.sites("matmul bmm baddbmm einsum", torch, torch.Tensor) + \
    aliases.sites("__matmul__", torch.Tensor)
_MULS = aliases.sites("mul __mul__ __rmul__", torch, torch.Tensor)
_KEEP_PRODUCTS = 8


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
            named = session.attention_named()
            wanted = session.wants(owner, named)
            if not wanted:
                session.note_ignored_softmax(owner)
                if named or not session.wants(owner, True):
                    return out  # the user's include/exclude left it out
            key_dim = softmax_dim(args, kwargs, out.ndim)
            scores = args[0]
            tracker = provenance.of(session)
            if tracker.picked(scores) and not session.include:
                session.note(f"{owner.name or '<root>'}: softmax over {out.shape[key_dim]} "
                             "values picked by topk (Autoformer-style lags), not attention "
                             "over keys: not recorded")
                return out
            pending = Pending(out, key_dim, owner, same=[out], skipped=not wanted,
                              evidence=tracker.evidence(scores, owner))
            from_product = isinstance(scores, torch.Tensor) and any(
                same_scores(entry[0], scores.shape) for entry in owner.products)
            if pending.skipped:  # not attention by name: say so if it looks like it
                if from_product:
                    note_skipped(session, pending, "over a query-key product")
                else:
                    owner.pending = [*(owner.pending or [])[-3:], pending]
                return out
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

        table = aliases.table(_SOFTMAXES, on_softmax)
        table.update(aliases.table(_SAME, on_same))
        table.update(aliases.table(_MATMULS, on_matmul))
        table.update(aliases.table(_MULS, on_mul))
        return table

    @staticmethod
    def _waiting(session: CaptureSession) -> list[Pending]:
        """Candidates of the innermost module call (and those handed up to it)."""
        owner = session.owner()
        return list(owner.pending or ()) if owner is not None else []

    def _on_product(self, session: CaptureSession, pending: Pending, equation, ops) -> None:
        probs, key_dim = pending.probs, pending.key_dim
        keys = probs.shape[key_dim]
        if pending.recorded:  # does V see the probabilities as they are?
            if equation == "*":
                return
            for t in ops:
                if isinstance(t, torch.Tensor) and t.shape == probs.shape:
                    self._drop(session, pending)
                    if not pending.is_same(t):
                        keep_effective(session, pending, t)
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
            if pending.skipped and equation == "*":
                return  # an elementwise product (a loss, say) is no evidence here
            if one_d:
                evidence = any(keys in o.shape for o in others)
            else:
                products = [entry[1]() for entry in pending.owner.products]
                evidence = (equation != "*" and t.shape[-1] == keys
                            and key_dim == probs.ndim - 1
                            and contracts_last(equation, index, t.ndim)
                            and not any(o is p for o in others for p in products))
            if evidence and pending.skipped:
                note_skipped(session, pending, "whose output multiplies values")
            elif evidence:
                self._record(session, pending)
            return

    @staticmethod
    def _drop(session: CaptureSession, pending: Pending) -> None:
        for frame in (pending.owner, session.owner()):
            if frame is not None and frame.pending:
                frame.pending = [p for p in frame.pending if p is not pending] or None

    def _record(self, session: CaptureSession, pending: Pending) -> bool:
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
            evidence = pending.evidence if pending.key_dim == probs.ndim - 1 else {
                k: v for k, v in pending.evidence.items() if k == "fold"}
            dense = session.fit(owner, t, "softmax", evidence=evidence)
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
            if pending.skipped:  # no evidence either way: not attention (a classifier's)
                continue
            session.note(
                f"{pending.owner.name or '<root>'}: softmax over axis {pending.key_dim} of "
                f"shape {list(pending.probs.shape)} not recorded: no query-key product "
                "before it and it never multiplied values (a feature softmax, as in linear "
                "attention?); pass include= to record it anyway")
        frame.pending = None
