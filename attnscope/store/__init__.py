"""The attention store: captured maps streamed to disk batch by batch (zarr v3), read
back as NumPy or xarray/dask, exported to ``.npy``/``.npz``/``.csv``.

Example:
    >>> with attnscope.capture(model, store="runs/attn", step="epoch_000"):
    ...     for x in loader:
    ...         model(x)
    >>> store = open_store("runs/attn")
    >>> store.read(store.modules[0], step="epoch_000", samples=[0], heads=[3])

Left out on purpose: remote object stores (local directories only), in-place edits of
committed batches, and several writers on one step at once (one writer per step; steps
written by several processes are joined by :mod:`attnscope.store.merge`).
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from attnscope.options import check_form, check_keepbits
from attnscope.store import schema
from attnscope.store.errors import (
    DiskSpaceError,
    ExportTooLargeError,
    NotAStoreError,
    StoreBusyError,
    StoreError,
    StoreWriteError,
)
from attnscope.store.schema import META_FILE, TEST_STEP, epoch_of, epoch_step

if TYPE_CHECKING:
    from attnscope.store.exports import export
    from attnscope.store.reader import Store
    from attnscope.store.steps import delete_step, set_step_labels
    from attnscope.store.writer import StoreWriter

__all__ = [
    "META_FILE", "TEST_STEP", "DiskSpaceError", "ExportTooLargeError", "NotAStoreError",
    "Store", "StoreBusyError", "StoreError", "StoreWriteError", "StoreWriter", "create_store",
    "delete_step", "epoch_of", "epoch_step", "export", "open_store", "open_writer", "schema",
    "set_step_labels", "tune_allocator",
]

# what needs zarr, numcodecs or google-crc32c (the [store] extra) loads on first use, so
# the zarr-free parts (errors, schema, graph axes) import in an install without it
_LAZY = {"Store": "reader", "StoreWriter": "writer", "export": "exports",
         "delete_step": "steps", "set_step_labels": "steps", "tune_allocator": "codec"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"attnscope.store.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'attnscope.store' has no attribute {name!r}")


def open_writer(store: str | os.PathLike, *, step: str, model: torch.nn.Module | None = None,
                dtype: str = "float16", expected_samples: int | None = None,
                labels: dict | None = None, keepbits: int | None = None,
                if_exists: str = "append", durable: bool = True,
                form: str | None = None, background: bool = False) -> StoreWriter:
    """Open ``step`` of the store at ``store`` for streaming writes (created if missing).

    Args:
        step: step name, e.g. ``"epoch_003"`` or ``"test"``.
        model: recorded by class name in the metadata.
        dtype: ``"float16"`` (default) or ``"float32"``.
        expected_samples: dataset length; after the first batch the writer estimates the
            total size and raises :class:`DiskSpaceError` when the disk cannot hold it.
        labels: axis labels kept with the step (``tokens``, ``time_steps``,
            ``channels``, ``classes`` such as ``["W->W", "N1->N2"]`` ...).
        keepbits: opt-in lossy mode: keep this many mantissa bits (float16 has 10);
            relative error <= 2**-(keepbits+1). ``None``: the store's default (lossless).
        if_exists: an existing step is appended to (default), ``"overwrite"``-n (the new
            data replaces the old only when the writer closes; a failed run keeps the
            old) or an ``"error"``.
        durable: fsync every committed batch and metadata file (survives power loss,
            not only crashes); False keeps the atomic renames, not the flushes.
        form: ``"probs"`` (default) stores probabilities; ``"qk"`` stores what each sdpa
            call received (queries, keys, compact mask, causal flag, scale) and computes
            the probabilities on read, exactly and far smaller at long sequences;
            ``"qk16"`` keeps queries and keys as float16 (half again, lossy). Maps whose
            queries and keys are unreachable fall back to probabilities, with a note.
        background: write and commit each batch on a worker thread while the caller
            goes on (``capture(store=path)`` does): ``commit()`` returns once the batch
            is handed over, at most one batch is in flight (memory: two batches of maps
            with the one being filled), and :meth:`StoreWriter.wait` or ``close()``
            waits and raises a failure. The commit guarantees are the same: a batch is
            visible only once all its segments are written (and synced when durable).
    """
    from attnscope.store.writer import StoreWriter

    form = check_form(form)
    writer = StoreWriter(Path(store), step, model=model, dtype=dtype,
                         expected_samples=expected_samples, labels=labels, keepbits=keepbits,
                         if_exists=if_exists, durable=durable, background=background)
    writer.form = form
    return writer


def create_store(path: str | os.PathLike, *, keepbits: int | None = None) -> Path:
    """Create an empty store whose writers default to lossy ``keepbits`` (None: lossless);
    returns its path. An existing store is left as it is.

    Useful because ``capture(store=path)`` passes no codec options: create the store
    first, then capture into it; read it with :func:`open_store` once something is in it.
    """
    from attnscope.store.steps import init_root

    check_keepbits(keepbits)
    root = Path(path)
    init_root(root, keepbits)
    return root


def open_store(path: str | os.PathLike) -> Store:
    """Open a store for reading; a missing, foreign or corrupt directory raises
    :class:`StoreError` with a one-line reason."""
    from attnscope.store.reader import Store

    try:
        return Store(Path(path))
    except StoreError as e:
        raise NotAStoreError(str(e)) from None
