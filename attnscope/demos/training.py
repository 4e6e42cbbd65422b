"""Training plumbing for the demo families: one Lightning wrapper around a plain
``nn.Module``, one train-then-capture run through
:class:`~attnscope.integrations.lightning.AttentionCallback`, per-step labels written into
the store, and seeded loaders.

Imported only inside a family's ``train`` (it imports Lightning), so listing the demos
stays fast. Left out on purpose: anything family-specific (data, models, metrics).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from attnscope.store.schema import epoch_of, epoch_step

Loaders = tuple[Any, Any, Any]


class DemoModule(pl.LightningModule):
    """Trains ``net`` with Adam, kept as the submodule ``attribute`` (captured names read
    ``<attribute>.<submodule>``).

    With ``loss``: the batch is ``(x, y, ...)``, the model gets ``x``, and validation and
    test log ``loss(net(x), y)``. Without: ``net.loss(batch)`` trains, and validation and
    test call ``net.evaluate(batch)``, which returns ``(metrics, labels)``; ``labels``
    (lists with one item per sample) become the step's store labels. Parameters whose
    names end with one of ``fast`` learn ``fast_factor`` times faster.
    """

    def __init__(self, net: nn.Module, lr: float, *, loss: Callable[..., Any] | None = None,
                 attribute: str = "net", fast: tuple[str, ...] = (),
                 fast_factor: float = 5.0) -> None:
        super().__init__()
        self.attribute, self.lr, self.loss_fn = attribute, lr, loss
        self.fast, self.fast_factor = fast, fast_factor
        self.add_module(attribute, net)
        self.step_labels: dict[str, list[Any]] = {}

    @property
    def model_(self) -> nn.Module:
        return self._modules[self.attribute]

    def forward(self, batch_or_x: Any) -> Any:
        if self.loss_fn is None:
            return self.model_.evaluate(batch_or_x)
        return self.model_(batch_or_x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.loss_fn is None:
            value = self.model_.loss(batch)
            self.log("train_loss", value, prog_bar=False)
        else:
            value = self.loss_fn(self(batch[0]), batch[1])
            self.log("train_loss", value)
        return value

    def _eval(self, batch: Any, prefix: str) -> None:
        if self.loss_fn is not None:
            self.log(f"{prefix}_loss", self.loss_fn(self(batch[0]), batch[1]))
            return
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
        named = list(self.named_parameters())
        quick = [p for n, p in named if self.fast and n.endswith(self.fast)]
        rest = [p for n, p in named if not (self.fast and n.endswith(self.fast))]
        groups = [{"params": rest}] + ([{"params": quick, "lr": self.fast_factor * self.lr}]
                                       if quick else [])
        return torch.optim.Adam(groups, lr=self.lr)


class StepLabels(Callback):
    """After the attention callback closed a step, store the labels the module gathered
    (plus fixed ones such as channel names). Must come after ``AttentionCallback``."""

    def __init__(self, store_path: Path, fixed: dict[str, Any] | None = None) -> None:
        self.store_path, self.fixed = store_path, dict(fixed or {})

    def _write(self, step: str, pl_module: DemoModule) -> None:
        from attnscope.store import open_store, set_step_labels

        if (self.store_path / "attnscope.json").exists() and \
                step in open_store(self.store_path).steps:
            set_step_labels(self.store_path, step, {**self.fixed, **pl_module.step_labels})

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._write(epoch_step(trainer.current_epoch), pl_module)

    def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._write("test", pl_module)


def train_and_capture(module: DemoModule, loaders: Loaders, out: Path, *, epochs: int,
                      trained: bool, samples: int | None = None, export: bool = False,
                      labels: dict[str, Any] | None = None, threads: int | None = None,
                      **capture_options: Any) -> float:
    """Fit and test ``module`` with validation (every epoch) and test captured into
    ``out / "store"``; returns the seconds ``fit`` took.

    ``trained=False`` skips fitting: one validation pass (step ``epoch_000``) and the
    test pass still go through the same callbacks, so the control run has the same
    store layout as the trained one. ``labels``: fixed labels added to every step, with
    those ``net.evaluate`` gathers (``None``: no labels step). ``threads``: torch threads
    while it runs (tiny models gain nothing from more, and lose much on shared cores).
    """
    from attnscope.demos.progress import epoch_callback
    from attnscope.integrations.lightning import AttentionCallback

    callbacks: list[Any] = [epoch_callback(epochs, trained),
                            AttentionCallback(every_n_epochs=1, samples=samples, dir=out,
                                              export=export, log_images=False,
                                              **capture_options)]
    if labels is not None:
        callbacks.append(StepLabels(out / "store", labels))
    train, val, test = loaders
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1,
                             callbacks=callbacks, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             default_root_dir=out, deterministic=True, num_sanity_val_steps=0)
    if threads is not None:
        torch.set_num_threads(threads)  # restored by the demo's process_state scope
    seconds = 0.0
    with warnings.catch_warnings(), quiet_lightning():
        # advice about dataloader workers and logging is noise on a small CPU demo
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many "
                                "workers|number of training batches|self.log|"
                                "LightningModule.log).*")
        if trained:
            start = time.perf_counter()
            trainer.fit(module, train, val)
            seconds = time.perf_counter() - start
        else:
            trainer.validate(module, val, verbose=False)
        trainer.test(module, test, verbose=False)
    return seconds


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's info lines ("GPU available: False", tips, "max_epochs reached") off
    while a demo trains; set here, after Lightning's import set its own levels."""
    from attnscope.demos.demo import QUIET_LOGGERS

    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def make_loaders(sets: list[tuple[torch.Tensor, ...]], train_batch: int,
                 gen: torch.Generator, eval_batch: int | None = None) -> Loaders:
    """Train (shuffled, seeded), validation and test loaders. Validation and test are one
    batch each unless ``eval_batch`` says otherwise: every captured batch is one commit."""
    from torch.utils.data import DataLoader, TensorDataset

    def size(i: int, s: tuple[torch.Tensor, ...]) -> int:
        return train_batch if i == 0 else eval_batch or len(s[0])

    return tuple(DataLoader(TensorDataset(*s), batch_size=size(i, s), shuffle=i == 0,
                            generator=gen if i == 0 else None) for i, s in enumerate(sets))


def epoch_steps(store: Any) -> list[str]:
    """``epoch_000``, ``epoch_001`` ... in order."""
    return sorted((s for s in store.steps if epoch_of(s) is not None), key=epoch_of)
