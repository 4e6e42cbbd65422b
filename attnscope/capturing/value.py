"""Norms of the transformed values, ``||f(x_j)||`` per (batch, head, key), for
value-weighted attention ``alpha_ij * ||f(x_j)||`` (Kobayashi et al., 2020), captured
with ``attnscope.capture(model, value_weighted=True)``.

* ``nn.MultiheadAttention``: ``f(x) = (x W_V + b_V) W_O^h``, the paper's definition with
  the head's slice of the output projection (``bias_v`` and ``add_zero_attn`` keys
  included, as the layer appends them).
* ``F.scaled_dot_product_attention``: ``f(x) = v``; the output projection is applied
  after the call by code the call cannot see.

Selections apply as to the weights; with ``reduce="mean"`` the result is the mean over
heads of the per-head maps (not the norm of the summed head outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def sdpa_value_norms(value: torch.Tensor, num_heads: int, samples: Sequence[int] | None,
                     heads: Sequence[int] | None) -> torch.Tensor:
    """``(batch, head, key)`` norms of an sdpa call's values, selection applied."""
    v = value.detach()
    v = v.reshape(1, 1, *v.shape) if v.ndim == 2 else v[:, None] if v.ndim == 3 else \
        v.flatten(0, v.ndim - 4)  # (batch, kv_head, key, dim)
    norms = v.float().norm(dim=-1)
    if samples is not None and norms.shape[0] > 1:
        norms = norms[list(samples)]
    group = max(1, num_heads // norms.shape[1])
    wanted = list(heads) if heads is not None else list(range(num_heads))
    if norms.shape[1] == 1:
        return norms.expand(-1, len(wanted), -1)
    return norms[:, [h // group for h in wanted]]


def mha_value_norms(call: dict[str, Any]) -> torch.Tensor:
    """``(batch, head, key)`` norms of ``(x W_V + b_V) W_O^h`` for the arguments of one
    ``F.multi_head_attention_forward`` call."""
    value = call["value"].detach()
    if value.ndim == 2:  # unbatched (key, embed)
        value = value.unsqueeze(1)
    keys, batch = value.shape[:2]
    embed, nh = call["embed_dim_to_check"], call["num_heads"]
    dh = embed // nh
    bias = call["in_proj_bias"]
    bv = None if bias is None else bias[2 * embed:]
    if call.get("static_v") is not None:
        v = call["static_v"].detach().reshape(batch, nh, -1, dh)
    else:
        weight = call["v_proj_weight"] if call["use_separate_proj_weight"] \
            else call["in_proj_weight"][2 * embed:]
        v = F.linear(value, weight, bv)  # (key, batch, embed)
        if call.get("bias_v") is not None:
            v = torch.cat([v, call["bias_v"].detach().repeat(1, batch, 1)])
        v = v.reshape(v.shape[0], batch, nh, dh).permute(1, 2, 0, 3)  # (batch, head, key, dh)
    if call.get("add_zero_attn"):
        v = torch.cat([v, v.new_zeros(batch, nh, 1, dh)], dim=2)
    w_out = call["out_proj_weight"].detach()  # (out, embed): head h uses columns h*dh..
    per_head = w_out.reshape(w_out.shape[0], nh, dh).permute(1, 2, 0)  # (head, dh, out)
    f = torch.einsum("bhkd,hdo->bhko", v.float(), per_head.float())
    return f.norm(dim=-1)


def weighted(probs: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """``alpha_ij * ||f(x_j)||``: ``(batch, head, query, key)`` in float32."""
    return probs.float() * norms[:, :, None, : probs.shape[-1]].to(probs.device)
