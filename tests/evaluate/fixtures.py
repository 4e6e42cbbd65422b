"""Tiny models and test sets for the evaluate tests, importable as
``tests.evaluate.fixtures:<factory>`` the way users name theirs on the command line."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tests.capturing.models import LSTMRegressor

STEPS, FEATURES = 12, 2


class LSTMAttentionRegressor(LSTMRegressor):
    """Returns ``(prediction (batch, 1), attention (batch, time, 1))`` like many users' models."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__(FEATURES, hidden)


class TransformerClassifier(nn.Module):
    def __init__(self, features: int = 4, width: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=32, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


class LabelledDataset(Dataset):
    """A map-style test set with class names, as torchvision-style data sets have."""

    classes = ["low", "mid", "high"]

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class PickledThing:
    """Something only a pickle can hold: makes a checkpoint need --trust-checkpoint."""

    def __init__(self) -> None:
        self.note = "hello"


def make_regressor() -> nn.Module:
    torch.manual_seed(0)
    return LSTMAttentionRegressor()


def make_classifier() -> nn.Module:
    torch.manual_seed(0)
    return TransformerClassifier()


def make_mlp() -> nn.Module:
    """No attention anywhere."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(STEPS * FEATURES, 1))


def regression_tensors(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, STEPS, FEATURES, generator=g)
    y = 2.0 * x[:, 3, 0] - x[:, 8, 1] + 0.1 * torch.randn(n, generator=g)
    return x, y


def make_regression_data() -> Dataset:
    return TensorDataset(*regression_tensors())


def make_shuffled_loader() -> DataLoader:
    """A loader that shuffles: evaluation must still report data-set order."""
    return DataLoader(make_regression_data(), batch_size=7, shuffle=True)


def make_classification_data() -> Dataset:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 6, 4, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    return LabelledDataset(x, y)


def make_text_data() -> list[dict[str, torch.Tensor]]:
    """Hugging Face style items: dicts with input_ids, attention_mask and labels."""
    g = torch.Generator().manual_seed(3)
    items = []
    for i in range(10):
        ids = torch.randint(5, 50, (8,), generator=g)
        mask = torch.ones(8, dtype=torch.long)
        mask[6 + i % 2:] = 0
        items.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(i % 3)})
    return items


def make_broken() -> nn.Module:
    raise ValueError("the factory needs a config file")


def make_bracketed() -> nn.Module:
    raise KeyError("no entry [/data/run] in [bold]config")


def make_tensor_pair() -> tuple[torch.Tensor, torch.Tensor]:
    return regression_tensors()


NOT_CALLABLE = 3
