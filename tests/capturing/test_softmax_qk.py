"""Query/key form for hand-written softmax attention: ``softmax(scale * q @ k^T)`` is
stored as queries and keys (exact on read, a fraction of the size); scores that are
masked, or not such a product, stay probabilities with the store's one-line note."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.store import open_store

L, WIDTH, HEADS = 512, 16, 4


class LagAttention(nn.Module):
    """ConvTranPlus-like: scores ``(q @ k) * scaling`` with k already transposed, a
    softmax written by hand, a relative (lag) bias added after it: the effective matrix.
    ``drift``: a bias that also depends on the sample (not a relative bias)."""

    def __init__(self, masked: bool = False, temperature: float | None = None,
                 drift: bool = False) -> None:
        super().__init__()
        self.masked, self.temperature, self.drift = masked, temperature, drift
        self.scaling = WIDTH ** -0.5  # over the whole width, not per head
        self.to_q, self.to_k = nn.Linear(3, WIDTH), nn.Linear(3, WIDTH)
        self.lag = nn.Parameter(torch.randn(HEADS, 2 * L - 1) * 1e-3)  # per offset i - j

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, 3)
        b, t, _ = x.shape
        q = self.to_q(x).reshape(b, t, HEADS, -1).transpose(1, 2)
        k = self.to_k(x).reshape(b, t, HEADS, -1).permute(0, 2, 3, 1)  # (b, h, d, t)
        if self.temperature:
            scores = torch.matmul(q, k) / self.temperature
        else:
            scores = torch.matmul(q, k) * self.scaling
        if self.masked:
            scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1),
                                        float("-inf"))
        offset = torch.arange(t)[:, None] - torch.arange(t)[None] + L - 1
        attn = F.softmax(scores, dim=-1) + self.lag[:, offset]
        if self.drift:
            attn = attn + 1e-3 * x[:, None, :, :1]
        return attn @ q


def _capture(model, x, path, form, **kw):
    with torch.no_grad(), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with attnscope.capture(model, store=path, step="test", form=form, dtype="float32",
                               **kw):
            model(x)
    return open_store(path), [str(w.message) for w in seen]


@pytest.mark.parametrize("temperature", [None, 2.5])
def test_scaled_product_is_stored_as_queries_and_keys(tmp_path, temperature):
    torch.manual_seed(0)
    model = nn.Sequential(LagAttention(temperature=temperature)).eval()
    x = torch.randn(2, L, 3)
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
    want = rec.maps[0].weights.numpy()  # (batch, head, query, key)
    store, notes = _capture(model, x, tmp_path / "qk", "qk")
    assert store.module_info("0")["form"] == "qk"
    got = store.read("0", "test")
    assert np.abs(got - want).max() <= 1e-6
    assert store.module_info("0@effective")["form"] == "qk" and not notes
    eff = store.read("0@effective", "test")
    assert np.abs(eff - rec.maps[0].effective.numpy()).max() <= 1e-6
    total = store.nbytes("0", "test") + store.nbytes("0@effective", "test")
    assert total <= 0.05 * want.nbytes  # both entries: 0.03 at L=512, 0.003 at L=3000
    sel, _ = _capture(model, x, tmp_path / "sel", "qk", samples=[1], heads=[0, 3])
    np.testing.assert_allclose(sel.read("0", "test"), want[[1]][:, [0, 3]], atol=1e-6)
    np.testing.assert_allclose(sel.read("0@effective", "test"),
                               rec.maps[0].effective.numpy()[[1]][:, [0, 3]], atol=1e-6)


def test_a_bias_that_is_not_relative_keeps_the_effective_matrix_whole(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(LagAttention(drift=True)).eval()
    x = torch.randn(2, 64, 3)
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
    store, notes = _capture(model, x, tmp_path / "d", "qk")
    assert store.module_info("0")["form"] == "qk"
    assert store.module_info("0@effective")["form"] == "probs"
    assert any("'0@effective': queries and keys are not reachable" in n for n in notes)
    np.testing.assert_allclose(store.read("0@effective", "test"),
                               rec.maps[0].effective.numpy(), atol=1e-6)


def test_masked_scores_stay_probabilities_with_a_note(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(LagAttention(masked=True)).eval()
    x = torch.randn(1, 64, 3)
    store, notes = _capture(model, x, tmp_path / "m", "qk")
    assert store.module_info("0")["form"] == "probs"
    assert any("'0': queries and keys are not reachable" in n for n in notes)
    w = store.read("0", "test")[0, 0]
    assert np.all(w[np.triu_indices(64, 1)] == 0) and np.allclose(w.sum(-1), 1, atol=1e-5)
