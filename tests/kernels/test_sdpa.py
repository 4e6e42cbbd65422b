"""The blocked sdpa probabilities against a plain softmax, for every way a mask can
arrive (broadcast over samples, heads or queries, per head, additive, with the causal
flag) and every way the queries are cut into blocks, with the masked-key marks."""

from __future__ import annotations

import pytest
import torch

from attnscope.kernels import sdpa_probabilities


def _reference(q, k, mask, causal):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    hidden = torch.zeros(scores.shape, dtype=torch.bool)
    if causal:
        hidden |= torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
    if mask is not None and mask.dtype == torch.bool:
        hidden |= ~mask.expand(scores.shape)
    elif mask is not None:
        scores = scores + mask
    probs = scores.masked_fill(hidden, float("-inf")).softmax(-1)
    return probs.nan_to_num(0.0), hidden  # a query that sees no key: zeros, as sdpa


def _masks(n, h, q, k):
    g = torch.Generator().manual_seed(3)
    pad = torch.ones(n, 1, 1, k, dtype=torch.bool)
    pad[-1, ..., k - 3:] = False
    return {
        "none": None,
        "padding (n,1,1,k)": pad,
        "padding expanded over queries": pad.expand(n, 1, q, k),
        "padding materialised (n,1,q,k)": pad.expand(n, 1, q, k).clone(),
        "per head": torch.rand(n, h, q, k, generator=g) > 0.3,
        "one for all (q,k)": torch.rand(q, k, generator=g) > 0.3,
        "additive 0/-inf": torch.zeros(n, 1, q, k).masked_fill(~pad, float("-inf")),
        "additive -1e4": torch.zeros(n, 1, 1, k).masked_fill(~pad, -1e4),
    }


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("budget", [1 << 22, 2 * 7 * 9, 9])  # whole layer, heads, rows
@pytest.mark.parametrize("case", list(_masks(2, 3, 7, 9)))
def test_probabilities_and_marks_match_a_plain_softmax(case, budget, causal):
    n, h, q, k = 2, 3, 7, 9
    g = torch.Generator().manual_seed(1)
    query, key = torch.randn(n, h, q, 8, generator=g), torch.randn(n, h, k, 8, generator=g)
    value = torch.randn(n, h, k, 5, generator=g)
    mask = _masks(n, h, q, k)[case]
    want, hidden = _reference(query, key, mask, causal)
    got, out = sdpa_probabilities(query, key, mask, causal, value=value, mark=True,
                                  block_elements=budget)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, equal_nan=True)
    torch.testing.assert_close(out, want @ value, atol=1e-5, rtol=1e-5, equal_nan=True)
    marked = (got == 0) & torch.signbit(got)
    if mask is not None and mask.dtype != torch.bool:  # additive: its exact zeros
        hidden = hidden | (want == 0)
    live = ~want.isnan()
    assert torch.equal(marked[live], hidden[live]), case  # every hidden key, only those
    plain, _ = sdpa_probabilities(query, key, mask, causal, block_elements=budget)
    assert not torch.signbit(plain).any()  # unmarked unless asked
    torch.testing.assert_close(plain, got.abs(), equal_nan=True)


def test_a_query_with_every_key_masked_is_zeros_marked():
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    mask = torch.ones(1, 1, 3, 5, dtype=torch.bool)
    mask[0, 0, 1] = False  # query 1 sees nothing: sdpa gives zeros
    got, _ = sdpa_probabilities(q, k, mask, mark=True)
    assert torch.equal(got[0, :, 1], torch.zeros(2, 5))
    assert torch.signbit(got[0, :, 1]).all()
    torch.testing.assert_close(got[0, :, [0, 2]].sum(-1), torch.ones(2, 2))
