"""Value-weighted attention (Kobayashi et al. 2020) against a manual computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnscope
from attnscope.analysis import AnalysisError, value_weighted


def manual_mha(mha: torch.nn.MultiheadAttention, q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and alpha * ||(x W_V + b_V) W_O^h|| written out head by head."""
    e, h = mha.embed_dim, mha.num_heads
    dh = e // h
    w_v = mha.in_proj_weight[2 * e:] if mha._qkv_same_embed_dim else mha.v_proj_weight
    b_v = mha.in_proj_bias[2 * e:]
    vals = F.linear(v, w_v, b_v)  # (batch, key, embed)
    if mha.bias_v is not None:
        vals = torch.cat([vals, mha.bias_v.expand(vals.shape[0], 1, e)], 1)
    if mha.add_zero_attn:
        vals = torch.cat([vals, vals.new_zeros(vals.shape[0], 1, e)], 1)
    _, weights = mha(q, k, v, need_weights=True, average_attn_weights=False)
    out = torch.zeros_like(weights)
    for head in range(h):
        cols = slice(head * dh, (head + 1) * dh)
        f = vals[..., cols] @ mha.out_proj.weight[:, cols].T  # (batch, key, embed)
        out[:, head] = weights[:, head] * f.norm(dim=-1)[:, None, :]
    return weights, out


@pytest.mark.parametrize("variant", ["plain", "kvdim", "bias_kv_zero_attn"])
def test_mha_value_weighted_matches_the_definition(variant):
    torch.manual_seed(0)
    kw = {"kdim": 6, "vdim": 5} if variant == "kvdim" else (
        {"add_bias_kv": True, "add_zero_attn": True} if variant == "bias_kv_zero_attn" else {})
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True, **kw).eval()
    q = torch.randn(3, 4, 8)
    k = torch.randn(3, 6, kw.get("kdim", 8))
    v = torch.randn(3, 6, kw.get("vdim", 8))
    with torch.no_grad():
        weights, want = manual_mha(mha, q, k, v)
        with attnscope.capture(mha, value_weighted=True) as rec:
            mha(q, k, v)
    m = rec.maps[0]
    torch.testing.assert_close(m.weights, weights)
    torch.testing.assert_close(m.value_weighted, want, rtol=1e-5, atol=1e-6)
    # normalised rows compare with the weights; a key with a large value vector gains
    assert torch.tensor(value_weighted(m, normalize=True)).sum(-1).allclose(torch.ones(3, 2, 4))


class GQA(torch.nn.Module):
    """sdpa with 4 query heads sharing 2 key/value heads."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.kv = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    def forward(self, x):
        b, n, _ = x.shape
        q = self.q(x).view(b, n, 4, 2).transpose(1, 2)
        k, v = self.kv(x).view(b, n, 2, 4).transpose(1, 2).split(2, dim=-1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


@pytest.mark.parametrize("options", [{}, {"heads": [1, 3]}, {"samples": [1]},
                                     {"reduce": "mean"}])
def test_sdpa_value_weighted_is_alpha_times_value_norm(options):
    torch.manual_seed(1)
    model = GQA().eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad(), attnscope.capture(model, **options) as plain:
        model(x)
    with torch.no_grad(), attnscope.capture(model, value_weighted=True, **options) as rec:
        model(x)
    with torch.no_grad():
        b, n, _ = x.shape
        _, v = model.kv(x).view(b, n, 2, 4).transpose(1, 2).split(2, dim=-1)
        norms = v.norm(dim=-1).repeat_interleave(2, dim=1)  # query head h uses kv head h//2
        with attnscope.capture(model) as ref:
            model(x)
        want = ref.maps[0].weights * norms[:, :, None, :]
    heads = options.get("heads", list(range(4)))
    samples = options.get("samples", [0, 1])
    want = want[samples][:, heads]
    if options.get("reduce"):
        want = want.mean(1, keepdim=True)
    m = rec.maps[0]
    torch.testing.assert_close(m.weights, plain.maps[0].weights)  # weights unchanged
    torch.testing.assert_close(m.value_weighted, want, rtol=1e-5, atol=1e-6)


def test_maps_without_values_say_how_to_get_them():
    mha = torch.nn.MultiheadAttention(8, 2).eval()
    x = torch.randn(3, 1, 8)
    with torch.no_grad(), attnscope.capture(mha) as rec:
        mha(x, x, x)
    assert rec.maps[0].value_weighted is None
    with pytest.raises(AnalysisError, match="value_weighted=True"):
        value_weighted(rec.maps[0])
