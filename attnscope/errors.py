"""Exceptions users are expected to catch; each message is one line that says what to do."""

from __future__ import annotations


class AttnscopeError(Exception):
    """Base of every error attnscope raises on purpose."""


class NoAttentionFoundError(AttnscopeError):
    """A capture ended normally without recording a single attention map."""


class SelectionError(AttnscopeError, ValueError):
    """A head, sample or module selection that the model cannot satisfy."""


class DataError(AttnscopeError, ValueError):
    """A batch or data set that the batch protocol (:mod:`attnscope.data`) cannot read."""


class OptionError(AttnscopeError, ValueError):
    """An option value attnscope does not take (a dtype, kind, keepbits, a resolution or
    a size outside the range that works); checked before any work starts."""


class OutputError(AttnscopeError):
    """A file or directory that cannot be written: disk full, read-only, no permission,
    or a file where a directory should be. Nothing half-written is left behind."""


class ModelError(AttnscopeError):
    """The user's model raised on the data it was given (wrong type, width, device);
    the model's own exception is kept as the cause."""


class MapTooLargeError(SelectionError):
    """An attention map that cannot fit in memory; the message names the selection
    (heads=, samples=, dtype=) that would."""
