"""The convtran family: head-mean softmax and effective matrices per epoch, all heads of
one sample aside; the eRPE layer (and the real tsai ConvTranPlus when installed)
captured and checked against a manual computation."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import attnscope
from attnscope.demos.families.convtran import LENGTH, SHARE, RelativeScaledAttention


def test_trained_attention_concentrates_on_the_motif(demo_run):
    _, result = demo_run("convtran")
    assert result.metric >= 4 * SHARE


def test_store_holds_head_mean_softmax_and_effective_per_epoch(demo_run):
    out, _ = demo_run("convtran")
    store = attnscope.open_store(out / "store")
    assert set(store.modules) == {"model.attention", "model.attention@effective"}
    w = store.read("model.attention", step="test")
    assert w.shape == (8, 1, LENGTH, LENGTH)
    assert abs(float(w[0, 0].sum(-1).mean()) - 1) < 1e-2  # softmax rows (float16)
    heads = attnscope.open_store(out / "store_heads")
    assert heads.read("model.attention", step="test").shape == (1, 8, LENGTH, LENGTH)


def test_summary_names_the_effective_matrix(demo_run):
    out, _ = demo_run("convtran")
    assert "effective" in (out / "summary.md").read_text()


def _manual(layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax output and post-bias matrix of an Attention_Rel_Scl-style layer."""
    b, n, _ = x.shape
    heads = layer.n_heads if hasattr(layer, "n_heads") else layer.heads
    q = layer.query(x).reshape(b, n, heads, -1).transpose(1, 2)
    k = layer.key(x).reshape(b, n, heads, -1).transpose(1, 2)
    probs = torch.softmax(q @ k.transpose(-2, -1) * layer.scale, dim=-1)
    i = torch.arange(n)
    bias = layer.relative_bias_table[i[:, None] - i[None, :] + n - 1]  # (query, key, head)
    return probs, probs + bias.permute(2, 0, 1)


def test_own_layer_weights_and_effective_match_a_manual_computation():
    torch.manual_seed(0)
    layer = RelativeScaledAttention(16, 50).eval()
    with torch.no_grad():
        layer.relative_bias_table.normal_(0, 0.1)
    x = torch.randn(2, 50, 16)
    with torch.no_grad(), attnscope.capture(layer) as rec:
        layer(x)
    probs, effective = _manual(layer, x)
    (m,) = rec.maps
    torch.testing.assert_close(m.weights, probs)
    torch.testing.assert_close(m.effective, effective)


@pytest.mark.skipif(importlib.util.find_spec("tsai") is None,
                    reason="tsai is not installed (optional: pip install tsai with torch "
                           "pinned, then pip uninstall torchvision)")
def test_real_tsai_convtranplus_matches_a_manual_computation():
    from tsai.models.ConvTranPlus import ConvTranPlus

    torch.manual_seed(0)
    model = ConvTranPlus(c_in=2, c_out=3, seq_len=64).eval()
    attention = model.backbone.attention_layer
    with torch.no_grad():
        attention.relative_bias_table.normal_(0, 0.1)
    x = torch.randn(3, 2, 64)
    seen = {}
    handle = attention.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    with torch.no_grad(), attnscope.capture(model) as rec:
        out = model(x)
    handle.remove()
    torch.testing.assert_close(out, model(x))
    (m,) = rec.maps
    assert m.module == "backbone.attention_layer" and m.weights.shape == (3, 8, 64, 64)
    probs, effective = _manual(attention, seen["x"])
    torch.testing.assert_close(m.weights, probs)
    torch.testing.assert_close(m.effective, effective)
