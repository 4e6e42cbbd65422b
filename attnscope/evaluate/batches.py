"""Run one batch through a model: split it into inputs and target, call the model the
way its data asks, and find the prediction in whatever the model returns.

Batches may be ``(x, y)``, ``(x1, x2, ..., y)`` (the model gets ``model(x1, x2, ...)``)
or a dict (Hugging Face style: ``model(**inputs)``, target under ``labels``).
Outputs may be a tensor, a tuple whose first tensor is the prediction (models that also
return their attention), a ``ModelOutput`` with ``logits``, or a dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from attnscope.errors import AttnscopeError
from attnscope.loading import TARGET_KEYS

OUTPUT_KEYS = ("logits", "prediction", "predictions", "preds", "output", "y_hat")


class EvaluationError(AttnscopeError):
    """Data or model outputs that evaluation cannot interpret."""


def split_batch(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor]:
    """``(args, kwargs, target)`` of one batch from a DataLoader."""
    if isinstance(batch, Mapping):
        key = next((k for k in TARGET_KEYS if k in batch), None)
        if key is None:
            raise EvaluationError(f"dict batches need the target under one of {TARGET_KEYS}; "
                                  f"got keys {sorted(batch)}")
        inputs = {k: v for k, v in batch.items() if k != key}
        return (), inputs, _as_tensor(batch[key])
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)) and len(batch) >= 2:
        return tuple(batch[:-1]), {}, _as_tensor(batch[-1])
    raise EvaluationError("every data item must hold inputs and a target: (x, y), "
                          "(x1, ..., y) or a dict with 'labels'; got "
                          f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                       if isinstance(batch, Sequence) else ""))


def find_prediction(output: Any) -> torch.Tensor:
    """The prediction tensor inside a model's return value."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, Mapping):
        for key in OUTPUT_KEYS:
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
    if isinstance(output, Sequence) and not isinstance(output, str):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise EvaluationError(f"cannot find the prediction in the model output "
                          f"({type(output).__name__}); return a tensor, a tuple starting "
                          f"with one, or a dict with one of {OUTPUT_KEYS}")


def run_batch(model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prediction, target)`` on CPU, both with the batch as first axis."""
    args, kwargs, target = split_batch(batch)
    try:
        output = model(*args, **kwargs)
    except AttnscopeError:
        raise
    except Exception as err:
        text = " ".join(str(err).split())[:200]
        raise EvaluationError(f"the model failed on a test batch: {type(err).__name__}: "
                              f"{text}") from None
    prediction = find_prediction(output).detach().cpu()
    target = target.detach().cpu()
    if prediction.dim() == 0 or target.dim() == 0 or len(prediction) != len(target):
        raise EvaluationError(f"model output {tuple(prediction.shape)} and target "
                              f"{tuple(target.shape)} do not share a batch axis")
    return prediction, target


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except Exception:
        raise EvaluationError(f"the target must be a tensor or numbers, got "
                              f"{type(value).__name__}") from None
