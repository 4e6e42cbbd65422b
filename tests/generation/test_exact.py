"""The stitched causal map equals eager attention on the whole generated sequence."""

from __future__ import annotations

import pytest
import torch

from attnscope.generation import GenerationError, generate
from attnscope.generation.decoding import Sampling, decode
from attnscope.generation.protocol import as_causal_lm
from tests.generation.models import VOCAB, eager_attentions, hf_causal_lm, tiny_gpt

pytest.importorskip("transformers")

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]  # longer than every sliding window below


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma3", "gpt2"])
def test_hf_generation_matches_eager(arch: str) -> None:
    model = hf_causal_lm(arch)
    d = decode(as_causal_lm(model), PROMPT, 6, Sampling())
    assert len(d.ids) == len(PROMPT) + 6 and d.notes == []
    ref = eager_attentions(arch, model, d.ids)
    assert len(ref) == len(d.maps)
    for want, got in zip(ref, d.maps.values()):
        assert got.weights.shape == want.shape == (1, 4, 14, 14)
        assert (got.weights - want).abs().max() <= 1e-5
        # cells never computed (future, keys a window cache dropped) are marked masked
        zero = (got.weights == 0) & torch.signbit(got.weights)
        assert zero[..., 0, 1:].all()


def test_handwritten_cache_model_matches_its_softmax() -> None:
    model = tiny_gpt()
    d = decode(model, [3, 1, 4, 1, 5], 7, Sampling(sample=True, seed=3))
    with torch.no_grad():
        model.step(torch.tensor([d.ids]), None, manual=True)
    assert list(d.maps) == ["blocks.0", "blocks.1"]
    for blk, got in zip(model.blocks, d.maps.values()):
        assert (got.weights - blk.manual).abs().max() <= 1e-5


def test_sampling_is_reproducible_and_seeded() -> None:
    model = tiny_gpt()
    runs = [decode(model, [1, 2], 12, Sampling(sample=True, seed=s, top_k=10, top_p=0.9)).ids
            for s in (7, 7, 8)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_model_left_as_found_and_results_labelled() -> None:
    model = tiny_gpt()
    x = torch.tensor([[1, 2, 3]])
    before = model.step(x, None)[0]
    [r] = generate(model, ["ㄱㄴㄷ"], max_new_tokens=3)
    assert r.tokens[:3] == ["ㄱ", "ㄴ", "ㄷ"] and len(r.tokens) == 6
    assert r.prompt == "ㄱㄴㄷ" and r.prompt_length == 3
    assert torch.equal(model.step(x, None)[0], before)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


class NotCausal(torch.nn.Module):
    """Full (bidirectional) attention: it cannot generate."""

    context_length = 32

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.attn = torch.nn.Embedding(VOCAB, 8), torch.nn.MultiheadAttention(8, 2)
        self.out = torch.nn.Linear(8, VOCAB)

    def step(self, ids: torch.Tensor, cache: object) -> tuple[torch.Tensor, object]:
        x = self.emb(ids if cache is None else torch.cat([cache, ids], 1)).transpose(0, 1)
        y, _ = self.attn(x, x, x)
        return self.out(y.transpose(0, 1)), ids if cache is None else torch.cat([cache, ids], 1)


def test_bad_input_gets_one_line() -> None:
    with pytest.raises(GenerationError, match="not causal"):
        generate(NotCausal().eval(), [[1, 2, 3]], max_new_tokens=2)
    with pytest.raises(GenerationError, match="context is 64"):
        generate(tiny_gpt(), [[1] * 60], max_new_tokens=10)
    with pytest.raises(GenerationError, match="has no encode"):
        generate(NotCausal().eval(), ["text"], max_new_tokens=1)
    with pytest.raises(GenerationError, match="neither"):
        generate(object(), [[1]])
