"""Store exceptions. Each message is one line that says what is wrong and what to do."""

from __future__ import annotations

from attnscope.errors import AttnscopeError, OutputError


class StoreError(AttnscopeError):
    """Anything the store refuses or cannot read; the message is one line."""


class NotAStoreError(StoreError):
    """The directory is missing, foreign or damaged beyond reading."""


class DiskSpaceError(StoreError):
    """The estimated capture does not fit on the disk."""


class ExportTooLargeError(StoreError):
    """An export (usually CSV) would be unreasonably large; slice it first."""


class StoreBusyError(StoreError):
    """Another process is writing the same step right now."""


class StoreWriteError(StoreError, OutputError):
    """Writing the store failed (disk full, read-only, permissions); what was committed
    before stays readable."""
