"""``nn.MultiheadAttention`` (alone or inside ``nn.Transformer*``) via
``F.multi_head_attention_forward``.

The strategy only finds the call and its owner; the session records it
(:func:`attnscope.capturing.policy.record_mha`): re-issued with ``need_weights=True,
average_attn_weights=False`` (the caller gets back exactly what it asked for), or, with
dropout active, the caller's call untouched plus a second, dropout-free call, so
training sees the same computation and random numbers as without capture. While the
mode is active, ``nn.TransformerEncoderLayer`` skips its native fast path, so this
Python path runs.
"""

from __future__ import annotations

import inspect

import torch.nn.functional as F

from attnscope.capturing.calls import MhaCall
from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.session import CaptureSession

_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


@register_strategy
class MhaStrategy(Strategy):
    name = "mha"
    description = "nn.MultiheadAttention / nn.Transformer* (F.multi_head_attention_forward)"

    def handlers(self, session: CaptureSession):
        def handle(func, args, kwargs):
            owner = session.owner()
            if owner is None or not session.wants(owner, True):
                return func(*args, **kwargs)
            bound = _SIGNATURE.bind(*args, **kwargs)
            bound.apply_defaults()
            return session.record_call(MhaCall(owner, func, args, kwargs,
                                               dict(bound.arguments)))

        return {F.multi_head_attention_forward: handle}
