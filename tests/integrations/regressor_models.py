"""A GRU forecaster with scaled dot-product attention of the last state over the time
steps (not the zoo's LSTM with additive attention), its Lightning wrapper and data;
importable as ``tests.integrations.regressor_models:<factory>`` for the CLI."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import TensorDataset

STEPS, FEATURES, HIDDEN = 10, 2, 6


class FocusAttention(nn.Module):
    """``softmax(q . k_t / sqrt(d))`` of the last state over all time steps."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)

    def scores(self, states: torch.Tensor) -> torch.Tensor:  # (batch, time, hidden)
        q = self.q(states[:, -1:])  # (batch, 1, hidden)
        return (q @ self.k(states).transpose(1, 2)) / math.sqrt(HIDDEN)  # (batch, 1, time)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(self.scores(states), dim=-1) @ states)[:, 0]


class Forecaster(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)
        self.temporal_focus = FocusAttention()  # found by its class name
        self.out = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, feature) -> (batch, 1)
        return self.out(self.temporal_focus(self.rnn(x)[0]))


def make_net() -> Forecaster:
    return Forecaster()


def series(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, STEPS, FEATURES, generator=g)
    return TensorDataset(x, x[:, 3, :1] - x[:, 7, 1:])


def holdout() -> TensorDataset:
    return series(9, 2)
