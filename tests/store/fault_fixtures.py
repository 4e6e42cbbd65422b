"""Models and data sets that fail in the ways users' do, importable on the command line
as ``tests.store.fault_fixtures:<factory>``."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tests.evaluate.fixtures import FEATURES, STEPS, regression_tensors


class TwoAttentions(nn.Module):
    """Two MultiheadAttention layers; ``fail_second`` makes the second raise after the
    first has produced its map, like a forward that dies half-way."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.first_attn = nn.MultiheadAttention(width, 2, batch_first=True)
        self.second_attn = nn.MultiheadAttention(width, 2, batch_first=True)
        self.fail_second = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_attn(x, x, x)[0]
        if self.fail_second:
            raise RuntimeError("out of memory in the second layer")
        return self.second_attn(x, x, x)[0]


class WidthChanges(Dataset):
    """A regression test set whose items from ``bad_from`` on have another width (or
    dtype): the model fails on a later batch, after earlier batches were captured."""

    def __init__(self, bad_from: int = 8, dtype: torch.dtype | None = None) -> None:
        self.x, self.y = regression_tensors()
        self.bad_from, self.dtype = bad_from, dtype

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if i >= self.bad_from:
            x = x.to(self.dtype) if self.dtype is not None else torch.zeros(STEPS,
                                                                            FEATURES + 1)
        return x, self.y[i]


def make_wide_later() -> Dataset:
    return WidthChanges()


def make_wide_from_start() -> Dataset:
    return WidthChanges(bad_from=0)


def make_wrong_dtype() -> Dataset:
    return WidthChanges(bad_from=0, dtype=torch.int64)


def make_strings() -> list[tuple[str, int]]:
    return [("not a tensor", 0)] * 4


def make_short_data() -> Dataset:
    x, y = regression_tensors(8)
    return TensorDataset(x, y)
