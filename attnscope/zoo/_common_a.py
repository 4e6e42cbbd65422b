"""Plumbing shared by the trained reference families (lstm, convtran, text): seeding, a
quiet deterministic Lightning Trainer, train-then-capture with the
:class:`~attnscope.integrations.lightning.AttentionCallback`, the evolution figure and
``summary.md``.

Kept out on purpose: anything family-specific (data, models, metrics); each family
module owns those so it reads top to bottom on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnscope.zoo.registry import DemoResult


def seed_all(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for the synthetic data."""
    import lightning.pytorch as pl

    pl.seed_everything(seed, workers=True, verbose=False)
    return torch.Generator().manual_seed(seed)


def make_trainer(out: Path, epochs: int, callbacks: list[Any]) -> Any:
    """CPU, deterministic, no logger/checkpoints/progress bars: a demo, not a run."""
    import lightning.pytorch as pl

    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=out, deterministic=True,
                      num_sanity_val_steps=0)


def run_trainer(module: Any, loaders: tuple[Any, Any, Any], out: Path, *, epochs: int,
                trained: bool, callbacks: list[Any], threads: int | None = None) -> float:
    """Fit ``module`` and test it; returns the seconds spent in ``fit``.

    ``trained=False`` skips fitting: one validation pass (step ``epoch_000``) and the
    test pass still go through the same callbacks, so the control run has the same
    store layout as the trained one. ``threads``: torch threads while it runs (tiny
    models gain nothing from more, and lose much when cores are shared).
    """
    import logging
    import warnings

    train, val, test = loaders
    quiet = logging.getLogger("lightning.pytorch")
    level, previous_threads = quiet.level, torch.get_num_threads()
    quiet.setLevel(logging.WARNING)
    if threads is not None:
        torch.set_num_threads(threads)
    seconds = 0.0
    try:
        trainer = make_trainer(out, epochs, callbacks)
        with warnings.catch_warnings():
            # advice about dataloader workers and logging is noise on a 2-core demo
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
    finally:
        quiet.setLevel(level)
        torch.set_num_threads(previous_threads)
    return seconds


def train_and_capture(module: Any, loaders: tuple[Any, Any, Any], out: Path, *, epochs: int,
                      trained: bool, samples: int | None, export: bool = True,
                      **capture_options: Any) -> float:
    """Fit and test ``module`` with validation (every epoch) and test captured into
    ``out / "store"``; returns the seconds spent in ``fit``."""
    from attnscope.integrations.lightning import AttentionCallback

    callback = AttentionCallback(every_n_epochs=1, samples=samples, dir=out, export=export,
                                 log_images=False, **capture_options)
    return run_trainer(module, loaders, out, epochs=epochs, trained=trained,
                       callbacks=[callback])


def epoch_steps(store: Any) -> list[str]:
    """``epoch_000``, ``epoch_001`` ... in order."""
    return sorted(s for s in store.steps if s.startswith("epoch_"))


def plot_evolution(rows: np.ndarray, metric: Sequence[float], *, steps: Sequence[str],
                   marked: Sequence[int] | None = None, key_axis: str = "time step",
                   metric_name: str = "metric", threshold: float | None = None,
                   title: str = "", path: Path) -> Path:
    """Attention of one sample across epochs (rows) beside the pattern metric per epoch.

    attnscope.plot draws one map at a time; this joins several epochs in one figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 0.28 * len(steps) + 2.4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[3, 1])
    image = left.imshow(rows, aspect="auto", cmap="viridis", interpolation="nearest")
    left.set_yticks(range(len(steps)), list(steps), fontsize=7)
    left.set_xlabel(key_axis)
    for m in marked or ():
        left.axvline(m, color="tab:red", lw=0.8, ls=":")
    fig.colorbar(image, ax=left, label="attention weight", shrink=0.9)
    left.set_title(title, fontsize=9)
    right.plot(np.arange(len(metric)), metric, marker="o", color="tab:blue")
    if threshold is not None:
        right.axhline(threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
        right.legend(fontsize=7)
    right.set_xlabel("epoch")
    right.set_ylabel(metric_name, fontsize=8)
    right.set_title("pattern metric (validation)", fontsize=9)
    right.grid(alpha=0.3)
    fig.savefig(path)
    return path


def write_view(out: Path, max_mb: float = 40.0) -> Path | None:
    """``out/view.html``: the interactive viewer of the demo's store (every step on the
    slider), narrowed to the last step, then one head, when that is too large."""
    if not (out / "store" / "attnscope.json").exists():
        return None
    from attnscope.viewer import ViewTooLargeError, render_html

    for selection in ({}, {"steps": "last"}, {"steps": "last", "heads": [0]}):
        try:
            return render_html(out / "store", max_mb=max_mb, **selection).save(out / "view.html")
        except ViewTooLargeError:
            continue
    return None


def write_summary(out: Path, result: DemoResult, *, expected: str, task: str,
                  trained: bool, notes: Sequence[str] = ()) -> Path:
    """``out/summary.md``: what was expected, what the metric shows, how long training took."""
    verdict = "shown" if result.passed else "NOT shown"
    lines = [
        f"# attnscope demo: {result.family}",
        "",
        f"- task: {task}",
        f"- expected attention: {expected}",
        f"- model: {'trained' if trained else 'untrained control (same seed, no training)'}",
        f"- {result.metric_name}: **{result.metric:.4f}** "
        f"(threshold {result.threshold:.4f}) -> pattern {verdict}",
        f"- training time: {result.train_seconds:.1f} s",
    ]
    lines += [f"- {k}: {v:.4g}" for k, v in result.details.items()]
    lines += [f"- {n}" for n in notes]
    view = write_view(out)
    files = [*result.files, *([view] if view else [])]
    if files:
        lines += ["", "## Files", ""] + [f"- `{Path(f).name}`" for f in files]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def lightning_module(model: torch.nn.Module, loss: Any, lr: float,
                     fast: tuple[str, ...] = (), fast_factor: float = 5.0) -> Any:
    """A LightningModule around ``model`` (kept as ``.model``, so captured names read
    ``model.<submodule>``) with Adam; parameters whose names end with one of ``fast``
    learn ``fast_factor`` times faster."""
    import lightning.pytorch as pl

    class Task(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

        def _step(self, batch: Any, name: str) -> torch.Tensor:
            value = loss(self(batch[0]), batch[1])
            self.log(name, value)
            return value

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self._step(batch, "train_loss")

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self._step(batch, "val_loss")

        def test_step(self, batch: Any, batch_idx: int) -> None:
            self._step(batch, "test_loss")

        def configure_optimizers(self) -> torch.optim.Optimizer:
            named = list(self.named_parameters())
            quick = [p for n, p in named if fast and n.endswith(fast)]
            rest = [p for n, p in named if not (fast and n.endswith(fast))]
            groups = [{"params": rest}] + ([{"params": quick, "lr": fast_factor * lr}]
                                           if quick else [])
            return torch.optim.Adam(groups, lr=lr)

    return Task()
