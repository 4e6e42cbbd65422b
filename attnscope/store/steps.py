"""Operations on a store's root and its steps that are not one writer's batches:
creating the store, registering an entry's key, deleting a step, adding labels.

Each reads and rewrites ``attnscope.json`` under the store's lock, so writers of other
steps (other processes) and these calls never lose each other's changes.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import zarr

from attnscope._files import describe
from attnscope.store import layout
from attnscope.store.errors import StoreError, StoreWriteError
from attnscope.store.schema import jsonable


def init_root(root: Path, keepbits: int | None = None, durable: bool = True) -> None:
    """Create an empty store at ``root`` or check that ``root`` already is one."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreWriteError(describe(err, root, "create the store")) from err
    with layout.locked(root / ".lock"):
        if (root / layout.META).exists():
            layout.read_meta(root)
            return
        if any(p.name != ".lock" for p in root.iterdir()):
            raise StoreError(f"'{root}' is a non-empty directory that is not an attnscope "
                             "store; pass an empty or new directory")
        try:
            # mode "a", not "w": "w" empties the directory, deleting the .lock file that
            # other processes (DDP ranks opening the same store) are waiting on
            zarr.open_group(str(root), mode="a", attributes={"format": layout.FORMAT})
            zarr.open_group(str(root / "steps"), mode="a")
        except OSError as err:
            raise StoreWriteError(describe(err, root, "create the store")) from err
        layout.write_json_atomic(root / layout.META, {
            "format": layout.FORMAT, "version": layout.VERSION, "created": time.time(),
            "model": None, "keepbits": keepbits, "modules": {}, "steps": {}}, durable)


def register_entry(root: Path, name: str, info: dict[str, Any],
                   durable: bool = True) -> tuple[str, bool]:
    """The key of entry ``name``, registering it with ``info`` when it is new; whether
    this call registered it. Writers of other steps may register entries at the same
    time: under the lock each name gets one key and each key one name."""
    with layout.locked(root / ".lock"):
        meta = layout.read_meta(root)
        known = meta["modules"].get(name)
        if known is not None:  # another writer registered it first: keep its key
            return known["key"], False
        used = {i["key"] for i in meta["modules"].values()}
        n = len(used)
        while f"m{n:04d}" in used:
            n += 1
        meta["modules"][name] = {"key": f"m{n:04d}", **info}
        layout.write_json_atomic(root / layout.META, meta, durable)
    return f"m{n:04d}", True


def delete_step(root: str | Path, step: str) -> None:
    """Remove a step and its data (e.g. the per-process parts once merged)."""
    root = Path(root)
    layout.check_step(step)
    with layout.locked(root / ".lock"):
        meta = layout.read_meta(root)
        directory = layout.step_dir(root, step, meta)
        if meta["steps"].pop(step, None) is not None:
            layout.write_json_atomic(root / layout.META, meta)
    shutil.rmtree(directory, ignore_errors=True)


def set_step_labels(root: str | Path, step: str, labels: dict[str, Any]) -> None:
    """Merge ``labels`` into a written step's metadata: labels known only after the
    forward passes ran (``true->pred`` per epoch, generated tokens)."""
    root = Path(root)
    labels = jsonable(labels)
    with layout.locked(root / ".lock"):
        meta = layout.read_meta(root)
        if step not in meta["steps"]:
            raise StoreError(f"no step {step!r} in store '{root}'; steps: {sorted(meta['steps'])}")
        entry = meta["steps"][step]
        entry["labels"] = {**entry.get("labels", {}), **labels}
        layout.write_json_atomic(root / layout.META, meta)
