"""``form="qk"`` decodes through the sdpa tap, not the per-call capture: exact against
eager attention, windowed layers stitched with their note, the capture as the fallback
when the tap cannot see or check a call, and torch and the model left as found."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attnscope
from attnscope.generation import GenerationError, decoding, generate
from attnscope.generation.decoding import Sampling, decode
from attnscope.generation.protocol import as_causal_lm
from attnscope.generation.qk_steps import materialize
from attnscope.generation.sdpa_tap import tap
from tests.generation.models import eager_attentions, hf_causal_lm, tiny_gpt

pytest.importorskip("transformers")

ORIGINAL_SDPA = F.scaled_dot_product_attention  # bound before any tap: a tap cannot see it


@pytest.fixture
def fallbacks(monkeypatch):
    """How many times a generation was decoded through the per-call capture."""
    calls: list[int] = []
    real = decoding._decode_captured

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(decoding, "_decode_captured", spy)
    return calls


# (arch, prompt length, the note of the windowed layers: at the prefill or mid-decode)
CASES = [("llama", 8, None), ("qwen2", 8, None), ("gpt2", 8, None),
         ("mistral", 8, "a mask that hides earlier keys"),
         ("mistral", 3, "the cache holds 5 keys at position 6"),
         ("gemma3", 8, "a mask that hides earlier keys"),
         ("gemma3", 2, "the cache holds 4 keys at position 5")]


@pytest.mark.parametrize("arch,prompt,window_note", CASES)
def test_tapped_decode_matches_eager(arch, prompt, window_note, fallbacks):
    model = hf_causal_lm(arch)
    d = decode(as_causal_lm(model), list(range(1, prompt + 1)), 6, Sampling(), form="qk")
    assert fallbacks == [] and d.notes == []
    length = prompt + 6
    for i, m in enumerate(d.maps.values()):
        windowed = arch == "mistral" or (arch == "gemma3" and i % 2 == 0)
        if windowed:  # stitched probabilities, and why
            assert m.qk_note == f"not one causal q/k segment: {window_note}" + (
                " (a sliding window or padding)" if "mask" in window_note else
                " (a sliding-window or dropping cache)")
        else:  # one causal q/k segment of the whole sequence, O(L * dim)
            assert m.weights.is_meta and m.qk.causal and m.qk.query.shape[2] == length
            kv = 4 if arch == "gpt2" else 2  # grouped-query key heads stored once
            assert m.qk.key.shape[:3] == (1, kv, length) and len(m.qk.kv_index) == 4
    materialize(d.maps)
    ref = eager_attentions(arch, model, d.ids)
    assert len(ref) == len(d.maps)
    for want, got in zip(ref, d.maps.values()):
        assert got.weights.shape == want.shape == (1, 4, length, length)
        assert (got.weights - want).abs().max() <= 1e-5
        zero = (got.weights == 0) & torch.signbit(got.weights)  # masked, as captured
        assert zero[..., 0, 1:].all() and torch.equal(got.weights == 0, zero)


def test_handwritten_model_float32_and_float16(fallbacks):
    model = tiny_gpt()
    runs = {form: decode(model, [3, 1, 4, 1, 5], 7, Sampling(sample=True, seed=3), form=form)
            for form in ("qk", "qk16")}
    assert fallbacks == [] and runs["qk"].ids == runs["qk16"].ids
    with torch.no_grad():
        model.step(torch.tensor([runs["qk"].ids]), None, manual=True)
    for form, dtype, tol in (("qk", torch.float32, 1e-5), ("qk16", torch.float16, 5e-3)):
        maps = runs[form].maps
        assert [m.qk.query.dtype for m in maps.values()] == [dtype, dtype]
        materialize(maps)
        for blk, m in zip(model.blocks, maps.values()):
            assert (m.weights - blk.manual).abs().max() <= tol


def test_several_prompts_each_exact_in_the_store(tmp_path, fallbacks):
    model = hf_causal_lm("qwen2")
    prompts = [[5, 1, 7], [2, 9, 3, 11, 4, 8, 6, 10, 12]]
    kw = dict(max_new_tokens=5, view=False, dpi=20)
    q = generate(model, prompts, out=tmp_path, form="qk", **kw)
    assert fallbacks == []
    p = generate(model, prompts, **kw)  # the per-call capture's probabilities
    for i, (a, b) in enumerate(zip(p, q)):
        assert a.ids == b.ids and len(b.ids) == len(prompts[i]) + 5
        store = attnscope.open_store(tmp_path / f"prompt_{i:03d}/store")
        assert store.modules == list(a.maps)
        for name in store.modules:
            assert (store.segments(name, "generation")[0].path / "q").exists()
            want = a.maps[name].weights
            assert np.abs(store.read(name) - want.numpy()).max() <= 1e-5
            assert (b.maps[name].weights - want).abs().max() <= 1e-5  # figures, scores
            assert torch.equal(torch.signbit(b.maps[name].weights), torch.signbit(want))


def test_excluded_layer_is_left_out_on_the_tap(fallbacks):
    model = tiny_gpt()
    d = decode(model, [3, 1, 4], 4, Sampling(), exclude=["blocks.0"], form="qk")
    assert fallbacks == [] and list(d.maps) == ["blocks.1"]
    materialize(d.maps)
    with torch.no_grad():
        model.step(torch.tensor([d.ids]), None, manual=True)
    assert (d.maps["blocks.1"].weights - model.blocks[1].manual).abs().max() <= 1e-5


def test_sdpa_bound_under_another_name_falls_back_to_the_capture(fallbacks):
    model = tiny_gpt()
    for blk in model.blocks:
        blk.sdpa = ORIGINAL_SDPA  # the tap sees no call; the capture's mode still does
    d = decode(model, [3, 1, 4], 5, Sampling(), form="qk")
    assert fallbacks == [1]
    with torch.no_grad():
        model.step(torch.tensor([d.ids]), None, manual=True)
    for blk, m in zip(model.blocks, d.maps.values()):
        assert m.qk is not None and (m.weights - blk.manual).abs().max() <= 1e-5


def test_cache_that_changes_its_keys_falls_back_with_a_note(fallbacks):
    model = tiny_gpt()
    for blk in model.blocks:
        blk.rescale = 0.5  # every step scales the keys its cache already held
    d = decode(model, [3, 1, 4], 5, Sampling(), form="qk")
    assert fallbacks == [1]  # the tap's final check of the keys caught it
    p = decode(model, [3, 1, 4], 5, Sampling())  # each step's own probabilities
    assert p.ids == d.ids
    for name, m in d.maps.items():
        assert m.qk_note.startswith("not one causal q/k segment: the cache changed a key")
        assert (m.weights - p.maps[name].weights).abs().max() <= 1e-6


def test_tap_is_per_thread_and_restores_torch_on_exceptions():
    seen: list[torch.Size] = []
    x = torch.randn(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="boom"):
        with tap(lambda args, kwargs: seen.append(args[0].shape)):
            assert F.scaled_dot_product_attention is not ORIGINAL_SDPA
            worker = threading.Thread(target=F.scaled_dot_product_attention, args=(x, x, x))
            worker.start()
            worker.join()
            assert seen == []  # another thread's call goes straight through
            F.scaled_dot_product_attention(x, x, x)
            raise RuntimeError("boom")
    assert seen == [x.shape] and F.scaled_dot_product_attention is ORIGINAL_SDPA


def test_model_error_mid_generation_leaves_torch_and_model_as_found(fallbacks):
    model = tiny_gpt()
    calls: list[int] = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) > 4:
            raise ValueError("flaky kernel")
        return F.scaled_dot_product_attention(*args, **kwargs)  # through the tap

    model.blocks[1].sdpa = flaky
    with pytest.raises(GenerationError, match="raised ValueError at token 7: flaky"):
        decode(model, [1, 2, 3], 6, Sampling(), form="qk")
    assert fallbacks == [] and F.scaled_dot_product_attention is ORIGINAL_SDPA
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bidirectional_sdpa_model_is_refused_on_the_tap(fallbacks):
    model = tiny_gpt()
    for blk in model.blocks:  # every token sees every other: not a language model
        blk.sdpa = lambda q, k, v, is_causal: F.scaled_dot_product_attention(q, k, v)
    with pytest.raises(GenerationError, match="blocks.0 lets tokens attend to later tokens"):
        decode(model, [1, 2, 3, 4], 3, Sampling(), form="qk")
    assert fallbacks == [] and F.scaled_dot_product_attention is ORIGINAL_SDPA
