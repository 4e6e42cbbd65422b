"""A level's kind is what it is: attention across channels in a module named
``cross_channel`` is self-attention among channels, not cross-attention."""

from __future__ import annotations

import torch
from torch import nn

import attnscope


class CrossChannelBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cross_channel = nn.MultiheadAttention(8, 2, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, channels: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        h = self.cross_channel(channels, channels, channels)[0]
        return self.cross_attn(h, memory, memory)[0]


def test_cross_channel_is_self_and_cross_attn_stays_cross():
    block = CrossChannelBlock().eval()
    with torch.no_grad(), attnscope.capture(block) as rec:
        block(torch.randn(3, 4, 8), torch.randn(3, 4, 8))  # same lengths: names decide
    kinds = {m.module: m.kind for m in rec.maps}
    assert kinds == {"cross_channel": "self", "cross_attn": "cross"}
