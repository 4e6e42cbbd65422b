"""A tiny encoder-decoder transformer, untrained: the built-in default for the demo.

It has every dense kind of attention (encoder self, decoder causal self, decoder to
encoder cross) in 2+2 layers of 4 heads, and builds in milliseconds.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyTranslator(nn.Module):
    def __init__(self, vocab: int = 32, d_model: int = 32, heads: int = 4, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.transformer = nn.Transformer(
            d_model, heads, layers, layers, dim_feedforward=64, dropout=0.1, batch_first=True
        )
        self.out = nn.Linear(d_model, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        hidden = self.transformer(self.embed(src), self.embed(tgt), tgt_mask=causal,
                                  tgt_is_causal=True)
        return self.out(hidden)


def build_tiny_translator(seed: int = 0) -> tuple[TinyTranslator, tuple[torch.Tensor, ...]]:
    """The model in eval mode and one batch of (source, target) token ids."""
    torch.manual_seed(seed)
    model = TinyTranslator().eval()
    src = torch.randint(0, 32, (2, 7))
    tgt = torch.randint(0, 32, (2, 5))
    return model, (src, tgt)
