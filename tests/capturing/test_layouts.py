"""The layout check: every recorded map is (batch, head, query, key) of its call, or it
is not recorded and ``rec.notes`` says why. Ground truth is a softmax written by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnscope
from tests.capturing import layout_models as lm

TOL = 2e-5


def _capture(model, *inputs, **options):
    with torch.no_grad(), attnscope.capture(model, **options) as rec:
        model(*inputs)
    return rec


def _x(batch=3, tokens=8):
    torch.manual_seed(0)
    return torch.randn(batch, tokens, 16)


def test_linear_attention_feature_softmax_is_not_recorded_and_the_error_says_why():
    model = lm.LinearAttention().eval()
    with pytest.raises(attnscope.NoAttentionFoundError, match="feature softmax") as err:
        _capture(model, _x())
    assert "\n" not in str(err.value)


def test_linear_attention_beside_real_attention_leaves_a_note():
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear_attn, self.attn = lm.LinearAttention(), lm.Attention()

        def forward(self, x):
            return self.linear_attn(x) + self.attn(x)

    rec = _capture(Both().eval(), _x())
    assert rec.modules == ["attn"]
    assert any(n.startswith("linear_attn:") for n in rec.notes)


@pytest.mark.parametrize("cls", [lm.FoldedAttention, lm.FoldedSdpaAttention])
@pytest.mark.parametrize("order", ["batch", "head"])
def test_heads_folded_into_the_batch_are_unfolded(cls, order):
    torch.manual_seed(0)
    model = cls(order).eval()
    x = _x()
    pad = torch.zeros(3, 8, dtype=torch.bool)
    pad[1, 6:], pad[2, 3:] = True, True  # masked keys tell the fold order apart
    rec = _capture(model, x, pad)
    (m,) = rec.maps
    expected = model.expected(x, pad)
    assert m.weights.shape == (3, 2, 8, 8)
    assert (m.weights - expected).abs().max() < TOL


def test_folded_heads_without_declared_heads_use_the_call_batch():
    torch.manual_seed(0)
    model = lm.FoldedAttention("batch", declare=False).eval()
    x = _x()
    (m,) = _capture(model, x).maps
    assert (m.weights - model.expected(x)).abs().max() < TOL


def test_non_overlapping_local_windows_are_rebuilt_dense():
    torch.manual_seed(0)
    model = lm.LocalWindowAttention().eval()
    x = _x()
    (m,) = _capture(model, x).maps
    assert m.weights.shape == (3, 2, 8, 8)
    assert (m.weights - model.expected(x)).abs().max() < TOL


def test_overlapping_windows_are_refused_with_a_note():
    model = lm.LocalWindowAttention(look_back=True).eval()
    with pytest.raises(attnscope.NoAttentionFoundError, match="local-window"):
        _capture(model, _x())


def test_query_subset_of_unknown_positions_is_refused_with_a_note():
    class SubsetAttention(nn.Module):  # 3 query rows made elsewhere: positions unknown
        def forward(self, x, q, k):
            return (q @ k.transpose(-1, -2)).softmax(-1) @ k + x.mean()

    q, k = torch.randn(3, 2, 3, 8), torch.randn(3, 2, 8, 8)
    with pytest.raises(attnscope.NoAttentionFoundError, match="query subset"):
        _capture(SubsetAttention(), _x(), q, k)


def test_attend_mha_and_parent_named_modules_are_attention():
    torch.manual_seed(0)
    model = lm.NamedBlocks().eval()
    x = _x()
    rec = _capture(model, x)
    assert rec.modules == ["attend", "token_attend", "mha", "attn.core"]
    q, k, _ = model.split(x)
    for m in rec.maps:
        assert (m.weights - lm.reference(q, k)).abs().max() < TOL


def test_cross_attention_found_from_the_enclosing_block_and_the_key_length():
    torch.manual_seed(0)
    model = lm.CrossModel().eval()
    rec = _capture(model, _x(), torch.randn(3, 5, 16), torch.randn(3, 6, 16))
    assert [(m.module, m.kind) for m in rec.maps] == [
        ("self_block", "self"), ("cross_block.attention", "cross"), ("plain", "cross")]


def test_classifier_softmax_is_still_not_attention_under_the_wider_names():
    class AttnClassifier(nn.Module):  # attention-named model: its output softmax is not
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(x).softmax(-1)

    with pytest.raises(attnscope.NoAttentionFoundError):
        _capture(AttnClassifier(), torch.randn(2, 4))


def test_first_capture_does_not_import_dynamo():
    import subprocess
    import sys

    code = ("import sys, torch, attnscope; seed = torch.manual_seed\n"
            "m = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()\n"
            "x = torch.randn(1, 3, 8)\n"
            "with attnscope.capture(m) as rec: m(x, x, x)\n"
            "assert rec.maps and 'torch._dynamo' not in sys.modules, sorted(sys.modules)\n"
            "assert torch.manual_seed is seed\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(("back", "forward", "causal"),
                         [(0, 0, False), (1, 1, False), (1, 0, True), (2, 0, False)])
def test_local_attention_package_windows(back, forward, causal):
    """lucidrains' local-attention: (batch*head, window, query, key) chunks, the keys of
    ``back`` windows before and ``forward`` after concatenated: rebuilt dense."""
    local_attention = pytest.importorskip("local_attention",
                                          reason="local-attention is not installed")
    torch.manual_seed(0)
    attn = local_attention.LocalAttention(dim=8, window_size=4, look_backward=back,
                                          look_forward=forward, causal=causal,
                                          autopad=True).eval()
    q, k, v = (torch.randn(2, 2, 16, 8) for _ in range(3))
    with torch.no_grad(), attnscope.capture(attn) as rec:
        out = attn(q, k, v)
    (m,) = rec.maps
    assert m.weights.shape == (2, 2, 16, 16)
    assert (m.weights @ v - out).abs().max() < TOL  # the map really multiplies V
    block = torch.arange(16) // 4
    offset = block[None, :] - block[:, None]  # key window - query window
    outside = (offset < -back) | (offset > forward)
    assert torch.all(m.weights[..., outside] == 0)
    assert torch.all(torch.signbit(m.weights[..., outside]))  # never computed: masked
    if causal:
        assert torch.all(m.weights[..., torch.ones(16, 16).triu(1).bool()] == 0)
    if back or forward:
        assert any(f"{back} back, {forward} forward" in n for n in rec.notes)
    assert not any("assumed" in n for n in rec.notes), rec.notes


def test_sequence_first_model_with_folded_heads():
    torch.manual_seed(0)
    model = lm.SeqFirstModel().eval()
    x = torch.randn(5, 12, 16)  # 5 steps, 12 samples: the first axis is not the batch
    rec = _capture(model, x)
    (m,) = rec.maps
    assert not any("assumed" in n for n in rec.notes), rec.notes  # the reshape showed it
    assert m.weights.shape == (12, 2, 5, 5)
    assert (m.weights - model.self_attn.expected(x)).abs().max() < TOL
