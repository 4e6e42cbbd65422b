"""Streaming writer: the capture engine hands it every map as it is computed, and marks
batch boundaries with :meth:`StoreWriter.commit`.

Decisions (documented in the README too):

* a module called several times in one forward is stored as separate entries
  ``name``, ``name[1]``, ``name[2]`` ... (``call_index``); an ``effective`` matrix
  (probabilities changed after the softmax) is the entry ``name@effective``;
* every batch is its own segment array, so batches may differ in sequence length; the
  reader pads to the longest with NaN and reports true lengths;
* writing a step that already exists appends (new samples follow the old ones) with a
  warning; ``if_exists="overwrite"`` replaces it atomically (the new data goes to a new
  directory that is swapped in by :meth:`StoreWriter.close`; a run that fails or is
  aborted leaves the old step as it was); ``"error"`` refuses;
* a batch is committed when its journal line is written: nothing afterwards (Ctrl-C,
  :meth:`StoreWriter.abort`) removes it;
* one writer per step at a time (an ``flock`` the kernel frees even on SIGKILL);
  readers need no lock: they see the batches committed when they opened;
* ``background=True`` (what ``capture(store=path)`` uses): ``commit()`` hands the
  batch to a worker thread (:mod:`attnscope.store.pipeline`, at most one batch in
  flight) that writes and commits it while the next forward runs; :meth:`wait` and
  :meth:`close` wait for it and raise its failure.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from attnscope import notes
from attnscope.maps import AttentionMap
from attnscope.options import check_keepbits, resolve_dtype
from attnscope.store import forms, layout
from attnscope.store.errors import StoreError, StoreWriteError
from attnscope.store.estimate import check_disk
from attnscope.store.pipeline import BackgroundWrites
from attnscope.store.publish import StepPublisher, ints
from attnscope.store.schema import jsonable
from attnscope.store.steps import init_root

IF_EXISTS = ("append", "overwrite", "error")


class StoreWriter(BackgroundWrites, StepPublisher):
    """Writes the maps of one step; see :func:`attnscope.store.open_writer`.

    Opening takes the step's lock and reads what is committed; nothing is deleted or
    created in the step before the first map arrives. As a context manager it closes
    (commits and, for an overwrite, swaps the new data in) on success and aborts on an
    exception.

    Example:
        >>> with open_writer("runs/attn", step="test", if_exists="overwrite") as w:
        ...     with attnscope.capture(model, store=w):
        ...         model(x)
    """

    form = "probs"  # the policy (options.FORMS); forms.choose picks each map's form

    def __init__(self, root: Path, step: str, *, model: torch.nn.Module | None, dtype: str,
                 expected_samples: int | None, labels: dict | None, keepbits: int | None,
                 if_exists: str, durable: bool, background: bool = False) -> None:
        stored_dtype = resolve_dtype(dtype, stored=True)
        check_keepbits(keepbits)
        if if_exists not in IF_EXISTS:
            raise StoreError(f"if_exists={if_exists!r}; use 'append', 'overwrite' or 'error'")
        self.root, self.step = Path(root), layout.check_step(step)
        self.labels: dict[str, Any] = jsonable(dict(labels or {}))
        self.dtype, self.durable, self.expected = stored_dtype, durable, expected_samples
        cls = type(model)
        self.model = None if model is None else f"{cls.__module__}.{cls.__qualname__}"
        self.closed = True  # until the lock is held
        init_root(self.root, keepbits, durable)
        self._lock_cm = layout.locked(
            layout.step_lock(self.root, step), blocking=False,
            busy=f"step {step!r} of '{self.root}' is being written by another process; "
                 "wait for it or write another step")
        self._lock_cm.__enter__()
        try:
            self._open_step(if_exists, keepbits)
        except BaseException:
            self._lock_cm.__exit__(None, None, None)
            raise
        self._init_background(background)
        self.closed = False

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, kind: Any, err: Any, tb: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def write_entry(self, name: str, m: AttentionMap, weights: torch.Tensor) -> None:
        """Store ``weights`` under the entry ``name`` as they are (merging parts of a
        step written by several processes); ``m`` supplies the entry's metadata."""
        self._check_open()
        self._hand(name, m, weights)

    def write(self, m: AttentionMap) -> None:
        """Store one captured map under the current (uncommitted) batch. In background
        mode the tensors are written later: hand over tensors nothing changes in place
        (the capture hands over its own CPU copies)."""
        self._check_open()
        self._hand(layout.entry_name(m.module, m.call_index), m, m.weights)
        if m.effective is not None:
            self._hand(layout.entry_name(m.module, m.call_index, True), m, m.effective)

    def note(self, text: str) -> None:
        """Keep one line the capture wants readers told (``store.notes(step)``); saved
        with the step's metadata at the next commit."""
        if text not in self._notes:
            self._notes.append(text)

    def commit(self) -> None:
        """Make every map written since the last commit durable and visible to readers.
        Once this returns (or its journal line is written) the batch is committed:
        nothing afterwards removes it. In background mode the batch is handed to the
        worker (waiting while another batch is in flight) and is committed once the
        worker writes its journal line; :meth:`wait` waits for that. The first batch is
        waited for when ``expected_samples`` asks for a disk-space estimate."""
        if self.closed:
            return
        if not self._hand_batch():
            self._commit_now()

    def _commit_now(self) -> None:
        if not self._pending:
            return
        if not self._checked and self.expected:
            try:
                check_disk(self.root, self._bytes, self._samples, self.expected)
            except StoreError:
                self._drop()
                raise
        self._checked = True
        try:
            if self.durable:  # the data, before the journal line that publishes it
                layout.sync_paths(self.root, self._paths)
            self._publish_meta()
        except OSError as err:
            self._drop()
            raise self._write_error(err, self.dir) from err
        except StoreWriteError:
            self._drop()
            raise
        entry = {"batch": self.batch, "time": time.time(), "maps": self._pending}
        paths = self._paths
        # from here on abort() must not touch these files: once the line below is
        # written the batch is committed, even if we are interrupted right after
        self._pending, self._paths, self._bytes, self._samples = [], [], 0, 0
        self.batch += 1
        try:
            layout.append_journal(self.dir / layout.JOURNAL, entry, self.durable)
        except StoreWriteError as err:  # the line was rolled back: not committed
            for p in paths:
                shutil.rmtree(p, ignore_errors=True)
            self.batch -= 1
            raise self._write_error(err.__cause__ or err, self.dir / layout.JOURNAL) from err
        self._committed += 1

    def close(self) -> None:
        """Commit what is left, swap an overwrite in, and release the step."""
        if self.closed:
            return
        try:
            self.commit()
            self.wait()  # background: every batch committed, or its failure raised
            if self._staged:
                self._swap()
        except BaseException as err:
            failure = self._stop(cancel=True)  # the worker ends before its files are touched
            if failure is not None and failure is not err:
                notes.note(f"while closing: {failure}")
            self._discard()
            raise
        else:
            self._tidy()
        finally:
            self._release()

    def abort(self) -> None:
        """Drop the uncommitted batch; committed batches stay readable (in background
        mode the batches already handed to :meth:`commit` are finished first). An
        overwrite that is aborted leaves the step as it was before."""
        if not self.closed:
            try:
                failure = self._stop(cancel=self._staged)
                if failure is not None:  # aborting on another error: say it, never raise
                    notes.note(f"while aborting: {failure}")
                self._discard()
            finally:
                self._release()

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError("this store writer is closed; open a new one with open_writer")

    def _write_one(self, name: str, m: AttentionMap, w: torch.Tensor,
                   form: forms.SegmentForm) -> None:
        try:
            key = self._key(name, m, form)
            parts = sum(1 for p in self._pending if p["key"] == key)
            seg = f"b{self.batch:06d}" + (f".{parts}" if parts else "")
            path = self.dir / key / seg
            if path.exists():  # leftover of a batch that was never committed
                shutil.rmtree(path)
            self._paths.append(path)  # from now on abort() removes it
            # commit() makes the segment durable (one syncfs): no fsync per shard file
            ctx = forms.WriteContext(self.dtype, self.keepbits, False, {
                "module": name, "step": self.step, "batch": self.batch,
                "keepbits": self.keepbits})
            n, shape = form.write(path, m, w, ctx)
        except OSError as err:
            raise self._write_error(err, self.dir) from err
        self._pending.append({"key": key, "seg": seg, "forward": int(m.forward_index),
                              "rows": ints(m.samples), "shape": shape, "form": form.name})
        self._bytes += n
        self._samples = max(self._samples, shape[0])

    def _discard(self) -> None:
        self._drop()
        if self._staged:  # never published: the old step is untouched
            shutil.rmtree(self.dir, ignore_errors=True)

    def _drop(self) -> None:
        for p in self._paths:
            shutil.rmtree(p, ignore_errors=True)
        self._pending, self._paths, self._bytes, self._samples = [], [], 0, 0

    def _release(self) -> None:
        self._stop(cancel=True)  # nothing is left running once the lock is released
        self.closed = True
        self._lock_cm.__exit__(None, None, None)

