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


def _first_copies_reference(key: torch.Tensor) -> list[int]:
    first, run = [0], 0
    for h in range(1, key.shape[1]):
        if not torch.equal(key[:, h], key[:, run]):
            run = h
        first.append(run)
    return first[:key.shape[1]]


def test_repeated_key_heads_are_found_as_before():
    from attnscope.kernels.qk import _first_copies

    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, 3, 5, 4, generator=g)
    repeated = base.repeat_interleave(2, dim=1)  # repeat_kv: heads 0,0,1,1,2,2
    same_first_row = repeated.clone()
    same_first_row[:, 1, 3] += 1  # head 1 equals head 0 on row 0 only
    with_nan = repeated.clone()
    with_nan[1, 2:4, 2, 1] = float("nan")  # NaN is never equal, as torch.equal says
    for key in (base, repeated, same_first_row, with_nan, torch.zeros(2, 4, 0, 4),
                torch.zeros(0, 3, 5, 4), base[:, :1]):
        assert _first_copies(key) == _first_copies_reference(key)
    assert _first_copies(repeated) == [0, 0, 2, 2, 4, 4]
    assert _first_copies(same_first_row) == [0, 1, 2, 2, 4, 4]


def test_a_mask_every_layer_receives_is_compacted_once_and_never_stale():
    from attnscope.kernels.qk import MaskMemo

    q = torch.randn(2, 3, 4, 8)
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    mask[1, :, :, 2:] = False
    memo = MaskMemo()
    first = memo.compact(mask, q, 4, None, None, token=0)
    assert memo.compact(mask, q, 4, None, None, token=0) is first  # the next layer
    assert torch.equal(first, compact_mask(mask, q, 4, None, None))
    mask[0, :, :, 3] = False  # changed in place: its version counter tells
    second = memo.compact(mask, q, 4, None, None, token=0)
    assert second is not first and torch.equal(second, compact_mask(mask, q, 4, None, None))
    assert memo.compact(mask, q, 4, [1], None, token=0) is not second  # other samples
    with torch.inference_mode():  # no version counter: reused within one model call only
        frozen = mask.clone()
        one = memo.compact(frozen, q, 4, None, None, token=1)
        assert memo.compact(frozen, q, 4, None, None, token=1) is one
        frozen[0, :, :, 0] = False
        fresh = memo.compact(frozen, q, 4, None, None, token=2)
        assert torch.equal(fresh, compact_mask(frozen, q, 4, None, None))
    other = mask.clone()  # an equal mask in another tensor is compacted again
    assert memo.compact(other, q, 4, None, None, token=0) is not second


def test_query_and_key_copies_are_contiguous_and_independent():
    q = torch.randn(2, 4, 3, 8).transpose(1, 2)  # (batch, head, query, dim) as a view
    with torch.inference_mode():
        qi = q.clone()
        inp = from_sdpa(qi, qi, None, False, None)
        qi.zero_()  # the model changes its tensor afterwards
    assert inp.query.is_contiguous() and not inp.query.is_inference()
    assert torch.equal(inp.query, q) and torch.equal(inp.key, q)
