"""``F.scaled_dot_product_attention``, however the caller imported it.

The fused kernel never materialises the probabilities, so they are recomputed from the
same q, k, mask, causal flag, scale and grouped-query layout, one block of queries at a
time: the full score tensor is never held twice. When the probabilities of every head
and sample are computed anyway and no gradient or dropout is involved, the output is
taken as ``probs @ v`` from the same block instead of running the kernel a second time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnscope.capture.registry import Strategy, register_strategy
from attnscope.capture.session import CaptureSession

# scores of at most this many elements are alive at once (float32: 128 MB)
BLOCK_ELEMENTS = 32 * 1024 * 1024
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
              "enable_gqa")


def _to_4d(t: torch.Tensor) -> torch.Tensor:
    """``(..., head, seq, dim)`` as ``(batch, head, seq, dim)``; 3-D is one head."""
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3:
        return t[:, None]
    if t.ndim > 4:
        return t.flatten(0, t.ndim - 4)
    return t


def sdpa_probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    value: torch.Tensor | None = None,
    samples: list[int] | None = None,
    heads: list[int] | None = None,
    out_dtype: torch.dtype | None = None,
    block_elements: int = BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax probabilities of an sdpa call, ``(batch, head, query, key)``.

    Grouped-query attention (fewer key heads than query heads) maps query head ``h`` to
    key head ``h // (Hq // Hk)``. With ``value``, also returns the attention output in
    the 4-D layout (only meaningful without a sample/head selection).
    """
    q4, k4 = _to_4d(query), _to_4d(key)
    batch, num_heads, q_len, dim = q4.shape
    k_len, kv_heads = k4.shape[-2], k4.shape[1]
    group = num_heads // kv_heads
    mask4 = None
    if attn_mask is not None:
        mask4 = _to_4d(attn_mask.expand(*query.shape[:-2], q_len, k_len))
    if samples is not None:
        q4 = q4[samples]
        k4 = k4[samples] if k4.shape[0] > 1 else k4
        mask4 = mask4[samples] if mask4 is not None and mask4.shape[0] > 1 else mask4
    head_list = heads if heads is not None else list(range(num_heads))
    if heads is not None:
        q4 = q4[:, heads]
        mask4 = mask4[:, heads] if mask4 is not None and mask4.shape[1] > 1 else mask4
    if group > 1 or heads is not None:
        k4 = k4[:, [h // group for h in head_list]] if k4.shape[1] > 1 else k4
    v4 = None
    if value is not None:
        v4 = _to_4d(value)
        if group > 1:
            v4 = v4[:, [h // group for h in head_list]]

    compute = torch.promote_types(query.dtype, torch.float32)
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    key_t = k4.transpose(-1, -2).to(compute)
    n, h = q4.shape[0], q4.shape[1]
    probs = torch.empty(n, h, q_len, k_len, dtype=out_dtype or compute)
    out = None if v4 is None else torch.empty(n, h, q_len, v4.shape[-1], dtype=value.dtype)
    rows = max(1, block_elements // max(1, n * h * k_len))
    masked = is_causal or mask4 is not None
    for start in range(0, q_len, rows):
        stop = min(q_len, start + rows)
        scores = torch.matmul(q4[:, :, start:stop].to(compute) * scale, key_t)
        if is_causal:
            rows_i = torch.arange(start, stop, device=scores.device).unsqueeze(1)
            future = torch.arange(k_len, device=scores.device) > rows_i
            scores.masked_fill_(future, float("-inf"))
        if mask4 is not None:
            block = mask4[:, :, start:stop]
            if block.dtype == torch.bool:
                scores.masked_fill_(~block, float("-inf"))
            else:
                scores += block.to(compute)
        if masked:
            dead = scores.amax(dim=-1, keepdim=True) == float("-inf")
        block_probs = torch.softmax(scores, dim=-1)
        if masked:
            block_probs.masked_fill_(dead, 0.0)  # fully masked query: zeros, as sdpa gives
        if out is not None:
            out[:, :, start:stop] = torch.matmul(block_probs.to(v4.dtype), v4)
        probs[:, :, start:stop] = block_probs
    return probs, out


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
            if kv_heads != num_heads and not bound.get("enable_gqa", False):
                return func(*args, **kwargs)  # invalid call: let torch raise its own error
            sel = session.selection
            samples = sel.sample_index(batch)
            if samples == []:
                return func(*args, **kwargs)
            heads = sel.head_index(num_heads, owner.name)
            needs_grad = torch.is_grad_enabled() and any(
                t.requires_grad for t in (query, key, value)
            )
            # one pass gives both when every probability is computed anyway
            reuse = (sel.samples is None and sel.heads is None and not needs_grad
                     and dropout_p == 0.0 and query.device.type == "cpu")
            with torch.no_grad():
                probs, out = sdpa_probabilities(
                    query, key, bound.get("attn_mask"), bool(bound.get("is_causal", False)),
                    bound.get("scale"), value=value if reuse else None, samples=samples,
                    heads=heads,
                    out_dtype=sel.dtype if sel.reduce is None else None,
                )
            if reuse:
                result = out.reshape(*query.shape[:-1], value.shape[-1])
            else:
                result = func(*args, **kwargs)
            session.record(owner, probs, kind=session.dense_kind(owner), source="sdpa",
                           selected=True, heads=heads, samples=samples, owned=True)
            return result

        return {F.scaled_dot_product_attention: handle}
