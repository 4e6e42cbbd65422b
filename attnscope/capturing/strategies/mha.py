"""``nn.MultiheadAttention`` (alone or inside ``nn.Transformer*``) via
``F.multi_head_attention_forward``.

In eval, the call is re-issued with ``need_weights=True, average_attn_weights=False`` and
the caller gets back exactly what it asked for. With dropout active, the weights that
call returns have been through dropout (and a softmax inside a handled call is invisible
to any mode), so the caller's call runs untouched and the probabilities come from a
second, dropout-free call on the same inputs: training sees the same computation and
random numbers as without capture. While the mode is active, ``nn.TransformerEncoderLayer``
skips its native fast path, so this Python path runs.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from attnscope._memory import check_map
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
            call = bound.arguments
            asked_weights, asked_mean = call["need_weights"], call["average_attn_weights"]
            query, key = call["query"], call["key"]
            from attnscope.capturing import _qk  # hook: query/key store form (issue 16)

            if _qk.session_form(session) != "probs" and not (
                    asked_weights and call["training"] and call["dropout_p"] > 0.0):
                same = query is key or (query.shape == key.shape
                                        and query.data_ptr() == key.data_ptr())
                return _qk.record_mha(session, owner, func, args, kwargs, dict(call),
                                      "self" if same else "cross")
            batch = query.shape[1] if query.ndim == 3 else 1  # (query, batch, embed)
            check_map(owner.name, (batch, call["num_heads"], query.shape[0], key.shape[0]),
                      query.element_size())
            call["need_weights"], call["average_attn_weights"] = True, False
            if call["training"] and call["dropout_p"] > 0.0:
                result = func(*args, **kwargs)
                call["training"], call["dropout_p"] = False, 0.0
                with torch.no_grad():
                    _, probs = func(**call)
            else:
                output, weights = func(**call)
                probs = weights
                result = (output, None) if not asked_weights else (
                    output, weights.mean(dim=-3) if asked_mean else weights)
            # probs: (batch, head, query, key), or (head, query, key) when unbatched
            if probs.ndim == 3:
                probs = probs.unsqueeze(0)
            same = query is key or (query.shape == key.shape
                                    and query.data_ptr() == key.data_ptr())
            hint = "self" if same else "cross"
            m = session.record(owner, probs, kind=session.dense_kind(owner, hint), source="mha")
            if m is not None and getattr(session, "value_weighted", False):
                from attnscope.capturing.value import mha_value_norms, weighted

                with torch.no_grad():  # opt-in: alpha * ||(x W_V + b_V) W_O^h||
                    vw, _, _ = session.select(weighted(probs, mha_value_norms(call)),
                                              owner.name, False)
                m.value_weighted = session.selection.finish(vw, 1)
            return result

        return {F.multi_head_attention_forward: handle}
