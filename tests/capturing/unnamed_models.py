"""Models whose attention-like softmaxes sit in modules with names that are not ours
and do not say attention (factories for the CLI tests too)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

WIDTH, STEPS = 8, 5


class ChannelMixer(nn.Module):
    """Attention across channels written out by hand, under a neutral name."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))

    def forward(self, x):  # (batch, channel, feature)
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / x.shape[-1] ** 0.5
        return scores.softmax(-1) @ self.v(x)


class Pooler(nn.Module):
    """Additive (1-D) pooling: scores from a layer, then the weights multiply the values."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.score = nn.Linear(width, 1)

    def forward(self, x):  # (batch, step, feature) -> (batch, feature)
        weights = torch.softmax(self.score(x).squeeze(-1), dim=1)
        return torch.bmm(weights.unsqueeze(1), x).squeeze(1)


class Head(nn.Module):
    """A classifier head: its softmax ends the model and is not attention, even where
    its output is multiplied elementwise (an entropy term, say)."""

    def __init__(self, width: int = WIDTH, classes: int = 3) -> None:
        super().__init__()
        self.out = nn.Linear(width, classes)

    def forward(self, x):
        probs = self.out(x).softmax(-1)
        return probs, -(probs * probs.clamp_min(1e-9).log()).sum(-1)


class Net(nn.Module):
    """Real attention (an nn.MultiheadAttention) beside the three modules above."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.MultiheadAttention(WIDTH, 2, batch_first=True)
        self.mixer = ChannelMixer()
        self.pool = Pooler()
        self.head = Head()

    def forward(self, x):
        h = self.encoder(x, x, x)[0]
        return self.head(self.pool(self.mixer(h)))[0]


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return Net()


def make_data() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(6, STEPS, WIDTH, generator=g), torch.zeros(6))
