"""``F.scaled_dot_product_attention``, however the caller imported it.

The fused kernel never materialises the probabilities, so they are recomputed from the
same q, k, mask, causal flag, scale and grouped-query layout, one block of queries at a
time: the full score tensor is never held twice. When the probabilities of every head
and sample are computed anyway and no gradient or dropout is involved, the output is
taken as ``probs @ v`` from the same block instead of running the kernel a second time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.session import CaptureSession
from attnscope.kernels import sdpa_probabilities

_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
              "enable_gqa")


@register_strategy
class SdpaStrategy(Strategy):
    name = "sdpa"
    description = "F.scaled_dot_product_attention calls (HF sdpa models, custom code)"

    def handlers(self, session: CaptureSession):
        def handle(func, args, kwargs):
            owner = session.owner()
            if owner is None or not session.wants(owner, True):
                return func(*args, **kwargs)
            bound = dict(zip(_SDPA_ARGS, args))
            bound.update(kwargs)
            query, key, value = bound["query"], bound["key"], bound["value"]
            dropout_p = bound.get("dropout_p", 0.0)
            batch = query.shape[0] if query.ndim >= 3 else 1
            num_heads = query.shape[-3] if query.ndim >= 3 else 1
            kv_heads = key.shape[-3] if key.ndim >= 3 else 1
            # one key head broadcasts over the query heads (multi-query attention)
            invalid = (kv_heads not in (num_heads, 1) and not bound.get("enable_gqa", False)) or (
                bound.get("is_causal", False) and bound.get("attn_mask") is not None)
            if invalid:
                return func(*args, **kwargs)  # let torch raise its own error
            needs_grad = torch.is_grad_enabled() and any(
                t.requires_grad for t in (query, key, value)
            )
            mask, causal = bound.get("attn_mask"), bool(bound.get("is_causal", False))
            shape = (*query.shape[:-1], key.shape[-2])
            plain = query.ndim == 4
            if plain:  # the layout check on shapes alone: nothing is computed
                fitted = session.fit(owner, torch.empty(shape, device="meta"),
                                     "sdpa probabilities")
                if fitted is None:
                    return func(*args, **kwargs)
                plain = tuple(fitted.shape) == shape
            if not plain:
                # heads folded into the batch or packed into the query axis: compute all
                # of it, then let the layout check unfold or refuse it
                with torch.no_grad():
                    probs, _ = sdpa_probabilities(query, key, mask, causal, bound.get("scale"))
                result = func(*args, **kwargs)
                dense = session.fit(owner, probs.flatten(0, 1) if query.ndim == 3
                                    else probs, "sdpa probabilities")
                if dense is not None:
                    m = session.record(owner, dense, kind=session.dense_kind(
                        owner, lengths=tuple(dense.shape[-2:])), source="sdpa", owned=True)
                    from attnscope.capturing import _qk  # hook: issue 16

                    if m is not None and _qk.session_form(session) != "probs":
                        # a qk store keeps this map as probabilities, with this note
                        m.qk_note = ("the layout check rebuilt this map (heads packed into "
                                     "the query axis or folded into the batch)")
                return result
            sel = session.selection
            samples = session.sample_rows(batch)
            if samples == []:
                return func(*args, **kwargs)
            heads = sel.head_index(num_heads, owner.name)
            from attnscope.capturing import _qk  # hook: query/key store form (issue 16)

            if _qk.session_form(session) != "probs":
                result = func(*args, **kwargs)
                _qk.record_sdpa(session, owner, bound, samples, heads)
                return result
            # one pass gives both when every probability is computed anyway
            reuse = (samples is None and heads is None and not needs_grad
                     and dropout_p == 0.0 and query.device.type == "cpu")
            with torch.no_grad():
                probs, out = sdpa_probabilities(
                    query, key, mask, causal, bound.get("scale"),
                    value=value if reuse else None, samples=samples, heads=heads,
                    out_dtype=sel.dtype if sel.reduce is None else None, module=owner.name,
                )
            if reuse:
                result = out.reshape(*query.shape[:-1], value.shape[-1])
            else:
                result = func(*args, **kwargs)
            vw = None
            if getattr(session, "value_weighted", False):  # opt-in: alpha * ||v_j||
                from attnscope.capturing.value import sdpa_value_norms, weighted

                vw = weighted(probs, sdpa_value_norms(value, num_heads, samples, heads))
            m = session.record(owner, probs, kind=session.dense_kind(
                owner, lengths=(query.shape[-2], key.shape[-2])), source="sdpa",
                selected=True, heads=heads, samples=samples, owned=True)
            if vw is not None and m is not None:
                m.value_weighted = sel.finish(vw, 1)
            return result

        return {F.scaled_dot_product_attention: handle}
