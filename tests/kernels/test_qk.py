"""Kernel inputs kept for the query/key store form: masks stay compact, grouped-query
keys are kept once, and probabilities from them match a plain softmax."""

from __future__ import annotations

import torch

from attnscope.kernels import compact_mask, from_sdpa, qk_probabilities


def test_masks_keep_only_the_axes_that_vary():
    q = torch.randn(2, 4, 16, 8)
    pad = torch.rand(2, 1, 1, 16) > 0.2
    cases = {
        "expanded view": (pad.expand(2, 4, 16, 16), (2, 1, 1, 16)),
        "materialised padding": (pad.expand(2, 1, 16, 16).clone(), (2, 1, 1, 16)),
        "shared causal (q, k)": (torch.ones(16, 16, dtype=torch.bool).tril(), (1, 1, 16, 16)),
        "one mask for the batch": (pad[:1].expand(2, 4, 16, 16).clone(), (1, 1, 1, 16)),
        "per head": (torch.rand(1, 4, 1, 16) > 0.5, (1, 4, 1, 16)),
    }
    for name, (mask, shape) in cases.items():
        got = compact_mask(mask, q, 16, None, None)
        assert tuple(got.shape) == shape, name
        assert torch.equal(got.expand(2, 4, 16, 16), mask.expand(2, 4, 16, 16)), name


def test_selection_applies_to_the_mask_and_grouped_keys():
    q, k = torch.randn(3, 8, 5, 4), torch.randn(3, 2, 5, 4)
    mask = torch.randn(3, 8, 5, 5)
    inp = from_sdpa(q, k, mask, False, None, samples=[2, 0], heads=[7, 1, 6])
    assert inp.query.shape == (2, 3, 5, 4)
    assert inp.key.shape == (2, 2, 5, 4) and inp.kv_index == [1, 0, 1]  # heads 7,6 -> kv 1
    assert inp.mask.shape == (2, 3, 5, 5)
    scores = q[[2, 0]][:, [7, 1, 6]] @ k[[2, 0]][:, [1, 0, 1]].transpose(-1, -2) / 2.0
    expected = torch.softmax(scores + mask[[2, 0]][:, [7, 1, 6]], -1)
    torch.testing.assert_close(qk_probabilities(inp), expected, atol=1e-6, rtol=1e-5)
    rows = qk_probabilities(inp, samples=[1], heads=[2], rows=[4, 0])
    torch.testing.assert_close(rows[0, 0], expected[1, 2, [4, 0]], atol=1e-6, rtol=1e-5)


def test_causal_rows_and_head_mean():
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8)
    inp = from_sdpa(q, k, None, True, 0.5, reduced="mean")
    scores = (q @ k.transpose(-1, -2) * 0.5).masked_fill(
        torch.ones(4, 6, dtype=torch.bool).triu(1), float("-inf"))
    expected = torch.softmax(scores, -1).mean(1, keepdim=True)
    torch.testing.assert_close(qk_probabilities(inp), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(qk_probabilities(inp, rows=[3, 1]), expected[:, :, [3, 1]],
                               atol=1e-6, rtol=1e-5)
