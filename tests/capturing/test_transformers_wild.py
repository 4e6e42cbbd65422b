"""Hugging Face models from random tiny configs against the same weights on eager
attention: grouped-query ``generate()`` step by step, Longformer bands, and a held-out
list of architectures no capture code was written for."""

from __future__ import annotations

import pytest
import torch

import attnscope
from tests.capturing.hf_models import DECODERS, HELD_OUT, Arch, inputs, make, reference

transformers = pytest.importorskip("transformers", reason="transformers is not installed")
TOL = 1e-4


def _pair(arch: Arch):
    try:
        fast = make(arch, "sdpa")
    except ValueError:  # the architecture has no sdpa path: its eager softmax is captured
        fast = make(arch, "eager")
    eager = make(arch, "eager")
    eager.load_state_dict(fast.state_dict())
    return fast, eager


def _close_on_live_rows(got: torch.Tensor, want: torch.Tensor) -> None:
    """Queries that may see no key are zeros under sdpa and uniform under eager."""
    assert got.shape == want.shape
    live = (got.sum(-1) > 0.5) & (want.sum(-1) > 0.5)
    assert (got - want).abs().amax(-1)[live].max() < TOL
    assert live.float().mean() > 0.7


@pytest.mark.parametrize("arch", DECODERS, ids=[a.name for a in DECODERS])
def test_grouped_query_generate_step_by_step(arch: Arch):
    if not hasattr(transformers, arch.name):
        pytest.skip(f"transformers {transformers.__version__} has no {arch.name}")
    fast, eager = _pair(arch)
    torch.manual_seed(2)
    ids = torch.randint(2, 64, (2, 6))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding: the mask makes transformers pack the query heads
    options = dict(max_new_tokens=3, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        ref = eager.generate(input_ids=ids, attention_mask=mask, output_attentions=True,
                             return_dict_in_generate=True, **options)
        with attnscope.capture(fast) as rec:
            fast.generate(input_ids=ids, attention_mask=mask, **options)
    expected = [a for step in ref.attentions for a in step]
    assert len(rec.maps) == len(expected) == 3 * 2
    heads = arch.config["num_attention_heads"]
    for m, want in zip(rec.maps, expected):
        assert m.weights.shape[:2] == (2, heads) and m.kind == "self"
        _close_on_live_rows(m.weights, want)
    assert [m.weights.shape[2] for m in rec.maps] == [6, 6, 1, 1, 1, 1]


def _capture_and_reference(arch: Arch):
    """The sdpa model's captured maps and the eager twin's ``output_attentions``."""
    fast, eager = _pair(arch)
    given = inputs(arch)
    with torch.no_grad():
        expected = reference(eager, arch, given)
        with attnscope.capture(fast) as rec:
            fast(**given)
    return rec, expected


@pytest.mark.parametrize("arch", HELD_OUT, ids=[a.name for a in HELD_OUT])
def test_held_out_architectures_match_eager(arch: Arch):
    if not hasattr(transformers, arch.name):
        pytest.skip(f"transformers {transformers.__version__} has no {arch.name}")
    rec, expected = _capture_and_reference(arch)
    assert len(rec.maps) == len(expected), rec.notes
    for m, (kind, want) in zip(rec.maps, expected):
        assert m.kind == kind, m
        _close_on_live_rows(m.weights, want)


def _longformer(layers: int):
    """A tiny random Longformer with a window of 4 (w = 2 keys each side)."""
    from transformers import LongformerConfig, LongformerModel

    torch.manual_seed(0)
    config = LongformerConfig(vocab_size=64, hidden_size=32, num_hidden_layers=layers,
                              num_attention_heads=4, intermediate_size=48,
                              attention_window=4, max_position_embeddings=80, pad_token_id=1)
    return LongformerModel(config).eval()


def test_longformer_band_is_rebuilt_dense():
    model = _longformer(2)
    ids = torch.randint(3, 64, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        with attnscope.capture(model) as rec:
            model(input_ids=ids, attention_mask=mask)
    assert len(rec.maps) == 2
    w = 2
    for m, band in zip(rec.maps, ref.attentions):  # band: (batch, head, query, 2w+1)
        b, h, n, _ = band.shape
        dense = torch.zeros(b, h, n, n)
        for i in range(n):  # column j of the band is key i + j - w
            for j in range(2 * w + 1):
                if 0 <= i + j - w < n:
                    dense[:, :, i, i + j - w] = band[:, :, i, j]
        assert m.weights.shape == (2, 4, 12, 12) and m.kind == "self"
        live = mask.bool()[:, None, :, None].expand_as(dense)
        assert (m.weights - dense)[live].abs().max() < TOL
        sums = m.weights.sum(-1)[mask.bool()[:, None, :].expand(-1, 4, -1)]
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)


def test_longformer_global_tokens_are_refused_with_a_note():
    model = _longformer(1)
    ids = torch.randint(3, 64, (1, 8))
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    with torch.no_grad(), pytest.raises(attnscope.NoAttentionFoundError, match="global"):
        with attnscope.capture(model):
            model(input_ids=ids, global_attention_mask=glob)


def test_convbert_dynamic_convolution_is_refused_and_its_attention_kept():
    from tests.capturing.hf_models import SMALL

    arch = Arch("ConvBertModel", dict(SMALL, embedding_size=32))
    rec, expected = _capture_and_reference(arch)
    assert len(rec.maps) == len(expected)
    for m, (_, want) in zip(rec.maps, expected):
        _close_on_live_rows(m.weights, want)
    assert any("dynamic-convolution" in n for n in rec.notes)


def test_swin_windows_stay_folded_in_the_batch_with_a_note():
    arch = Arch("SwinModel", dict(embed_dim=16, depths=[2], num_heads=[2], window_size=2,
                                  image_size=16, patch_size=4), "pixels")
    fast, eager = _pair(arch)
    given = inputs(arch)
    with torch.no_grad():
        (last,) = eager(**given, output_attentions=True).attentions  # last block per stage
        with attnscope.capture(fast) as rec:
            fast(**given)
    assert [m.weights.shape for m in rec.maps] == [(8, 2, 4, 4)] * 2  # 2 images x 4 windows
    assert (rec.maps[1].weights - last).abs().max() < TOL
    assert any("8 rows for a model call of 2 samples" in n for n in rec.notes)
