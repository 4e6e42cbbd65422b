"""Run a hierarchical model over its first samples under capture and collect what a
dashboard needs: the levels grouped into (epoch, channel) structure, true and predicted
class per epoch, and the input signal when it is ``(epoch, channel, time)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from attnscope.errors import DataError, NoAttentionFoundError, SelectionError
from attnscope.hierarchy.levels import LEVELS, Level, capture_globs, check_names, find_levels


@dataclass
class Hierarchy:
    """Attention of the first samples, by level.

    Attributes:
        levels: ``{"epoch" | "channel" | "temporal": Level}`` (see :class:`Level`).
        true, pred: ``(sample, epoch)`` classes, None when the outputs are not per epoch.
        signal: ``(sample, epoch, channel, time)`` input, None when shaped otherwise.
    """

    levels: dict[str, Level]
    true: np.ndarray | None
    pred: np.ndarray | None
    signal: np.ndarray | None
    notes: list[str] = field(default_factory=list)
    num_classes: int | None = None

    @property
    def num_channels(self) -> int | None:
        if "temporal" in self.levels:
            return int(self.levels["temporal"].weights.shape[2])
        if "channel" in self.levels and self.levels["channel"].weights.shape[-2] == 1:
            return int(self.levels["channel"].weights.shape[-1])
        return None


def collect(model: nn.Module, data: Any, *, num_samples: int = 4,
            epoch_module: str | None = None, channel_module: str | None = None,
            temporal_module: str | None = None, channel_names: Sequence[str] | None = None,
            batch_size: int = 16) -> Hierarchy:
    """Capture the first ``num_samples`` of ``data`` and group the maps by level.

    Example:
        >>> h = collect(model, test_set, num_samples=2, channel_module="*.lead_gate")
        >>> h.levels["temporal"].weights.shape   # (sample, epoch, channel, head, q, time)

    ``data``: a Dataset or DataLoader of ``(x, y)``, or an ``(x, y)`` tuple of tensors.
    The model's train/eval mode is restored afterwards.
    """
    if num_samples < 1:
        raise SelectionError(f"--num-samples must be at least 1, not {num_samples}")
    if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
        data = torch.utils.data.TensorDataset(*data)  # ``(x, y)`` as a factory returns it
    globs = {"epoch": epoch_module, "channel": channel_module, "temporal": temporal_module}
    named = any(globs.values())
    try:
        run = _run(model, data, num_samples, batch_size, capture_globs(globs))
    except NoAttentionFoundError:
        if named:
            raise
        run = None  # every level in modules not named attention: the wide look below
    notes: list[str] = []
    levels: dict[str, Level] = {}
    if run is not None:
        rec, inputs, targets, preds, first = run
        shape = _shape(inputs)
        try:
            levels = find_levels(rec, first, globs, *_grid(shape))
        except SelectionError:
            if named:
                raise
    if not named and not {"epoch", "channel", "temporal"} <= set(levels):
        # a level whose module name does not say attention (a "LeadWeighting" softmax) is
        # not captured by default: look at every softmax, keep the levels already found
        rec, inputs, targets, preds, first = _run(model, data, num_samples, batch_size, ["*"])
        shape = _shape(inputs)
        fixed = {lv: _exact(found.module) for lv, found in levels.items()}
        wide = find_levels(rec, first, fixed, *_grid(shape))
        for lv, found in wide.items():
            if lv in levels:
                found.chosen_by = levels[lv].chosen_by
            else:
                found.chosen_by += "; found by looking at every softmax (its name does not " \
                                   "say attention)"
        levels = {lv: wide[lv] for lv in LEVELS if lv in wide}
    got = sum(len(t) for t in targets)
    if got < num_samples:
        notes.append(f"--num-samples {num_samples}, but the data has {got} sample"
                     f"{'s' if got != 1 else ''}: {got} dashboard{'s' if got != 1 else ''}")
    x = torch.cat(inputs).float() if all(isinstance(i, torch.Tensor) for i in inputs) else None
    n_epochs = levels["epoch"].weights.shape[-1]
    output = torch.cat(preds)
    true, pred = _labels(torch.cat(targets), output, n_epochs, notes)
    found = Hierarchy(levels, true, pred, None, notes)
    if true is not None:
        found.num_classes = max(int(output.shape[-1]) if output.ndim == 3 else 0,
                                int(true.max()) + 1, int(pred.max()) + 1)
    check_names(channel_names, found.num_channels)
    if x is not None and len(shape) == 3 and shape[:2] == (n_epochs, found.num_channels):
        found.signal = x.numpy()
    elif x is not None:
        notes.append(f"input shape {shape} is not (epoch, channel, time): figures show "
                     "attention without the signal")
    return found


def _run(model: nn.Module, data: Any, num_samples: int, batch_size: int,
         include: list[str] | None) -> tuple[Any, list, list, list, int]:
    """The first ``num_samples`` through the model under capture: the recording, inputs,
    targets, outputs and the first call's batch size. Train/eval mode is restored."""
    from attnscope.capturing import capture
    from attnscope.data import find_prediction, make_loader, split_batch

    inputs: list = []
    targets: list = []
    preds: list = []
    first = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, include=include) as rec:
            for batch in make_loader(data, batch_size):
                args, kwargs, target = split_batch(batch)
                keep = num_samples - sum(len(t) for t in targets)
                args = tuple(a[:keep] if isinstance(a, torch.Tensor) else a for a in args)
                kwargs = {k: v[:keep] if isinstance(v, torch.Tensor) else v
                          for k, v in kwargs.items()}
                preds.append(find_prediction(model(*args, **kwargs)).detach().cpu())
                inputs.append(args[0] if args else None)
                targets.append(target[:keep].cpu())
                first = first or len(targets[0])
                if sum(len(t) for t in targets) >= num_samples:
                    break
    except NoAttentionFoundError:
        if not targets:  # nothing ran: the data, not the model, is the problem
            raise DataError("the data set is empty: no sample to draw a dashboard of") from None
        raise
    finally:
        model.train(was_training)
    return rec, inputs, targets, preds, first


def _shape(inputs: list) -> tuple[int, ...]:
    ok = inputs and all(isinstance(i, torch.Tensor) for i in inputs)
    return tuple(inputs[0].shape[1:]) if ok else ()


def _grid(shape: tuple[int, ...]) -> tuple[int | None, int | None]:
    """Epochs and channels when the input is ``(batch, epoch, channel, time)``."""
    return (shape[0], shape[1]) if len(shape) == 3 else (None, None)


def _exact(name: str) -> str:
    """A glob matching only ``name`` (brackets escaped)."""
    return "".join(f"[{c}]" if c in "[]*?" else c for c in name)


def _labels(target: torch.Tensor, output: torch.Tensor, n: int, notes: list[str]
            ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(sample, epoch)`` true and predicted classes, when the shapes say so."""
    if output.ndim == 3 and output.shape[1] != n and output.shape[2] == n:
        output = output.transpose(1, 2)  # (batch, class, epoch)
    if output.ndim == 3 and output.shape[1] == n and tuple(target.shape) == tuple(output.shape[:2]):
        return target.long().numpy(), output.argmax(-1).numpy()
    notes.append(f"output {tuple(output.shape)} / target {tuple(target.shape)} are not "
                 f"(batch, {n} epochs[, classes]): epochs are not labelled true->pred")
    return None, None
