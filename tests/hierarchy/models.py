"""A hierarchical stager unlike the zoo's SleepNet: other module names, multi-head
self-attention over patches (channels folded into the batch, a loop over epochs), a
channel weighting whose name does not say attention, and sdpa across epochs.

Importable as ``tests.hierarchy.models:make_stager`` / ``:make_nights`` for the CLI.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

EPOCHS, CHANNELS, SAMPLES, PATCH, CLASSES = 5, 2, 40, 5, 3
PATCHES = SAMPLES // PATCH


class LeadWeighting(nn.Module):
    """Softmax over channels (leads) -- attention, though not named so."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (batch, channel, d)
        w = F.softmax(self.gate(h).squeeze(-1), dim=-1)  # (batch, channel)
        return (w[..., None] * h).sum(1)


class EpochMixer(nn.Module):
    """Two-head self-attention across epochs through scaled_dot_product_attention."""

    def __init__(self, d: int, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.qkv = heads, nn.Linear(d, 3 * d)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (batch, epoch, d)
        b, e, d = z.shape
        q, k, v = self.qkv(z).reshape(b, e, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, e, d)


class Stager(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.patchify = nn.Linear(PATCH, d)
        self.encoder = nn.Module()
        self.encoder.patch_mixer = nn.MultiheadAttention(d, 2, batch_first=True)
        self.encoder.lead_weighting = LeadWeighting(d)
        self.context = nn.Module()
        self.context.mixer = EpochMixer(d)
        self.classify = nn.Linear(d, CLASSES)

    def patches(self, x: torch.Tensor) -> torch.Tensor:  # (..., time) -> (..., patch, d)
        return self.patchify(x.unflatten(-1, (PATCHES, PATCH)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, epoch, channel, time)
        b = x.shape[0]
        epochs = []
        for e in range(x.shape[1]):  # channels folded into the batch, sample-major
            h = self.patches(x[:, e]).flatten(0, 1)  # (batch * channel, patch, d)
            h = self.encoder.patch_mixer(h, h, h)[0].mean(1).unflatten(0, (b, -1))
            epochs.append(self.encoder.lead_weighting(h))
        z = self.context.mixer(torch.stack(epochs, 1))
        return self.classify(z)  # (batch, epoch, class)


def make_stager() -> Stager:
    torch.manual_seed(3)
    return Stager()


def make_nights() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, EPOCHS, CHANNELS, SAMPLES, generator=gen)
    return x, torch.randint(0, CLASSES, (5, EPOCHS), generator=gen)
