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

import contextlib
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import zarr

from attnscope import notes
from attnscope._files import describe
from attnscope.entries import is_effective
from attnscope.maps import AttentionMap
from attnscope.options import check_keepbits, resolve_dtype
from attnscope.store import forms, layout
from attnscope.store.errors import StoreError, StoreWriteError
from attnscope.store.estimate import check_disk
from attnscope.store.forms import policy
from attnscope.store.pipeline import BatchPipeline
from attnscope.store.schema import jsonable
from attnscope.store.steps import init_root, register_entry

IF_EXISTS = ("append", "overwrite", "error")


class StoreWriter:
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
        init_root(self.root, keepbits)
        self._lock_cm = layout.locked(
            layout.step_lock(self.root, step), blocking=False,
            busy=f"step {step!r} of '{self.root}' is being written by another process; "
                 "wait for it or write another step")
        self._lock_cm.__enter__()
        try:
            self._open(if_exists, keepbits)
        except BaseException:
            self._lock_cm.__exit__(None, None, None)
            raise
        self._pipe = BatchPipeline() if background else None
        self._batch: list[tuple[str, AttentionMap, torch.Tensor, forms.SegmentForm]] = []
        self._waited = False  # the first background batch is waited for (disk estimate)
        self.closed = False

    def _open(self, if_exists: str, keepbits: int | None) -> None:
        meta = layout.read_meta(self.root)
        self.keepbits = meta.get("keepbits") if keepbits is None else keepbits
        current = layout.step_dir(self.root, self.step, meta)
        done = layout.read_journal(current / layout.JOURNAL, self.step)
        if done and if_exists == "error":
            raise StoreError(f"step {self.step!r} already exists in '{self.root}'; pick another "
                             "step name or pass if_exists='append'/'overwrite'")
        self._fresh = if_exists == "overwrite"
        self._staged = bool(done) and self._fresh
        self._old = current if self._staged else None
        if self._staged:  # the new data goes aside; close() swaps it in
            self.dir, self.batch = self._free_dir(current), 0
        else:
            self.dir = current
            if done:
                layout.repair_journal(current / layout.JOURNAL)
                notes.note(f"step {self.step!r} already holds {len(done)} batches; appending "
                           "(if_exists='overwrite' replaces it)")
            self.batch = done[-1]["batch"] + 1 if done else 0
        self.keys = {name: info["key"] for name, info in meta["modules"].items()}
        self._step_heads: dict[str, dict[str, Any]] = {}
        self._pending: list[dict[str, Any]] = []
        self._paths: list[Path] = []
        self._bytes = self._samples = self._committed = 0
        self._groups: set[str] = set()
        self._checked = False
        self._warned: set[str] = set()
        self._later: dict[str, dict[str, Any]] = {}  # notes of entries registered before
        self._notes: list[str] = []  # the capture's notes (what it skipped, and why)

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
        if self._pipe is None:
            self._commit_now()
            return
        items, self._batch = self._batch, []
        if not items:
            self._pipe.check()
            return
        self._pipe.submit(lambda: self._write_batch(items))
        if self.expected and not self._waited:
            self._waited = True
            self._pipe.wait()

    def wait(self) -> None:
        """Block until every batch handed to :meth:`commit` is committed; raise the
        failure of one that could not be (background mode; a no-op otherwise)."""
        if self._pipe is not None:
            self._pipe.wait()

    def _write_batch(self, items: list[tuple]) -> None:
        """The worker's job: write one batch's segments, then commit it."""
        try:
            for name, m, w, form in items:
                self._write_one(name, m, w, form)
        except BaseException:
            self._drop()
            raise
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

    def _hand(self, name: str, m: AttentionMap, w: torch.Tensor) -> None:
        """Check one map now (its form); write it now or keep it for the worker."""
        form = forms.choose(m, w, self.form)
        if self._pipe is None:
            self._write_one(name, m, w, form)
            return
        self._pipe.check()  # a failure of an earlier batch surfaces at the next one
        self._batch.append((name, m, w, form))

    def _stop(self, cancel: bool) -> BaseException | None:
        """End the worker (finishing what it holds unless ``cancel``); its failure."""
        self._batch = []
        return None if self._pipe is None else self._pipe.stop(cancel=cancel)

    def _write_error(self, err: BaseException, path: Path) -> StoreWriteError:
        why = describe(err, path, f"write batch {self.batch} of step {self.step!r}") if \
            isinstance(err, OSError) else str(err)
        kept = ("the step keeps its previous contents" if self._staged else
                f"batches before it are committed and readable (last complete batch: "
                f"{self.batch - 1})" if self.batch else "nothing of this step was committed")
        return StoreWriteError(f"{why}; {kept}")

    def _free_dir(self, current: Path) -> Path:
        """A directory name for an overwrite: ``<step>`` or ``<step>~N``, not in use."""
        for n in range(0, 1000):
            cand = current.parent / (self.step if n == 0 else f"{self.step}~{n}")
            if cand != current and not cand.exists():
                return cand
        raise StoreError(f"too many leftover directories of step {self.step!r} in "
                         f"'{current.parent}'; delete the {self.step}~N ones")

    def _key(self, name: str, m: AttentionMap, form: forms.SegmentForm) -> str:
        heads = m.weights.shape[form.head_axis]
        if name not in self.keys:
            info = {"module": m.module, "call_index": m.call_index, "kind": m.kind,
                    "graph": m.edge_index is not None, "num_heads": int(heads),
                    "heads": _ints(m.heads), "reduced": m.reduced, "source": m.source,
                    "effective": is_effective(name)}
            if info["graph"] and m.weights.dim() > 2:  # named dims between sample and edge
                info["axes"] = list(m.dims[1:-2])
            policy.note_form(info, self.form, form, m, self._warned, name)
            self.keys[name] = self._register(name, info)
        else:  # the form and fallback notes of an entry registered before: at next commit
            policy.note_form(self._later.setdefault(name, {}), self.form, form, m,
                             self._warned, name)
        # head selection and reduction may differ from step to step: kept per step too
        self._step_heads[name] = {"num_heads": int(heads), "heads": _ints(m.heads),
                                  "reduced": m.reduced}
        key = self.keys[name]
        if key not in self._groups:  # zarr group nodes, so zarr tools can walk the store
            if not (self.dir / "zarr.json").exists():
                zarr.open_group(str(self.dir), mode="a", attributes={"step": self.step})
            zarr.open_group(str(self.dir / key), mode="a", attributes={"module": name})
            self._groups.add(key)
        return key

    def _register(self, name: str, info: dict[str, Any]) -> str:
        """Give entry ``name`` its key now (see :func:`steps.register_entry`); notes of
        an entry another writer registered first wait for the next commit."""
        key, ours = register_entry(self.root, name, info)
        if not ours and info.get("note"):
            self._later[name] = {"form": info.get("form"), "note": info["note"]}
        return key

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
                              "rows": _ints(m.samples), "shape": shape, "form": form.name})
        self._bytes += n
        self._samples = max(self._samples, shape[0])

    def _step_entry(self, old: dict[str, Any]) -> dict[str, Any]:
        keep = {} if self._fresh else old
        entry = {"dtype": str(self.dtype).replace("torch.", ""), "keepbits": self.keepbits,
                 "labels": {**keep.get("labels", {}), **self.labels},
                 "heads": {**keep.get("heads", {}), **self._step_heads}}
        notes = list(dict.fromkeys([*keep.get("notes", []), *self._notes]))
        if notes:
            entry["notes"] = notes
        return entry

    def _publish_meta(self) -> None:
        """Add notes to entries and, unless this is a staged overwrite, the step."""
        with layout.locked(self.root / ".lock"):
            meta = layout.read_meta(self.root)
            changed = policy.merge_notes(meta["modules"], self._later)
            self._later = {}
            if self.model and meta.get("model") != self.model:
                meta["model"], changed = self.model, True
            if not self._staged:
                step = meta["steps"].setdefault(self.step, {})
                new = self._step_entry(step)
                if any(step.get(k) != v for k, v in new.items()):
                    step.update(new)
                    changed = True
                self._fresh = False  # later commits of this run merge into it
            if changed:
                layout.write_json_atomic(self.root / layout.META, meta)

    def _swap(self) -> None:
        """Point the step at the new directory in one metadata rename, then drop the old."""
        with layout.locked(self.root / ".lock"):
            meta = layout.read_meta(self.root)
            if self._committed:
                entry = self._step_entry({})
                if self.dir.name != self.step:
                    entry["dir"] = self.dir.name
                meta["steps"][self.step] = entry
            else:  # the run completed with nothing: the step is replaced by nothing
                meta["steps"].pop(self.step, None)
            layout.write_json_atomic(self.root / layout.META, meta)
        self._staged = False
        assert self._old is not None
        shutil.rmtree(self._old, ignore_errors=True)

    def _tidy(self) -> None:
        """Remove directories of this step that no metadata points to (an overwrite that
        crashed before its swap, an old directory a crash kept)."""
        pattern = re.compile(re.escape(self.step) + r"(~[0-9]+)?")
        with contextlib.suppress(OSError):
            for p in self.dir.parent.iterdir():
                if p != self.dir and pattern.fullmatch(p.name) and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)

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


def _ints(values: Any) -> list[int] | None:
    return None if values is None else [int(v) for v in values]
