"""Attention captured while a Lightning model trains: a fixed subset of validation
samples every N epochs (steps ``epoch_000``, ``epoch_001`` ...) and the test set
(step ``test``), streamed into an attention store, exported at the end of fit/test in
the layout existing scripts read, and drawn into the trainer's logger.

Left out on purpose: capture on training batches (the weights change within an epoch;
use ``attnscope.capture`` in your own loop for that) and non-rank-zero exports.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from attnscope.capturing import capture
from attnscope.errors import AttnscopeError
from attnscope.integrations.config import AttentionConfig
from attnscope.store.schema import TEST_STEP, epoch_step


class AttentionCallback(Callback):
    """Capture attention on validation and test batches.

    Example:
        >>> trainer = Trainer(callbacks=[AttentionCallback(every_n_epochs=1, samples=32)])
        >>> trainer.fit(model, datamodule)   # <log_dir>/attention/store, attention_*.npy ...
        >>> trainer.test(model, datamodule)

    Args:
        every_n_epochs: capture the validation set every this many epochs.
        samples: the first this many validation samples (dataset order), the same every
            epoch so epochs compare; ``None`` for all. The test set is always complete.
        modules: include globs passed to ``attnscope.capture`` (``None``: all attention).
        heads, reduce, dtype: selection, as in ``attnscope.capture``.
        dir: output folder; default ``<trainer.log_dir>/attention``.
        export: write ``attention_<step>.npy``, ``attention_all_epochs.npz`` and
            ``attention_all_epochs.csv`` at the end of fit and test.
        log_images: add a heatmap (bar plot for 1-D attention) per epoch to every logger
            of the trainer, each the way it takes figures (a CSV logger: a PNG file).
        durable: fsync every captured batch (survives power loss; a killed process
            keeps its committed batches either way). Off by default: it costs time.
            Batches are written on a worker thread while the next one runs.
        log_metrics: log per-head metrics of every captured step as logger scalars
            (``attention/<module>/head<h>/<metric>``) in every logger of the trainer;
            ``True`` for normalised entropy, peak, distance and first-key mass, or a list
            of names from ``attnscope.analysis.METRICS``.
        per_epoch, test: capture validation epochs / the test set.
        formats: which exports ``export`` writes (``npy``, ``npz``, ``csv``).
        capture_options: any other ``attnscope.capture`` keyword (``returns=`` ...).

    Batches that are not captured run with no hook at all. DDP: each rank writes its own
    part of a step; rank zero merges the parts in dataset order, each sample once.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        samples: int | None = 32,
        modules: Sequence[str] | None = None,
        heads: Sequence[int] | None = None,
        reduce: str | None = None,
        dtype: str = "float16",
        dir: str | Path | None = None,
        export: bool = True,
        log_images: bool = True,
        durable: bool = False,
        log_metrics: bool | Sequence[str] = False,
        per_epoch: bool = True,
        test: bool = True,
        formats: Sequence[str] = ("npy", "npz", "csv"),
        **capture_options: Any,
    ) -> None:
        AttentionConfig(every_n_epochs=every_n_epochs, samples=samples, dtype=dtype,
                        per_epoch=per_epoch, test=test, formats=tuple(formats))  # checks
        self.per_epoch, self.test, self.formats = per_epoch, test, tuple(formats)
        self.every_n_epochs, self.samples = every_n_epochs, samples
        self.capture_options = dict(capture_options, heads=heads, reduce=reduce, dtype=dtype,
                                    include=list(modules) if modules else None)
        self.dtype, self.dir = dtype, None if dir is None else Path(dir)
        self.export, self.log_images, self.durable = export, log_images, durable
        if not isinstance(log_metrics, bool):
            from attnscope.analysis.metrics import METRICS

            bad = [m for m in log_metrics if m not in METRICS]
            if bad:
                raise ValueError(f"log_metrics {bad} unknown; choose from {METRICS}")
        self.log_metrics = log_metrics
        self._writer: Any = None
        self._capture: Any = None
        self._subset: Any = None
        self._step = ""

    @classmethod
    def from_config(cls, config: AttentionConfig, **kwargs: Any) -> AttentionCallback | None:
        """The callback a config asks for, or ``None`` when ``enabled`` is false."""
        if not config.enabled:
            return None
        return cls(**{**config.callback_options(), **kwargs})

    # -- where things go -------------------------------------------------------------
    def output_dir(self, trainer: Any) -> Path:
        if self.dir is not None:
            return self.dir
        base = trainer.log_dir or trainer.default_root_dir
        return Path(base) / "attention"

    def store_path(self, trainer: Any) -> Path:
        return self.output_dir(trainer) / "store"

    def _part(self, trainer: Any, step: str) -> str:
        return step if trainer.world_size == 1 else f"{step}.rank{trainer.global_rank}"

    # -- validation ------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if (not self.per_epoch or trainer.sanity_checking
                or (trainer.current_epoch + 1) % self.every_n_epochs):
            return
        self._begin(trainer, pl_module, epoch_step(trainer.current_epoch),
                    trainer.val_dataloaders, self.samples)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx,
                                  dataloader_idx=0) -> None:
        self._enter(pl_module, batch, batch_idx, dataloader_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        self._exit()

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._end(trainer, pl_module)

    # -- test --------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if not self.test:
            return
        self._begin(trainer, pl_module, TEST_STEP, trainer.test_dataloaders, None)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx,
                            dataloader_idx=0) -> None:
        self._enter(pl_module, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                          dataloader_idx=0) -> None:
        self._exit()

    def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._end(trainer, pl_module)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.export and trainer.is_global_zero and self._has_store(trainer):
            self.write_exports(trainer)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.on_fit_end(trainer, pl_module)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._capture is not None:
            ctx, self._capture = self._capture, None
            # the training error is what matters; a capture error on top would hide it
            with contextlib.suppress(Exception):
                ctx.__exit__(type(exception), exception, exception.__traceback__)
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    # -- the work ----------------------------------------------------------------------
    def _begin(self, trainer, pl_module, step: str, loaders: Any, limit: int | None) -> None:
        from attnscope.integrations.subset import SampleSubset
        from attnscope.store import open_writer

        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        self._subset, self._step = SampleSubset(loader, limit), step
        ids = self._subset.ids()
        self._writer = open_writer(self.store_path(trainer), step=self._part(trainer, step),
                                   model=pl_module, dtype=self.dtype, if_exists="overwrite",
                                   durable=self.durable, form=self.capture_options.get("form"),
                                   labels=None if ids is None else {"sample_ids": ids},
                                   background=True)

    def _enter(self, pl_module, batch, batch_idx, dataloader_idx) -> None:
        if self._writer is None:
            return
        rows = self._subset.rows(batch, batch_idx, dataloader_idx)
        if not rows:
            return  # not captured: no hook, no mode, no cost
        options = dict(self.capture_options)
        options["samples"] = rows
        self._capture = capture(pl_module, store=self._writer, keep=False, **options)
        self._capture.__enter__()

    def _exit(self) -> None:
        if self._capture is not None:
            ctx, self._capture = self._capture, None
            ctx.__exit__(None, None, None)

    def _end(self, trainer, pl_module) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if trainer.world_size > 1:
            trainer.strategy.barrier("attnscope-merge")
            if trainer.is_global_zero:
                from attnscope.store.merge import merge_steps

                merge_steps(self.store_path(trainer), self._step,
                            [f"{self._step}.rank{r}" for r in range(trainer.world_size)])
            trainer.strategy.barrier("attnscope-merged")
        if self.log_images and trainer.is_global_zero and trainer.loggers:
            self.log_figure(trainer, self._step)
        if self.log_metrics and trainer.is_global_zero and trainer.loggers:
            self.log_attention_metrics(trainer, self._step)

    def _has_store(self, trainer: Any) -> bool:
        return (self.store_path(trainer) / "attnscope.json").exists()

    # -- overridable outputs ---------------------------------------------------------
    def write_exports(self, trainer: Any) -> list[Path]:
        """``attention_<step>.npy``, ``attention_all_epochs.npz`` (keys ``epoch_0`` ...,
        ``test``, ``time_steps``) and ``attention_all_epochs.csv`` beside the store."""
        from attnscope.store import ExportTooLargeError, export, open_store

        store = open_store(self.store_path(trainer))
        out = self.output_dir(trainer)
        # the same defaults as ``attnscope export``: one set of names for both
        written = [p for form in self.formats if form != "csv"
                   for p in export(store, out, form)]
        if "csv" in self.formats:
            try:
                written += export(store, out, "csv")
            except (ExportTooLargeError, AttnscopeError) as err:
                warnings.warn(f"attention CSV not written: {err}", stacklevel=2)
        return written

    def log_figure(self, trainer: Any, step: str) -> None:
        """Heatmap (bar plot for 1-D attention) of the first captured sample, head mean,
        into every logger of the trainer (see :func:`log_figure_to`)."""
        from attnscope.integrations.loggers import log_step_figure

        log_step_figure(trainer.loggers, self.store_path(trainer), step, trainer.global_step)

    def log_attention_metrics(self, trainer: Any, step: str) -> None:
        """Per-head metrics of ``step`` (mean over its samples) as scalars, into every
        logger of the trainer."""
        from attnscope.integrations.loggers import log_step_scalars

        log_step_scalars(trainer.loggers, self.store_path(trainer), step, self.log_metrics,
                         trainer.global_step)
