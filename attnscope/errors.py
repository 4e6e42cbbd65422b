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
    """An option value attnscope does not take (a dtype, kind or keepbits); checked in
    :mod:`attnscope.options` before any work starts."""
