"""Plumbing shared by the translation, sleep and graph families: seeding, a generic
Lightning wrapper around a plain ``nn.Module`` task, train-then-capture through
:class:`~attnscope.integrations.lightning.AttentionCallback`, per-step labels written
into the store, and ``summary.md``.

Imported only inside ``run`` (it imports Lightning), so listing the families stays fast.
Left out on purpose: anything family-specific (data, model, metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn


class ZooModule(pl.LightningModule):
    """Trains ``net.loss(batch)``; validation/test call ``net.evaluate(batch)``, which
    returns ``(metrics, labels)``: the attention captured there is what the store holds,
    and ``labels`` (lists with one item per sample) become the step's store labels."""

    def __init__(self, net: nn.Module, lr: float) -> None:
        super().__init__()
        self.net, self.lr = net, lr
        self.step_labels: dict[str, list[Any]] = {}

    def forward(self, batch: Any) -> Any:
        return self.net.evaluate(batch)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.net.loss(batch)
        self.log("train_loss", loss, prog_bar=False)
        return loss

    def _eval(self, batch: Any, prefix: str) -> None:
        metrics, labels = self(batch)
        for key, value in metrics.items():
            self.log(f"{prefix}_{key}", value, batch_size=len(batch[0]))
        for key, items in labels.items():
            self.step_labels.setdefault(key, []).extend(items)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.step_labels = {}

    def on_test_epoch_start(self) -> None:
        self.step_labels = {}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def add_step_labels(store_path: Path, step: str, labels: dict[str, Any]) -> None:
    """Merge ``labels`` into a step already written (no-op when it was not written)."""
    from attnscope.store import open_store, set_step_labels

    if step in open_store(store_path).steps:
        set_step_labels(store_path, step, labels)


class StepLabels(Callback):
    """After the attention callback closed a step, store the labels the module gathered
    (plus fixed ones such as channel names). Must come after ``AttentionCallback``."""

    def __init__(self, store_path: Path, fixed: dict[str, Any] | None = None) -> None:
        self.store_path, self.fixed = store_path, dict(fixed or {})

    def _write(self, step: str, pl_module: ZooModule) -> None:
        if (self.store_path / "attnscope.json").exists():
            add_step_labels(self.store_path, step, {**self.fixed, **pl_module.step_labels})

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._write(f"epoch_{trainer.current_epoch:03d}", pl_module)

    def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._write("test", pl_module)


def train_and_capture(net: nn.Module, loaders: tuple[Any, Any, Any], out: Path, *,
                      epochs: int, trained: bool, lr: float,
                      fixed_labels: dict[str, Any] | None = None) -> tuple[ZooModule, float]:
    """Fit and test ``net`` with validation (every epoch) and test captured into
    ``out / "store"``, their labels added to each step; returns the module and the
    seconds ``fit`` took."""
    from attnscope.integrations.lightning import AttentionCallback
    from attnscope.zoo._common_a import run_trainer

    module = ZooModule(net, lr)
    callbacks = [AttentionCallback(every_n_epochs=1, samples=None, dir=out, export=False,
                                   log_images=False), StepLabels(out / "store", fixed_labels)]
    seconds = run_trainer(module, loaders, out, epochs=epochs, trained=trained,
                          callbacks=callbacks, threads=1)
    return module, seconds


def make_loaders(sets: list[tuple[torch.Tensor, ...]], train_batch: int,
                 gen: torch.Generator, eval_batch: int | None = None) -> tuple[Any, Any, Any]:
    """Train (shuffled, seeded), validation and test loaders. Validation and test are one
    batch each unless ``eval_batch`` says otherwise: every captured batch is one commit."""
    from torch.utils.data import DataLoader, TensorDataset

    def size(i: int, s: tuple[torch.Tensor, ...]) -> int:
        return train_batch if i == 0 else eval_batch or len(s[0])

    return tuple(DataLoader(TensorDataset(*s), batch_size=size(i, s), shuffle=i == 0,
                            generator=gen if i == 0 else None) for i, s in enumerate(sets))
