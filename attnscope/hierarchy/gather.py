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

from attnscope.errors import SelectionError
from attnscope.hierarchy.levels import Level, capture_globs, check_names, find_levels


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
    from attnscope.capturing import capture
    from attnscope.data import find_prediction, make_loader, split_batch

    if num_samples < 1:
        raise SelectionError(f"--num-samples must be at least 1, not {num_samples}")
    if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
        data = torch.utils.data.TensorDataset(*data)  # ``(x, y)`` as a factory returns it
    globs = {"epoch": epoch_module, "channel": channel_module, "temporal": temporal_module}
    inputs, targets, preds, first = [], [], [], 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, include=capture_globs(globs)) as rec:
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
    finally:
        model.train(was_training)
    x = torch.cat(inputs).float() if all(isinstance(i, torch.Tensor) for i in inputs) else None
    shape = tuple(x.shape[1:]) if x is not None else ()
    levels = find_levels(rec, first, globs, shape[0] if len(shape) == 3 else None,
                         shape[1] if len(shape) == 3 else None)
    n_epochs = levels["epoch"].weights.shape[-1]
    notes: list[str] = []
    true, pred = _labels(torch.cat(targets), torch.cat(preds), n_epochs, notes)
    found = Hierarchy(levels, true, pred, None, notes)
    check_names(channel_names, found.num_channels)
    if x is not None and len(shape) == 3 and shape[:2] == (n_epochs, found.num_channels):
        found.signal = x.numpy()
    elif x is not None:
        notes.append(f"input shape {shape} is not (epoch, channel, time): figures show "
                     "attention without the signal")
    return found


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
