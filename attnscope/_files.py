"""Writing output files so that a failure leaves nothing half-written, and naming them
so that two modules never share a file.

Every file goes to a temporary name in its final directory and is renamed into place
only when complete: after a crash, Ctrl-C or a full disk a reader finds the old file or
none, never a 0-byte PNG/NPY/CSV. OS errors become one :class:`OutputError` line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from attnscope.errors import OutputError

_HINTS = {errno.ENOSPC: "free some space or write elsewhere",
          errno.EDQUOT: "free some space or write elsewhere",
          errno.EROFS: "the file system is read-only; write elsewhere",
          errno.EACCES: "check the permissions or write elsewhere",
          errno.EPERM: "check the permissions or write elsewhere",
          errno.ENOTDIR: "a file stands where a directory is needed; move it or write elsewhere",
          errno.EISDIR: "a directory stands where a file is needed; move it or write elsewhere",
          errno.EEXIST: "a file stands where a directory is needed; move it or write elsewhere"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]@]")
MAX_NAME = 96  # characters of a module name kept in a file name (file systems allow 255 bytes)


def describe(err: OSError, path: str | os.PathLike, action: str) -> str:
    """One line for an OS error: what failed, where, why, and what to do."""
    why = err.strerror or type(err).__name__
    hint = _HINTS.get(err.errno or 0, "check the path and try again")
    return f"cannot {action} '{path}': {why}; {hint}"


def ensure_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``path`` (and parents) or raise one :class:`OutputError` line saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} '{path}' is a file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(describe(err, path, f"create the {what}")) from err
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on any
    failure remove it. The suffix is kept so writers that pick a format from it work.

    Example:
        >>> with atomic_path("out/attention.npy") as tmp:
        ...     np.save(tmp, array)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem[:80]}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise OutputError(describe(err, path, "write")) from err
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``path`` holding ``text`` (UTF-8), written aside and renamed: never half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def safe_filename(name: str) -> str:
    """A file-name-safe, stable and unique form of ``name``: names that are safe and
    short stay as they are; others are cleaned, cut, and get a hash of the full name,
    so ``attn:1`` and ``attn;1`` (or two CJK names) never share a file."""
    clean = _UNSAFE.sub("_", name)
    if clean == name and 0 < len(name) <= MAX_NAME and not name.startswith("."):
        return name
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{clean.lstrip('.')[:MAX_NAME] or 'module'}-{digest}"
