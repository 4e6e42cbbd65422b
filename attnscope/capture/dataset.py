"""Capture over a whole dataset into a store: what ``attnscope capture`` runs."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from attnscope.capture.api import capture
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
    from attnscope.loading import model_inputs

    was_training = model.training
    model.eval()
    done = 0
    try:
        with torch.no_grad(), capture(model, store=store, step=step, **capture_options):
            for batch in _batches(loader):
                args, kwargs = model_inputs(batch)
                size = _batch_size(args, kwargs)
                if limit is not None and done + size > limit:
                    # the rest of this batch is beyond the limit: run only what is kept
                    keep = limit - done
                    args = tuple(a[:keep] if isinstance(a, torch.Tensor) else a for a in args)
                    kwargs = {k: v[:keep] if isinstance(v, torch.Tensor) else v
                              for k, v in kwargs.items()}
                    size = keep
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


def _batch_size(args: tuple, kwargs: dict) -> int:
    first = next((t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)
                  and t.ndim > 0), None)
    return 1 if first is None else int(first.shape[0])


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
