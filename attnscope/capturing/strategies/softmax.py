"""Softmax computed inside attention modules (hand-written attention, LSTM attention,
annotated-transformer style code).

Counted as attention: a softmax whose calling module (or the ``nn.Softmax`` it used) is
named like attention, or any softmax inside an ``include``d module. The softmax axis
becomes the key axis. After a recorded softmax, the first matmul of its module that
multiplies a tensor of the same shape tells whether the probabilities were changed on
the way to V (a relative position bias added after the softmax, say); if so, that
matrix is kept as ``AttentionMap.effective``. Dropout of the probabilities is not such
a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.selection import to_dense_layout
from attnscope.capturing.session import CaptureSession
from attnscope.maps import AttentionMap

_SOFTMAXES = (F.softmax, torch.softmax, torch.Tensor.softmax, torch.special.softmax)
_DROPOUTS = (F.dropout, torch.dropout)
_MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
            torch.Tensor.bmm, torch.einsum)


@dataclass
class _Pending:
    """A recorded softmax output and the tensors that are it, only dropped out."""

    probs: torch.Tensor
    key_dim: int
    record: AttentionMap
    same: list[torch.Tensor] = field(default_factory=list)


def _softmax_dim(func, args: tuple, kwargs: dict, ndim: int) -> int:
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:  # F.softmax's legacy implicit choice
        dim = 0 if ndim in (0, 1, 3) else 1
    return dim % max(ndim, 1)


@register_strategy
class SoftmaxStrategy(Strategy):
    name = "softmax"
    description = "softmax inside modules named like attention, or inside include= modules"

    def handlers(self, session: CaptureSession):
        def on_softmax(func, args, kwargs):
            out = func(*args, **kwargs)
            owner = session.owner()
            if owner is None or owner.name in session.claimed:
                return out
            if not session.wants(owner, session.attention_named()):
                session.note_ignored_softmax(owner)
                return out
            key_dim = _softmax_dim(func, args, kwargs, out.ndim)
            m = session.record(owner, to_dense_layout(out, key_dim),
                               kind=session.dense_kind(owner), source="softmax")
            if m is not None:
                owner.pending = _Pending(out, key_dim, m, [out])
            return out

        def on_dropout(func, args, kwargs):
            out = func(*args, **kwargs)
            owner = session.owner()
            pending = owner.pending if owner is not None else None
            if pending is not None and args and any(args[0] is t for t in pending.same):
                pending.same.append(out)
            return out

        def on_matmul(func, args, kwargs):
            owner = session.owner()
            pending = owner.pending if owner is not None else None
            if pending is not None:
                operands = args[1:] if func is torch.einsum else args
                if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
                    operands = tuple(operands[0])
                for t in operands:
                    if isinstance(t, torch.Tensor) and t.shape == pending.probs.shape:
                        owner.pending = None
                        if not any(t is s for s in pending.same):
                            self._keep_effective(session, pending, t)
                        break
            return func(*args, **kwargs)

        table = {f: on_softmax for f in _SOFTMAXES}
        table.update({f: on_dropout for f in _DROPOUTS})
        table.update({f: on_matmul for f in _MATMULS})
        return table

    @staticmethod
    def _keep_effective(session: CaptureSession, pending: _Pending, used: torch.Tensor) -> None:
        m = pending.record
        eff, _, _ = session.select(to_dense_layout(used.detach(), pending.key_dim), m.module,
                                   graph=False)
        m.effective = session.detach_copy(session.selection.finish(eff, 1), (used,))
