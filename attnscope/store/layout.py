"""Where things live inside a store directory, and the small file primitives that keep
them consistent after a crash.

A store is a zarr v3 hierarchy plus two kinds of JSON::

    root/
      zarr.json                      zarr group (attributes name the format)
      attnscope.json                 model, modules registry, steps, dtype, codec
      steps/<step>/journal.jsonl     one line per committed batch (the source of truth)
      steps/<step>/<key>/b000012/    one zarr array per (module entry, batch): a segment

Data is written before the journal line that publishes it, so a reader (or a crash)
never sees a batch whose data is incomplete. Segments not named in the journal are
leftovers of an interrupted batch and are ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnscope.entries import entry_name  # noqa: F401  (re-exported for the writer)
from attnscope.store.errors import StoreError

FORMAT = "attnscope-store"
VERSION = 1
META = "attnscope.json"
JOURNAL = "journal.jsonl"
_STEP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_step(step: str) -> str:
    """Step names become directory names, so keep them to a safe alphabet."""
    if not isinstance(step, str) or not _STEP_RE.match(step):
        raise StoreError(
            f"invalid step name {step!r}; use letters, digits, '_', '.', '-' (e.g. 'epoch_003')"
        )
    return step


def step_dir(root: Path, step: str) -> Path:
    return root / "steps" / step


def segment_dir(root: Path, step: str, key: str, batch: int) -> Path:
    return step_dir(root, step) / key / f"b{batch:06d}"


def fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a rename, a new file), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` in one rename, so readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync(path.parent)


def read_meta(root: Path) -> dict[str, Any]:
    """Load ``attnscope.json`` or explain in one line why ``root`` is not a store."""
    if not root.exists():
        raise StoreError(f"no store at '{root}': the directory does not exist")
    if not root.is_dir():
        raise StoreError(f"'{root}' is a file, not a store directory")
    path = root / META
    if not path.exists():
        what = "a zarr store without attnscope metadata" if (root / "zarr.json").exists() else (
            "not an attnscope store")
        raise StoreError(
            f"'{root}' is {what} (no {META}); open the directory given to capture(store=...)"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(
            f"'{path}' is corrupt ({type(e).__name__}); restore it or re-capture into a new store"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StoreError(f"'{path}' is not attnscope store metadata; is this the right directory?")
    if int(meta.get("version", 0)) > VERSION:
        raise StoreError(
            f"store '{root}' has format version {meta['version']}; upgrade attnscope to read it"
        )
    return meta


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Committed batches of one step; a torn last line (killed mid-append) is skipped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_bytes().split(b"\n")[:-1]:  # the part after the last \n is torn
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def repair_journal(path: Path) -> None:
    """Cut a torn tail so the next appended line starts on a line of its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())


def append_journal(path: Path, entry: dict[str, Any], durable: bool = True) -> None:
    """Publish one batch: a single ``write`` of one line, then fsync."""
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True) -> Iterator[int]:
    """An advisory ``flock``; the kernel drops it when the process dies, even by SIGKILL."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        fcntl.flock(fd, flags)
        yield fd
    finally:
        os.close(fd)
