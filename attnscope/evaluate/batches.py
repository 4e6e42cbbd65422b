"""Run one batch through a model: split it into inputs and target, call the model the
way its data asks, and find the prediction in whatever the model returns.

Batches follow :mod:`attnscope.data`: ``(x, y)``, ``(x1, x2, ..., y)`` (the model gets
``model(x1, x2, ...)``) or a dict (Hugging Face style: ``model(**inputs)``, target under
``labels``).
Outputs may be a tensor, a tuple whose first tensor is the prediction (models that also
return their attention), a ``ModelOutput`` with ``logits``, or a dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from attnscope.data import split_batch
from attnscope.errors import AttnscopeError, DataError

OUTPUT_KEYS = ("logits", "prediction", "predictions", "preds", "output", "y_hat")


class EvaluationError(AttnscopeError):
    """Data or model outputs that evaluation cannot interpret."""


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
    try:
        args, kwargs, target = split_batch(batch)
    except DataError as err:
        raise EvaluationError(str(err)) from err
    try:
        output = model(*args, **kwargs)
    except AttnscopeError:
        raise
    except Exception as err:
        text = " ".join(str(err).split())[:200]
        raise EvaluationError(f"the model failed on a test batch: {type(err).__name__}: "
                              f"{text}") from err
    prediction = find_prediction(output).detach().cpu()
    target = target.detach().cpu()
    if prediction.dim() == 0 or target.dim() == 0 or len(prediction) != len(target):
        raise EvaluationError(f"model output {tuple(prediction.shape)} and target "
                              f"{tuple(target.shape)} do not share a batch axis")
    return prediction, target
