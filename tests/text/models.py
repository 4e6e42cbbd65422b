"""A user's encoder-decoder that is not the zoo's: its own module names, head count,
layer counts and vocabulary, attention through ``F.scaled_dot_product_attention``, and
the small protocol ``attnscope translate`` asks for (``encode``/``decode`` plus token
ids and labels). ``step`` decodes with a key/value cache, one token per call, the way
production decoders run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "der", "die", "das", "hund", "katze", "haus",
         "sieht", "hat", "the", "dog", "cat", "house", "sees", "has", "a", "big"]
PAD, BOS, EOS, UNK = 0, 1, 2, 3
INDEX = {w: i for i, w in enumerate(WORDS)}


class Heads(nn.Module):
    """Multi-head attention on sdpa; keys/values may come from another sequence."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.h = heads
        self.q, self.kv, self.o = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # (batch, len, d) -> (batch, head, len, d/h)
        return x.view(x.shape[0], x.shape[1], self.h, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        k, v = self.kv(source).chunk(2, dim=-1)
        y = F.scaled_dot_product_attention(self.split(self.q(x)), self.split(k), self.split(v),
                                           attn_mask=mask, is_causal=causal)
        return self.o(y.transpose(1, 2).flatten(2))


class EncoderBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attention = Heads(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln1(x)
        x = x + self.attention(y, y)
        return x + self.mlp(self.ln2(x))


class DecoderBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.masked_attention = Heads(d, heads)
        self.src_attn = Heads(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                past: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.ln1(x)
        keys = y if past is None else torch.cat([past, y], dim=1)
        x = x + self.masked_attention(y, keys, causal=past is None)
        x = x + self.src_attn(self.ln2(x), memory)
        return x + self.mlp(self.ln3(x)), keys


class TinyTranslator(nn.Module):
    """3 encoder blocks, 2 decoder blocks, 3 heads of width 8."""

    bos_id, eos_id, pad_id = BOS, EOS, PAD

    def __init__(self, d: int = 24, heads: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.tok = nn.Embedding(len(WORDS), d)
        self.where = nn.Embedding(32, d)
        self.encoder_stack = nn.ModuleList(EncoderBlock(d, heads) for _ in range(3))
        self.decoder_stack = nn.ModuleList(DecoderBlock(d, heads) for _ in range(2))
        self.lm = nn.Linear(d, len(WORDS))

    def embed(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.tok(ids) + self.where(torch.arange(start, start + ids.shape[1]))

    # -- the protocol ------------------------------------------------------------------
    def encode(self, src: torch.Tensor) -> torch.Tensor:
        x = self.embed(src)
        for block in self.encoder_stack:
            x = block(x)
        return x

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self.embed(tgt)
        for block in self.decoder_stack:
            x, _ = block(x, memory)
        return self.lm(x)

    def source_ids(self, text: str) -> list[int]:
        return [INDEX.get(w, UNK) for w in text.lower().split()]

    def source_tokens(self, ids: Sequence[int]) -> list[str]:
        return [WORDS[i] for i in ids]

    target_tokens = source_tokens

    # -- cached decoding: one token per call -------------------------------------------
    def step(self, token: torch.Tensor, memory: torch.Tensor, cache: list[Any] | None,
             position: int) -> tuple[torch.Tensor, list[Any]]:
        cache = cache or [None] * len(self.decoder_stack)
        x = self.embed(token, position)
        for i, block in enumerate(self.decoder_stack):
            x, cache[i] = block(x, memory, cache[i])
        return self.lm(x)[:, -1], cache

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt, self.encode(src))


def make_model() -> TinyTranslator:
    """Factory for ``--model tests.text.models:make_model``."""
    return TinyTranslator().eval()


def make_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Validation pairs ``(source ids, target ids)``, right-padded with ``PAD``."""
    src = [[4, 7, 10, 5, 8, EOS], [6, 9, EOS, PAD, PAD, PAD], [5, 8, 11, 4, 7, EOS]]
    tgt = [[12, 13, 16, EOS], [18, 15, EOS, PAD], [12, 14, 17, EOS]]
    return [(torch.tensor(s), torch.tensor(t)) for s, t in zip(src, tgt)]


class NoAttention(nn.Module):
    """Speaks the protocol but mixes tokens with a GRU: nothing to capture."""

    bos_id, eos_id = BOS, EOS

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(len(WORDS), 8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.lm = nn.Linear(8, len(WORDS))

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.tok(src))[1]

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.lm(self.rnn(self.tok(tgt), memory)[0])

    source_ids = TinyTranslator.source_ids
    source_tokens = TinyTranslator.source_tokens
    target_tokens = TinyTranslator.source_tokens


def make_no_attention() -> NoAttention:
    return NoAttention().eval()
