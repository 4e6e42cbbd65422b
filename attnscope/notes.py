"""Notes attnscope gives while it goes on (a query/key store falling back to
probabilities, a step appended to): Python warnings of their own category, shown as one
line ``attnscope: ...`` instead of a source path and a code line.

Example:
    >>> import warnings
    >>> warnings.filterwarnings("ignore", category=attnscope.AttnscopeWarning)  # silence
"""

from __future__ import annotations

import warnings


class AttnscopeWarning(UserWarning):
    """A note from attnscope: nothing failed, but something was done differently."""


def note(message: str) -> None:
    """Warn with :class:`AttnscopeWarning` (filters and ``pytest.warns`` still apply)."""
    warnings.warn(AttnscopeWarning(message), stacklevel=2)


def _format(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
    if isinstance(category, type) and issubclass(category, AttnscopeWarning):
        return f"attnscope: {message}\n"
    return _original(message, category, filename, lineno, line)


_original = warnings.formatwarning
if getattr(_original, "__module__", "") != __name__:  # once, even if reloaded
    warnings.formatwarning = _format
