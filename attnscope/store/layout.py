"""Where things live inside a store directory, and the small file primitives that keep
them consistent after a crash.

A store is a zarr v3 hierarchy plus two kinds of JSON::

    root/
      zarr.json                      zarr group (attributes name the format)
      attnscope.json                 model, modules registry, steps, dtype, codec
      steps/<step>/journal.jsonl     one line per committed batch (the source of truth)
      steps/<step>/<key>/b000012/    one zarr array per (module entry, batch): a segment
      steps/.<step>.lock             one writer per step
      steps/<step>~1/                an overwrite in progress (or, once swapped in, the step)

Data is written before the journal line that publishes it, so a reader (or a crash)
never sees a batch whose data is incomplete. Segments not named in the journal are
leftovers of an interrupted batch and are ignored. An overwrite writes a new directory
and switches ``attnscope.json`` to it in one rename when the run completes, so a run
that fails leaves the old step as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnscope._files import describe
from attnscope.entries import entry_name
from attnscope.store.errors import StoreBusyError, StoreError, StoreWriteError
from attnscope.store.schema import (
    FORMAT,
    JOURNAL_FILE,
    META_FILE,
    VERSION,
    JournalEntry,
    StoreMeta,
    check_step,
    step_dir_name,
    validate_entry,
    validate_meta,
)

META, JOURNAL = META_FILE, JOURNAL_FILE
__all__ = ["FORMAT", "JOURNAL", "META", "VERSION", "append_journal", "check_step", "entry_name",
           "fsync", "locked", "read_journal", "read_meta", "repair_journal", "segment_dir",
           "step_dir", "step_lock", "sync_paths", "write_json_atomic"]


def step_dir(root: Path, step: str, meta: StoreMeta | None = None) -> Path:
    """Directory holding ``step``'s data; with ``meta``, the one it names (an atomic
    overwrite writes a new directory and switches ``meta`` to it in one rename)."""
    return root / "steps" / (step if meta is None else step_dir_name(meta, step))


def step_lock(root: Path, step: str) -> Path:
    """The lock file of one step: beside its directory, so it survives overwrites."""
    return root / "steps" / f".{step}.lock"


def segment_dir(root: Path, step: str, key: str, batch: int) -> Path:
    return step_dir(root, step) / key / f"b{batch:06d}"


def fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a rename, a new file), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_paths(root: Path, paths: list[Path]) -> None:
    """Make the files and directories under ``paths`` (and their parents' entries)
    durable. One ``syncfs`` of the store's file system where the kernel has it: measured
    20 ms against 380 ms for the 90 ``fsync`` calls of six query/key segments, which
    were a quarter of a capture's time; otherwise every file and directory in turn."""
    if _syncfs(root):
        return
    for p in paths:
        for f in [p, *p.rglob("*")]:
            fsync(f)
    for parent in {p.parent for p in paths}:
        fsync(parent)


def _syncfs(root: Path) -> bool:
    """``syncfs(2)`` on the file system holding ``root``; False where unavailable or
    when it reports an error (then the caller fsyncs each path and sees that error)."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syncfs  # noqa: B018  (AttributeError off Linux)
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        return False
    fd = os.open(root, os.O_RDONLY)
    try:
        return _libc.syncfs(fd) == 0
    finally:
        os.close(fd)


_libc: Any = None


def write_json_atomic(path: Path, obj: Any, durable: bool = True) -> None:
    """Replace ``path`` in one rename, so readers see the old or the new file, never half;
    ``durable``: also on disk before this returns (a writer opened ``durable=False``
    keeps the rename, not the flushes)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)  # labels as written (UTF-8)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreWriteError(describe(err, path, "write")) from err


def read_meta(root: Path) -> StoreMeta:
    """Load and validate ``attnscope.json``, or explain in one line why ``root`` is not
    a (readable) store."""
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
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise StoreError(
            f"'{path}' is corrupt ({type(e).__name__}); restore it or re-capture into a new store"
        ) from None
    return validate_meta(meta, path)


def read_journal(path: Path, step: str) -> list[JournalEntry]:
    """Committed batches of ``step``. Only a torn last line (a writer killed in the middle
    of its one ``write``) is skipped; any other damage (a garbage, empty, duplicated or
    out-of-order line) is an error naming the step, because skipping it would shift
    every later sample."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise StoreError(describe(err, path, f"read the journal of step {step!r}")) from None
    entries: list[JournalEntry] = []
    for n, line in enumerate(data.split(b"\n")[:-1], 1):  # after the last \n: torn
        try:
            entry = validate_entry(json.loads(line), step, n)
        except (ValueError, RecursionError):
            raise StoreError(f"the journal of step {step!r} is damaged: line {n} is not a "
                             f"batch record; re-capture step {step!r} (or delete it)") from None
        if entries and entry["batch"] <= entries[-1]["batch"]:
            raise StoreError(f"the journal of step {step!r} is damaged: line {n} repeats or "
                             f"reorders batch {entry['batch']}; re-capture step {step!r} "
                             "(or delete it)")
        entries.append(entry)
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
    """Publish one batch: a single ``write`` of one line, then fsync. A write that fails
    part-way (disk full) is cut off again, so no garbage line precedes the next one."""
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise StoreWriteError(describe(err, path, "write the journal")) from err
    size = os.fstat(fd).st_size
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(28, "No space left on device")  # a short write: the disk is full
        if durable:
            os.fsync(fd)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise StoreWriteError(describe(err, path, "write the journal")) from err
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True, busy: str = "") -> Iterator[int]:
    """An advisory ``flock``; the kernel drops it when the process dies, even by SIGKILL.
    Not blocking: :class:`StoreBusyError` with ``busy`` as its message."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise StoreWriteError(describe(err, path, "open the lock file")) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise StoreBusyError(busy or f"'{path}' is locked by another process") from None
        yield fd
    finally:
        os.close(fd)
