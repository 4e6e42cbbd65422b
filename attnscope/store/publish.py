"""What a store writer records in the store's metadata besides its batches: each
entry's key and description (registered on first write), the step's entry (dtype,
labels, heads, notes) published at each commit, and the directory swap that makes an
``if_exists="overwrite"`` run replace the old step in one rename.

A mixin of :class:`attnscope.store.writer.StoreWriter`, split off so each module keeps
one job; it runs on the thread that writes batches (the worker in background mode).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path
from typing import Any

from attnscope import notes
from attnscope._files import describe
from attnscope.entries import is_effective
from attnscope.maps import AttentionMap
from attnscope.store import forms, layout
from attnscope.store.codec import group_node
from attnscope.store.errors import StoreError, StoreWriteError
from attnscope.store.forms import policy
from attnscope.store.steps import register_entry


class StepPublisher:
    """Metadata half of a writer; the writer supplies ``root``, ``step``, ``dir``,
    ``form``, ``keys``, ``labels``, ``model``, ``dtype``, ``keepbits``, ``durable`` and
    the bookkeeping ``_init_meta`` sets up."""

    root: Path
    step: str
    dir: Path
    form: str
    keys: dict[str, str]
    labels: dict[str, Any]
    model: str | None
    dtype: Any
    keepbits: int | None
    durable: bool
    _staged: bool
    _fresh: bool
    _old: Path | None
    _committed: int
    batch: int

    def _init_meta(self) -> None:
        self._step_heads: dict[str, dict[str, Any]] = {}
        self._groups: set[str] = set()
        self._warned: set[str] = set()
        self._later: dict[str, dict[str, Any]] = {}  # notes of entries registered before
        self._notes: list[str] = []  # the capture's notes (what it skipped, and why)

    def _open_step(self, if_exists: str, keepbits: int | None) -> None:
        """Where this run writes (the step's directory, or a fresh one for an overwrite
        of a step with data) and its first batch number, from what is committed."""
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
        self._init_meta()
        self._pending: list[dict[str, Any]] = []
        self._paths: list[Path] = []
        self._bytes = self._samples = self._committed = 0
        self._checked = False

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
                    "heads": ints(m.heads), "reduced": m.reduced, "source": m.source,
                    "effective": is_effective(name)}
            if info["graph"] and m.weights.dim() > 2:  # named dims between sample and edge
                info["axes"] = list(m.dims[1:-2])
            policy.note_form(info, self.form, form, m, self._warned, name)
            self.keys[name] = self._register(name, info)
        else:  # the form and fallback notes of an entry registered before: at next commit
            policy.note_form(self._later.setdefault(name, {}), self.form, form, m,
                             self._warned, name)
        # head selection and reduction may differ from step to step: kept per step too
        self._step_heads[name] = {"num_heads": int(heads), "heads": ints(m.heads),
                                  "reduced": m.reduced}
        key = self.keys[name]
        if key not in self._groups:  # zarr group nodes, so zarr tools can walk the store
            group_node(self.dir, {"step": self.step})
            group_node(self.dir / key, {"module": name})
            self._groups.add(key)
        return key

    def _register(self, name: str, info: dict[str, Any]) -> str:
        """Give entry ``name`` its key now (see :func:`steps.register_entry`); notes of
        an entry another writer registered first wait for the next commit."""
        key, ours = register_entry(self.root, name, info, self.durable)
        if not ours and info.get("note"):
            self._later[name] = {"form": info.get("form"), "note": info["note"]}
        return key

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
                layout.write_json_atomic(self.root / layout.META, meta, self.durable)

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
            layout.write_json_atomic(self.root / layout.META, meta, self.durable)
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


def ints(values: Any) -> list[int] | None:
    return None if values is None else [int(v) for v in values]
