"""Capture over a whole dataset into a store: what ``attnscope capture`` runs."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from attnscope.capturing.api import capture
from attnscope.data import batch_size, first_rows, model_inputs
from attnscope.errors import AttnscopeError, ModelError


def capture_dataset(model: nn.Module, loader: Any, store: Any, *, step: str,
                    limit: int | None = None,
                    progress: Callable[[int], None] | None = None,
                    **capture_options: Any) -> int:
    """Run ``model`` (in eval, without gradients) over ``loader`` and stream every
    attention map into ``store`` under ``step``; returns the samples captured.

    Example:
        >>> capture_dataset(model, DataLoader(val_set, batch_size=16), "runs/attn",
        ...                 step="val", limit=256, dtype="float16")

    ``limit`` stops after that many samples (the last batch is cut to fit). The model's
    train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    done = 0
    try:
        with torch.no_grad(), capture(model, store=store, step=step, **capture_options):
            for batch in _batches(loader):
                args, kwargs = model_inputs(batch)
                size = batch_size(batch)
                if limit is not None and done + size > limit:
                    # the rest of this batch is beyond the limit: run only what is kept
                    size = limit - done
                    args, kwargs = first_rows(args, kwargs, size)
                try:
                    model(*args, **kwargs)
                except AttnscopeError:
                    raise
                except Exception as err:  # wrong dtype or width in the data, mostly
                    text = " ".join(str(err).split())[:200]
                    raise ModelError(
                        f"the model failed on samples {done}..{done + size - 1}: "
                        f"{type(err).__name__}: {text}; check that --data gives what the "
                        "model expects (dtype, shape)") from err
                done += size
                if progress is not None:
                    progress(size)
                if limit is not None and done >= limit:
                    break
    finally:
        model.train(was_training)
    return done


def _batches(loader: Any) -> Any:
    """Iterate ``loader``; a data set that fails to load or collate is one clear error."""
    it = iter(loader)
    for index in itertools.count():
        try:
            batch = next(it)
        except StopIteration:
            return
        except AttnscopeError:
            raise
        except Exception as err:
            text = " ".join(str(err).split())[:200]
            raise ModelError(f"reading batch {index} of the data failed: "
                             f"{type(err).__name__}: {text}") from err
        yield batch
