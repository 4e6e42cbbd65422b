"""The batch protocol: which part of a data item is the model's input, which is the
target, and how many samples a batch holds. Capture over a data set, evaluation, the
command line and the Lightning callback all read batches through this one module.

Accepted batches:

* a tensor: the input, called as ``model(x)``;
* ``(x, y)`` / ``(x1, ..., xn, y)``: the last item is the target, the model gets
  ``model(x1, ..., xn)`` (a one-item sequence is the input alone);
* a dict (Hugging Face style): ``model(**inputs)`` without the target key, which is
  one of :data:`TARGET_KEYS`.

Example:
    >>> args, kwargs = model_inputs(batch)
    >>> model(*args, **kwargs)
    >>> batch_size(batch)

Left out on purpose: moving batches between devices (the caller's loader decides that)
and nested structures beyond one level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from attnscope.errors import DataError

# where data items keep their target: never passed to the model as an input
TARGET_KEYS = ("labels", "label", "target", "targets", "y")


def model_inputs(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` to call a model with, from one batch (the target left out)."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, Mapping):
        return (), {k: v for k, v in batch.items() if k not in TARGET_KEYS}
    if isinstance(batch, (list, tuple)) and batch:
        return (tuple(batch[:-1]) if len(batch) > 1 else tuple(batch)), {}
    raise DataError(f"cannot call a model with a batch of type {type(batch).__name__}; "
                    "data items must be tensors, (x, y) / (x1, ..., y) tuples or dicts")


def split_batch(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor]:
    """``(args, kwargs, target)`` of a batch that must hold a target (evaluation)."""
    if isinstance(batch, Mapping):
        key = next((k for k in TARGET_KEYS if k in batch), None)
        if key is None:
            raise DataError(f"dict batches need the target under one of {TARGET_KEYS}; "
                            f"got keys {sorted(batch)}")
        args, kwargs = model_inputs(batch)
        return args, kwargs, _as_tensor(batch[key])
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)) and len(batch) >= 2:
        args, kwargs = model_inputs(batch)
        return args, kwargs, _as_tensor(batch[-1])
    raise DataError("every data item must hold inputs and a target: (x, y), "
                    "(x1, ..., y) or a dict with 'labels'; got "
                    f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                 if isinstance(batch, Sequence) else ""))


def batch_size(batch: Any) -> int:
    """Samples in a batch: the first axis of its first non-scalar input tensor (1 when
    it has none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim > 0 else 1
    if isinstance(batch, Mapping):
        values = [v for k, v in batch.items() if k not in TARGET_KEYS] or list(batch.values())
    elif isinstance(batch, (list, tuple)):
        values = list(batch)
    else:
        return 1
    first = next((t for t in values if isinstance(t, torch.Tensor) and t.ndim > 0), None)
    if first is None:  # nested inputs, e.g. ((x1, x2), y)
        nested = next((v for v in values if isinstance(v, (list, tuple, Mapping)) and v), None)
        return 1 if nested is None else batch_size(nested)
    return int(first.shape[0])


def first_rows(args: tuple[Any, ...], kwargs: dict[str, Any], n: int
               ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The model inputs cut to their first ``n`` samples (non-tensors kept as they are)."""
    def cut(value: Any) -> Any:
        return value[:n] if isinstance(value, torch.Tensor) and value.ndim > 0 else value

    return tuple(cut(a) for a in args), {k: cut(v) for k, v in kwargs.items()}


def make_loader(data: Any, batch_size: int = 32) -> DataLoader:
    """Batches in data-set order: a DataLoader is kept unless it shuffles (then its data
    set is re-batched in order, so ``sample_idx`` means the data-set index)."""
    if isinstance(data, DataLoader):
        if not isinstance(data.sampler, RandomSampler):
            return data
        return DataLoader(data.dataset, batch_size=data.batch_size or batch_size,
                          collate_fn=data.collate_fn, num_workers=data.num_workers)
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def dataset_length(loader: Any) -> int | None:
    """Samples in the loader's data set, or ``None`` for iterable data without a length."""
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except Exception:
        raise DataError(f"the target must be a tensor or numbers, got "
                        f"{type(value).__name__}") from None


OUTPUT_KEYS = ("logits", "prediction", "predictions", "preds", "output", "y_hat")


def find_prediction(output: Any) -> torch.Tensor:
    """The prediction tensor inside a model's return value: a tensor, a tuple whose first
    tensor is it (models that also return their attention), a ``ModelOutput`` with
    ``logits``, or a dict with one of :data:`OUTPUT_KEYS`."""
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
    raise DataError(f"cannot find the prediction in the model output "
                    f"({type(output).__name__}); return a tensor, a tuple starting "
                    f"with one, or a dict with one of {OUTPUT_KEYS}")
