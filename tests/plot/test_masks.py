"""Figures hide what the model masked (recorded at capture), never a weight that only
rounded to zero in a float16 store; head means say so; 1-D attention is drawn as bars;
CLI figures carry the labels the store holds. The model is none of the zoo's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import attnscope
from attnscope.cli import main
from attnscope.cli.plot_command import _figures
from attnscope.plot import plot_heads, plot_heatmap
from attnscope.store import open_store, open_writer

T, D = 7, 8
TOKENS = ["<s>", "el", "gato", "come", "pan", "<pad>", "<pad>"]


class CausalMix(nn.Module):
    """Causal self-attention through sdpa with sharp scores (many weights < 6e-8)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(h).unflatten(-1, (3, 2, D // 2)).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=400.0).transpose(1, 2
                                                                                       ).flatten(2)


class Pool(nn.Module):
    """1-D attention over the time steps (one weight per token)."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(D, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        w = F.softmax(self.score(h).squeeze(-1), dim=-1)  # (batch, time)
        return (w[..., None] * h).sum(1)


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, D)
        self.padded_mix = nn.MultiheadAttention(D, 2, batch_first=True)
        self.causal_mix = CausalMix()
        self.pool_attention = Pool()

    def forward(self, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        h = self.padded_mix(h, h, h, key_padding_mask=pad)[0]
        return self.pool_attention(self.causal_mix(h))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    torch.manual_seed(1)
    model = Tagger().eval()
    ids = torch.randint(0, 20, (2, T))
    pad = torch.zeros(2, T, dtype=torch.bool)
    pad[0, 5:] = True
    root = tmp_path_factory.mktemp("m")
    for name, reduce in (("full", None), ("mean", "mean")):
        writer = open_writer(root / name, step="test", labels={"tokens": TOKENS})
        with torch.no_grad(), attnscope.capture(model, store=writer, reduce=reduce,
                                                include=["padded_mix", "causal_mix",
                                                         "pool_attention"]):
            model(ids, pad)
        writer.close()
    return open_store(root / "full"), open_store(root / "mean"), pad


def causal_mask() -> np.ndarray:
    return np.triu(np.ones((T, T), dtype=bool), 1)


def test_store_keeps_the_models_mask_apart_from_rounded_zeros(stores):
    full, _, pad = stores
    w = full.read("causal_mix", step="test")  # float16 on disk
    signed = (w == 0) & np.signbit(w)
    np.testing.assert_array_equal(signed, np.broadcast_to(causal_mask(), w.shape))
    rounded = (w == 0) & ~np.signbit(w)
    assert rounded.sum() > 0  # weights under float16's range: zeros that are not masks
    p = full.read("padded_mix", step="test")
    hidden = (p == 0) & np.signbit(p)
    np.testing.assert_array_equal(hidden.any(axis=(1, 2)), pad.numpy())


@pytest.mark.parametrize("head", [0, 1, "mean"])
def test_heatmap_hides_the_recorded_mask_only(stores, head):
    full, _, _ = stores
    fig = plot_heatmap(full, module="causal_mix", step="test", sample=1, head=head, dpi=40)
    np.testing.assert_array_equal(fig.axes[0].images[0].attnscope_mask, causal_mask())
    fig = plot_heads(full, module="padded_mix", step="test", sample=0, dpi=40)
    want = np.zeros((T, T), dtype=bool)
    want[:, 5:] = True
    for ax in fig.axes:
        if ax.images:
            np.testing.assert_array_equal(ax.images[0].attnscope_mask, want)


def test_head_means_are_titled_as_means(stores):
    full, mean, _ = stores
    title = plot_heatmap(mean, module="padded_mix", step="test", head=0).axes[0].get_title()
    assert "mean of" in title and "head 0" not in title
    title = plot_heatmap(full, module="padded_mix", step="test", head="mean").axes[0].get_title()
    assert "mean of 2 heads" in title


def test_cli_one_d_as_bars_and_store_labels(stores, tmp_path):
    full, _, _ = stores
    assert main(["plot", str(full.root), "--module", "pool_attention", "--kind", "heatmap",
                 "--out", str(tmp_path), "--dpi", "40"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["pool_attention_test_s0_hmean_bars.png"]
    ((_, fig),) = _figures(full, "heatmap", "pool_attention", "test", 0, "mean", "viridis", 40)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == TOKENS
    ((_, fig),) = _figures(full, "heatmap", "causal_mix", "test", 0, 1, "viridis", 40)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS
    assert all(float(t).is_integer() for t in ax.get_xticks()) and "head 1" in ax.get_title()


class LagAttention(nn.Module):
    """A relative lag bias added after the softmax (ConvTranPlus style): the matrix that
    multiplies V can be negative; tiny negative sums round to -0.0 in float16."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.q, self.k, self.v = (nn.Linear(D, D) for _ in range(3))
        lags = torch.arange(T)[:, None] - torch.arange(T)[None]
        self.register_buffer("lag_bias", -5e-9 * (lags.abs() + 1).float()[None])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = self.q(h) @ self.k(h).transpose(1, 2) * 30.0  # sharp: weights ~1e-12
        if self.causal:
            upper = torch.ones(T, T, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(upper, float("-inf"))
        probs = F.softmax(scores, dim=-1) + self.lag_bias
        return probs @ self.v(h)


@pytest.mark.parametrize("causal", [False, True])
def test_effective_matrix_hatches_only_what_the_model_masked(causal, tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(D, D), LagAttention(causal)).eval()
    h = torch.randn(2, T, D)
    with torch.no_grad(), attnscope.capture(model, include="1", store=tmp_path / "s",
                                            step="test", dtype="float16"):
        model(h)
    store = open_store(tmp_path / "s")
    assert store.modules == ["1", "1@effective"]
    eff = store.read("1@effective", step="test")
    assert ((eff == 0) & np.signbit(eff)).any()  # rounded negatives, not a mask
    want = causal_mask() if causal else np.zeros((T, T), dtype=bool)
    for sample in (0, 1):
        fig = plot_heatmap(store, module="1@effective", step="test", sample=sample, dpi=40)
        np.testing.assert_array_equal(fig.axes[0].images[0].attnscope_mask, want)
    from attnscope.plot import find_mask

    np.testing.assert_array_equal(find_mask(eff[0, 0]), np.isnan(eff[0, 0]))
