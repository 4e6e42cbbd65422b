"""sdpa recomputation against a softmax written out by hand, for every argument sdpa
takes, and block-wise computation equal to the one-shot result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.capturing import sdpa_probabilities


def reference(q, k, mask=None, causal=False, scale=None):
    if q.ndim >= 3:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scores = (q.double() @ k.double().transpose(-1, -2)) * (scale or q.shape[-1] ** -0.5)
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool \
            else scores + mask.double()
    probs = scores.softmax(-1)
    return torch.nan_to_num(probs, nan=0.0).float()


@pytest.fixture
def qkv():
    torch.manual_seed(0)
    return torch.randn(2, 4, 7, 8), torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)


def test_bool_mask_with_a_fully_masked_query(qkv):
    q, k, v = qkv
    mask = torch.rand(2, 1, 7, 9) > 0.3
    mask[1, 0, 2] = False  # query 2 of sample 1 may see nothing
    probs, out = sdpa_probabilities(q, k, mask, value=v)
    assert (probs - reference(q, k, mask)).abs().max() < 2e-6
    assert torch.all(probs[1, :, 2] == 0)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                          atol=1e-5)


def test_additive_mask_scale_and_causal(qkv):
    q, k, _ = qkv
    mask = torch.randn(7, 9)
    probs, _ = sdpa_probabilities(q, k, mask, is_causal=False, scale=0.3)
    assert (probs - reference(q, k, mask, scale=0.3)).abs().max() < 2e-6
    probs, _ = sdpa_probabilities(q, k[..., :7, :], is_causal=True)
    assert (probs - reference(q, k[..., :7, :], causal=True)).abs().max() < 2e-6


@pytest.mark.parametrize("budget", [1, 9, 7 * 9, 4 * 7 * 9 + 1, 10**9])
def test_blocks_give_the_same_result(qkv, budget):
    q, k, v = qkv
    mask = torch.rand(2, 4, 7, 9) > 0.2
    full, out_full = sdpa_probabilities(q, k, mask, value=v)
    part, out_part = sdpa_probabilities(q, k, mask, value=v, block_elements=budget)
    assert (full - part).abs().max() < 1e-6
    assert torch.allclose(out_full, out_part, atol=1e-6)


def test_grouped_query_heads_with_selection(qkv):
    q, k, _ = qkv
    k2 = k[:, :2]  # 4 query heads share 2 key heads
    probs, _ = sdpa_probabilities(q, k2, samples=[1], heads=[3, 0])
    expected = reference(q, k2)[[1]][:, [3, 0]]
    assert (probs - expected).abs().max() < 2e-6


def test_half_precision_inputs_are_computed_in_float32():
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 5, 8).bfloat16(), torch.randn(1, 2, 5, 8).bfloat16()
    probs, _ = sdpa_probabilities(q, k)
    assert probs.dtype == torch.float32
    assert (probs - reference(q.float(), k.float())).abs().max() < 2e-6


class Caller(nn.Module):
    """Imports sdpa under another name, as many codebases do."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, q, k, v):
        from torch.nn.functional import scaled_dot_product_attention as attend

        return attend(q, k, v, **self.kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}, {"scale": 0.1}])
def test_capture_through_an_alias_with_unbatched_and_3d_inputs(kwargs):
    torch.manual_seed(0)
    model = Caller(**kwargs)
    for shape in [(5, 8), (3, 5, 8), (2, 3, 5, 8)]:
        q, k, v = (torch.randn(*shape) for _ in range(3))
        with attnscope.capture(model) as rec:
            out = model(q, k, v)
        assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, **kwargs), atol=1e-6)
        expected = reference(q, k, causal=kwargs.get("is_causal", False),
                             scale=kwargs.get("scale"))
        w = rec.maps[0].weights
        assert w.ndim == 4
        assert (w.reshape(expected.shape) - expected).abs().max() < 2e-6


def test_invalid_call_raises_torchs_own_error():
    model = Caller()
    q, k = torch.randn(1, 4, 5, 8), torch.randn(1, 3, 5, 8)  # heads don't divide
    with pytest.raises(RuntimeError), attnscope.capture(model):
        model(q, k, k)


def test_gradients_flow_as_without_capture():
    torch.manual_seed(0)
    model = Caller(is_causal=True)
    q, k, v = (torch.randn(2, 2, 6, 4, requires_grad=True) for _ in range(3))
    model(q, k, v).sum().backward()
    plain = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    with attnscope.capture(model) as rec:
        model(q, k, v).sum().backward()
    assert all(torch.allclose(a, t.grad, atol=1e-6) for a, t in zip(plain, (q, k, v)))
    assert not rec.maps[0].weights.requires_grad


class Repeats(nn.Module):
    """Attention over each sample three times, the copies folded into the batch axis."""

    def forward(self, x):  # (batch, seq, feature)
        q = x.repeat(3, 1, 1).unsqueeze(1)  # (3 * batch, 1 head, seq, feature)
        return F.scaled_dot_product_attention(q, q, q)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = Repeats()

    def forward(self, x):
        return self.attn(x) + self.attn(x)


def test_layout_checks_remembered_across_captures_keep_notes_and_exact_maps():
    """The sdpa layout check is remembered per module and shape across captures: a
    later capture must still say what the first one said, and stay exact when the call
    shape changes."""
    torch.manual_seed(0)
    # the same module called twice per forward: its second call's note is one that
    # rec.notes already holds, and must not let the check be skipped later
    folded, plain = Twice(), Caller()
    for batch in (2, 2, 3):
        x = torch.randn(batch, 5, 8)
        q = torch.randn(batch, 2, 5, 8)
        with attnscope.capture(folded) as rec_folded, attnscope.capture(plain) as rec_plain:
            folded(x)
            plain(q, q, q)
        assert any(f"holds {3 * batch} rows for a model call of {batch}" in n
                   for n in rec_folded.notes), rec_folded.notes
        assert rec_plain.notes == []
        want = reference(x.repeat(3, 1, 1).unsqueeze(1), x.repeat(3, 1, 1).unsqueeze(1))
        assert len(rec_folded.maps) == 2
        assert all((m.weights - want).abs().max() < 2e-6 for m in rec_folded.maps)
        assert (rec_plain.maps[0].weights - reference(q, q)).abs().max() < 2e-6
