"""Tiny encoder-decoders captured into stores with per-sample source/target tokens."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnscope

SRC = [["犬", "が", "猫", "を", "見る"], ["Собака", "видит", "кошку", "и", "спит"]]
TGT_SAME = [["the", "dog", "sees", "the", "cat"], ["a", "dog", "sees", "cats", "."]]
TGT_LONGER = [["the", "dog", "sees", "the", "cat", "."], ["a", "dog", "sees", "a", "cat", "!"]]


class Renamed(nn.Module):
    """An nn.Transformer whose parts have names that say neither encoder nor decoder."""

    def __init__(self) -> None:
        super().__init__()
        t = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=32, dropout=0.0, batch_first=True)
        self.first, self.second = t.encoder, t.decoder

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        return self.second(tgt, self.first(src), tgt_mask=mask, tgt_is_causal=True)


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1,
                                num_decoder_layers=1, dim_feedforward=32, dropout=0.0,
                                batch_first=True)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        return self.t(src, tgt, tgt_mask=mask, tgt_is_causal=True)


def make_store(path, model: nn.Module, tgt_tokens: list[list[str]]):
    torch.manual_seed(0)
    model.eval()
    src = torch.randn(len(SRC), len(SRC[0]), 16)
    tgt = torch.randn(len(tgt_tokens), len(tgt_tokens[0]), 16)
    writer = attnscope.open_writer(path, step="test", labels={
        "sample_source_tokens": SRC, "sample_target_tokens": tgt_tokens})
    with torch.no_grad(), attnscope.capture(model, store=writer):
        model(src, tgt)
    return attnscope.open_store(path)


@pytest.fixture(params=["same", "longer"])
def encdec_store(request, tmp_path):
    tgt = TGT_SAME if request.param == "same" else TGT_LONGER
    return make_store(tmp_path / "s", Plain(), tgt), tgt
