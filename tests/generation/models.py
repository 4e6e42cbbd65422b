"""Tiny decoder-only models for the generate tests: Hugging Face causal LMs from random
configs, and a hand-written nanoGPT-style model with its own key/value cache."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 48


def hf_causal_lm(arch: str, attn: str = "sdpa", context: int = 64) -> nn.Module:
    """A random 2-layer model of ``arch`` (GQA where the family has it)."""
    import transformers as tf

    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=context)
    if arch == "llama":
        cfg, cls = tf.LlamaConfig(**common), tf.LlamaForCausalLM
    elif arch == "qwen2":
        cfg, cls = tf.Qwen2Config(**common), tf.Qwen2ForCausalLM
    elif arch == "mistral":  # a window shorter than the sequence: the cache drops keys
        cfg, cls = tf.MistralConfig(**common, sliding_window=5), tf.MistralForCausalLM
    elif arch == "gemma3":  # alternating local (window 4) and global layers
        cfg = tf.Gemma3TextConfig(**{**common, "num_hidden_layers": 4}, head_dim=8,
                                  sliding_window=4, query_pre_attn_scalar=8,
                                  layer_types=["sliding_attention", "full_attention"] * 2)
        cls = tf.Gemma3ForCausalLM
    elif arch == "gpt2":
        cfg = tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=context)
        cls = tf.GPT2LMHeadModel
    else:
        raise ValueError(arch)
    torch.manual_seed(0)
    return cls._from_config(cfg, attn_implementation=attn).eval()


def eager_attentions(arch: str, model: nn.Module, ids: list[int]) -> tuple:
    """Ground truth: the eager twin of ``model`` (same weights) with
    ``output_attentions`` on the whole sequence."""
    eager = hf_causal_lm(arch, "eager")
    eager.load_state_dict(model.state_dict())
    with torch.no_grad():
        return eager(torch.tensor([ids]), output_attentions=True).attentions


class Block(nn.Module):
    """Pre-norm block whose attention keeps its keys and values in the cache it is given."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.manual: torch.Tensor | None = None  # ground truth, set when manual=True
        self.sdpa: Any = None  # another sdpa callable (e.g. bound under another name)
        self.rescale = 1.0  # != 1: the cache changes the keys it holds at every step

    def forward(self, x: torch.Tensor, past: Any, manual: bool = False) -> tuple[Any, Any]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0] * self.rescale, k], 2), torch.cat([past[1], v], 2)
        if manual:  # the reference: softmax written out over the causal mask
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            keys = torch.arange(k.shape[2])
            rows = torch.arange(k.shape[2] - t, k.shape[2]).unsqueeze(1)
            att = torch.softmax(scores.masked_fill(keys > rows, float("-inf")), -1)
            self.manual = att
            y = att @ v
        else:
            sdpa = self.sdpa or F.scaled_dot_product_attention
            y = sdpa(q, k, v, is_causal=past is None and t > 1)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x)), (k, v)


class TinyGPT(nn.Module):
    """A nanoGPT-style LM in the attnscope.generation protocol (``step``)."""

    context_length = 64
    eos_id = None

    def __init__(self, dim: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, dim)
        self.pos = nn.Embedding(self.context_length, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.head = nn.Linear(dim, VOCAB)

    def step(self, ids: torch.Tensor, cache: Any, manual: bool = False) -> tuple[Any, Any]:
        start = 0 if cache is None else cache[0][0].shape[2]
        x = self.tok(ids) + self.pos(torch.arange(start, start + ids.shape[1]))
        new = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, None if cache is None else cache[i], manual)
            new.append(kv)
        return self.head(x), new

    def token_labels(self, ids: list[int]) -> list[str]:
        return [chr(0x3131 + i % 30) for i in ids]  # Hangul jamo: non-Latin labels

    def encode(self, text: str) -> list[int]:
        return [(ord(c) - 0x3131) % VOCAB for c in text]


def tiny_gpt() -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT().eval()
