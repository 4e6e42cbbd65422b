"""The names the README's code blocks use (``model``, ``inputs``, ``loader``, ``x``,
``tokens``, ``rec``, ``store``, ``Trainer``, ``datamodule``, ``nn``), made real with a
tiny model whose module names are the README's: ``encoder.layers.0..3.self_attn``,
``encoder.temporal`` (a temporal graph per node), ``decoder.layers.0.self_attn`` /
``multihead_attn``, ``layers.0.self_attn`` and the 1-D ``model.attention``.

``build(path)`` also writes the store the README reads at ``runs/attn``: steps
``epoch_000``, ``epoch_003``, ``epoch_009`` and ``test``, 4 samples each, with token and
time-step labels.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch_geometric import utils as pyg_utils
from torch_geometric.nn import MessagePassing

import attnscope
from attnscope.graph import temporal_edge_index

T, D, HEADS, NODES = 24, 24, 6, 4
STEPS = ("epoch_000", "epoch_003", "epoch_009", "test")


class TimeMix(MessagePassing):
    """Additive attention between time steps of each node, ``(batch, node, time, d)``."""

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=-2)
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, HEADS)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.propagate(edge_index, h=h)

    def message(self, h_i, h_j, index, size_i):
        alpha = pyg_utils.softmax(self.v(torch.tanh(self.q(h_i) + self.k(h_j))), index,
                                  num_nodes=size_i, dim=-2)  # (batch, node, edge, head)
        return alpha.mean(-1, keepdim=True) * h_j


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(D, HEADS, 48, dropout=0.0, batch_first=True)
            for _ in range(4))
        self.split = nn.Linear(D, NODES * 8)
        self.temporal = TimeMix()
        self.merge = nn.Linear(NODES * 8, D)
        self.register_buffer("edges", temporal_edge_index(T, causal=True, max_distance=6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        h = self.split(x).view(x.shape[0], T, NODES, 8).transpose(1, 2)
        mixed = self.temporal(h, self.edges).transpose(1, 2).reshape(x.shape[0], T, -1)
        return x + self.merge(mixed)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D, HEADS, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.self_attn(x, x, x, need_weights=False)[0]


class Additive(nn.Module):
    """1-D attention over time steps: one weight per step."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(D, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(self.score(x).squeeze(-1), dim=-1)  # (batch, time)
        return (alpha[..., None] * x).sum(1)


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(D, HEADS, 48, dropout=0.0, batch_first=True), 1)
        self.layers = nn.ModuleList([Block()])
        self.model = nn.Module()
        self.model.attention = Additive()
        self.head = nn.Linear(D, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, d) -> (batch, 1)
        memory = self.encoder(x)
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        y = self.decoder(x, memory, tgt_mask=mask, tgt_is_causal=True)
        return self.head(self.model.attention(self.layers[0](y)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.training_step(batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.training_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Data(pl.LightningDataModule):
    def _loader(self, seed: int) -> DataLoader:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(4, T, D, generator=g)
        return DataLoader(TensorDataset(x, x[:, 3, :1]), batch_size=2)

    def train_dataloader(self) -> DataLoader:
        return self._loader(0)

    def val_dataloader(self) -> DataLoader:
        return self._loader(1)

    def test_dataloader(self) -> DataLoader:
        return self._loader(2)


def namespace(root: Path) -> dict[str, Any]:
    """Fresh README names; ``store`` is the store at ``root / "runs/attn"`` when it exists."""
    torch.manual_seed(0)
    model = Net().eval()
    loader = [torch.randn(2, T, D), torch.randn(2, T, D)]
    tokens = [f"tok{i}" for i in range(T)]
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(loader[0])
    ns: dict[str, Any] = {
        "attnscope": attnscope, "torch": torch, "nn": nn, "model": model, "loader": loader,
        "inputs": loader[0], "x": loader[0], "tokens": tokens, "rec": rec,
        "datamodule": Data(),
        "Trainer": functools.partial(pl.Trainer, max_epochs=1, accelerator="cpu", devices=1,
                                     enable_progress_bar=False, enable_model_summary=False,
                                     enable_checkpointing=False, default_root_dir=root),
    }
    if (root / "runs" / "attn").exists():
        ns["store"] = attnscope.open_store(root / "runs" / "attn")
    return ns


def build(root: Path) -> None:
    """The store at ``root / "runs/attn"``: every step of the README, 4 samples each."""
    ns = namespace(root)
    labels = {"tokens": ns["tokens"], "time_steps": [f"t{i}" for i in range(T)]}
    for step in STEPS:
        writer = attnscope.open_writer(root / "runs" / "attn", step=step, labels=labels)
        with torch.no_grad(), attnscope.capture(ns["model"], store=writer):
            for x in ns["loader"]:
                ns["model"](x)
