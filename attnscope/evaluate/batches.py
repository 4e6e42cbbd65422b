"""Run one batch through a model: split it into inputs and target, call the model the
way its data asks, and find the prediction in whatever the model returns.

Batches follow :mod:`attnscope.data`: ``(x, y)``, ``(x1, x2, ..., y)`` (the model gets
``model(x1, x2, ...)``) or a dict (Hugging Face style: ``model(**inputs)``, target under
``labels``).
Outputs may be a tensor, a tuple whose first tensor is the prediction (models that also
return their attention), a ``ModelOutput`` with ``logits``, or a dict.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attnscope import data
from attnscope.data import OUTPUT_KEYS, split_batch  # noqa: F401  (OUTPUT_KEYS re-exported)
from attnscope.errors import AttnscopeError, DataError


class EvaluationError(AttnscopeError):
    """Data or model outputs that evaluation cannot interpret."""


def find_prediction(output: Any) -> torch.Tensor:
    """The prediction tensor inside a model's return value (see
    :func:`attnscope.data.find_prediction`), as an :class:`EvaluationError` when absent."""
    try:
        return data.find_prediction(output)
    except DataError as err:
        raise EvaluationError(str(err)) from None


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
