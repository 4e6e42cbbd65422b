"""Streaming writer: the capture engine hands it every map as it is computed, and marks
batch boundaries with :meth:`StoreWriter.commit`.

Decisions (documented in the README too):

* a module called several times in one forward is stored as separate entries
  ``name``, ``name[1]``, ``name[2]`` ... (``call_index``); an ``effective`` matrix
  (probabilities changed after the softmax) is the entry ``name@effective``;
* every batch is its own segment array, so batches may differ in sequence length; the
  reader pads to the longest with NaN and reports true lengths;
* writing a step that already exists appends (new samples follow the old ones) with a
  warning; ``if_exists="overwrite"`` replaces it, ``"error"`` refuses;
* one writer per step at a time (an ``flock`` the kernel frees even on SIGKILL);
  readers need no lock: they see the batches committed when they opened.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import zarr

from attnscope.entries import is_effective
from attnscope.maps import AttentionMap
from attnscope.options import check_keepbits, resolve_dtype
from attnscope.store import codec, layout
from attnscope.store.errors import StoreBusyError, StoreError
from attnscope.store.estimate import check_disk


def init_root(root: Path, keepbits: int | None = None) -> None:
    """Create an empty store at ``root`` or check that ``root`` already is one."""
    root.mkdir(parents=True, exist_ok=True)
    with layout.locked(root / ".lock"):
        if (root / layout.META).exists():
            layout.read_meta(root)
            return
        if any(p.name != ".lock" for p in root.iterdir()):
            raise StoreError(f"'{root}' is a non-empty directory that is not an attnscope "
                             "store; pass an empty or new directory")
        # mode "a", not "w": "w" empties the directory, deleting the .lock file that
        # other processes (DDP ranks opening the same store) are waiting on
        zarr.open_group(str(root), mode="a", attributes={"format": layout.FORMAT})
        zarr.open_group(str(root / "steps"), mode="a")
        layout.write_json_atomic(root / layout.META, {
            "format": layout.FORMAT, "version": layout.VERSION, "created": time.time(),
            "model": None, "keepbits": keepbits, "modules": {}, "steps": {}})


class StoreWriter:
    """Writes the maps of one step; see :func:`attnscope.store.open_writer`."""

    def __init__(self, root: Path, step: str, *, model: torch.nn.Module | None, dtype: str,
                 expected_samples: int | None, labels: dict | None, keepbits: int | None,
                 if_exists: str, durable: bool) -> None:
        stored_dtype = resolve_dtype(dtype, stored=True)
        check_keepbits(keepbits)
        if if_exists not in ("append", "overwrite", "error"):
            raise StoreError(f"if_exists={if_exists!r}; use 'append', 'overwrite' or 'error'")
        self.root, self.step = root, layout.check_step(step)
        init_root(root, keepbits)
        meta = layout.read_meta(root)
        self.keepbits = meta.get("keepbits") if keepbits is None else keepbits
        self.dtype, self.durable, self.expected = stored_dtype, durable, expected_samples
        cls = type(model)
        self.model = None if model is None else f"{cls.__module__}.{cls.__qualname__}"
        self.labels = dict(labels or {})
        self.dir = layout.step_dir(root, step)
        if not (self.dir / "zarr.json").exists():
            zarr.open_group(str(self.dir), mode="a", attributes={"step": step})
        self._lock = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise StoreBusyError(f"step {step!r} of '{root}' is being written by another "
                                 "process; wait for it or write another step") from None
        journal = self.dir / layout.JOURNAL
        layout.repair_journal(journal)
        done = layout.read_journal(journal)
        if done and if_exists == "error":
            self._release()
            raise StoreError(f"step {step!r} already exists in '{root}'; pick another step name "
                             "or pass if_exists='append'/'overwrite'")
        if done and if_exists == "overwrite":
            self._clear(meta)
            done = []
        elif done:
            warnings.warn(f"step {step!r} already holds {len(done)} batches; appending "
                          "(if_exists='overwrite' replaces it)", stacklevel=3)
        self.batch = max((e["batch"] for e in done), default=-1) + 1
        self.keys = {name: info["key"] for name, info in meta["modules"].items()}
        self._new: dict[str, dict[str, Any]] = {}
        self._step_heads: dict[str, dict[str, Any]] = {}
        self._pending: list[dict[str, Any]] = []
        self._paths: list[Path] = []
        self._bytes = self._samples = 0
        self._groups: set[str] = set()
        self._checked = False
        self.closed = False

    def write_entry(self, name: str, m: AttentionMap, weights: torch.Tensor) -> None:
        """Store ``weights`` under the entry ``name`` as they are (merging parts of a
        step written by several processes); ``m`` supplies the entry's metadata."""
        if self.closed:
            raise StoreError("this store writer is closed; open a new one with open_writer")
        self._write_one(name, m, weights)

    def write(self, m: AttentionMap) -> None:
        """Store one captured map under the current (uncommitted) batch."""
        if self.closed:
            raise StoreError("this store writer is closed; open a new one with open_writer")
        self._write_one(layout.entry_name(m.module, m.call_index), m, m.weights)
        if m.effective is not None:
            self._write_one(layout.entry_name(m.module, m.call_index, True), m, m.effective)

    def commit(self) -> None:
        """Make every map written since the last commit durable and visible to readers."""
        if self.closed or not self._pending:
            return
        if not self._checked and self.expected:
            try:
                check_disk(self.root, self._bytes, self._samples, self.expected)
            except StoreError:
                self._drop()
                raise
        self._checked = True
        if self.durable:
            for p in self._paths:
                for f in [p, *p.rglob("*")]:
                    layout.fsync(f)
            for key_dir in {p.parent for p in self._paths}:
                layout.fsync(key_dir)
        self._publish_meta()
        entry = {"batch": self.batch, "time": time.time(), "maps": self._pending}
        layout.append_journal(self.dir / layout.JOURNAL, entry, self.durable)
        self.batch += 1
        self._pending, self._paths, self._bytes, self._samples = [], [], 0, 0

    def close(self) -> None:
        """Commit what is left and release the step."""
        if not self.closed:
            try:
                self.commit()
            finally:
                self._release()

    def abort(self) -> None:
        """Drop the uncommitted batch; committed batches stay readable."""
        if not self.closed:
            self._drop()
            self._release()

    # -- internals ---------------------------------------------------------------------

    def _key(self, name: str, m: AttentionMap, graph: bool) -> str:
        if name not in self.keys:
            key = f"m{len(self.keys):04d}"
            self.keys[name] = key
            heads = m.weights.shape[-1] if graph else m.weights.shape[1]
            self._new[name] = {"key": key, "module": m.module, "call_index": m.call_index,
                               "kind": m.kind, "graph": graph, "num_heads": int(heads),
                               "heads": m.heads, "reduced": m.reduced, "source": m.source,
                               "effective": is_effective(name)}
        heads = m.weights.shape[-1] if graph else m.weights.shape[1]
        # head selection and reduction may differ from step to step: kept per step too
        self._step_heads[name] = {"num_heads": int(heads), "heads": m.heads,
                                  "reduced": m.reduced}
        key = self.keys[name]
        if key not in self._groups:  # zarr group node, so zarr tools can walk the store
            zarr.open_group(str(self.dir / key), mode="a", attributes={"module": name})
            self._groups.add(key)
        return key

    def _write_one(self, name: str, m: AttentionMap, w: torch.Tensor) -> None:
        graph = m.edge_index is not None
        key = self._key(name, m, graph)
        parts = sum(1 for p in self._pending if p["key"] == key)
        seg = f"b{self.batch:06d}" + (f".{parts}" if parts else "")
        path = self.dir / key / seg
        if path.exists():  # leftover of a batch that was never committed
            shutil.rmtree(path)
        attrs = {"module": name, "step": self.step, "batch": self.batch, "keepbits": self.keepbits}
        rec: dict[str, Any] = {"key": key, "seg": seg, "forward": m.forward_index,
                               "rows": m.samples}
        if graph:
            data = codec.to_storage(w if w.dim() > 2 else w.unsqueeze(0), self.dtype, self.keepbits)
            zarr.open_group(str(path), mode="w", attributes=attrs)  # weights + edge_index
            n = codec.write_plain(path / "weights", data, (1, *data.shape[1:]), attrs)
            edges = m.edge_index.detach().cpu().to(torch.int64).numpy()
            n += codec.write_plain(path / "edge_index", edges, edges.shape, {})
        else:
            if w.dim() != 4:
                raise StoreError(f"{name!r}: dense weights must be (batch, head, query, key), "
                                 f"got shape {tuple(w.shape)}")
            data = w.detach()
            n = codec.write_dense(path, data, self.dtype, self.keepbits, attrs, self.durable)
        rec["shape"] = list(data.shape)
        self._pending.append(rec)
        self._paths.append(path)
        self._bytes += n
        self._samples = max(self._samples, data.shape[0])

    def _publish_meta(self) -> None:
        with layout.locked(self.root / ".lock"):
            meta = layout.read_meta(self.root)
            changed = bool(self._new) or self.step not in meta["steps"]
            meta["modules"].update(self._new)
            if self.model and meta.get("model") != self.model:
                meta["model"], changed = self.model, True
            step = meta["steps"].setdefault(self.step, {})
            new = {"dtype": str(self.dtype).replace("torch.", ""), "keepbits": self.keepbits,
                   "labels": {**step.get("labels", {}), **self.labels},
                   "heads": {**step.get("heads", {}), **self._step_heads}}
            if step != new:
                step.update(new)
                changed = True
            if changed:
                layout.write_json_atomic(self.root / layout.META, meta)
            self._new = {}

    def _clear(self, meta: dict[str, Any]) -> None:
        (self.dir / layout.JOURNAL).unlink(missing_ok=True)
        for p in self.dir.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
        with layout.locked(self.root / ".lock"):
            meta = layout.read_meta(self.root)
            if meta["steps"].pop(self.step, None) is not None:
                layout.write_json_atomic(self.root / layout.META, meta)

    def _drop(self) -> None:
        for p in self._paths:
            shutil.rmtree(p, ignore_errors=True)
        self._pending, self._paths, self._bytes, self._samples = [], [], 0, 0

    def _release(self) -> None:
        self.closed = True
        os.close(self._lock)


def delete_step(root: str | Path, step: str) -> None:
    """Remove a step and its data (e.g. the per-process parts once merged)."""
    root = Path(root)
    directory = layout.step_dir(root, layout.check_step(step))
    with layout.locked(root / ".lock"):
        meta = layout.read_meta(root)
        if meta["steps"].pop(step, None) is not None:
            layout.write_json_atomic(root / layout.META, meta)
    shutil.rmtree(directory, ignore_errors=True)


def set_step_labels(root: str | Path, step: str, labels: dict[str, Any]) -> None:
    """Merge ``labels`` into a written step's metadata: labels known only after the
    forward passes ran (``true->pred`` per epoch, generated tokens)."""
    root = Path(root)
    with layout.locked(root / ".lock"):
        meta = layout.read_meta(root)
        if step not in meta["steps"]:
            raise StoreError(f"no step {step!r} in store '{root}'; steps: {sorted(meta['steps'])}")
        entry = meta["steps"][step]
        entry["labels"] = {**entry.get("labels", {}), **labels}
        layout.write_json_atomic(root / layout.META, meta)
