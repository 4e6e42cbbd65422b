"""A small Lightning LSTM-attention regressor and its data, shared by the tests and the
DDP script."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.capturing.models import LSTMRegressor

STEPS = 12


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, STEPS, 3, generator=g)
    y = x[:, 4, :1] * 2.0  # the target is read from time step 4
    return TensorDataset(x, y)


class Regressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = LSTMRegressor()
        self.losses: list[float] = []
        self.mode_active: list[tuple[int, bool]] = []

    def forward(self, x):
        return self.model(x)[0]

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.losses.append(float(loss))
        return loss

    def validation_step(self, batch, batch_idx):
        self.mode_active.append((batch_idx, torch._C._len_torch_function_stack() > 0))
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)


def loaders(batch_size: int = 4):
    return (DataLoader(dataset(32, 0), batch_size=batch_size, shuffle=True),
            DataLoader(dataset(10, 1), batch_size=batch_size),
            DataLoader(dataset(7, 2), batch_size=batch_size))
