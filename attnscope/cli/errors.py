"""Errors of the command-line side: loading what a user names, one line each."""

from __future__ import annotations

import re

from attnscope.errors import AttnscopeError


class LoadError(AttnscopeError):
    """A model, data set or checkpoint that cannot be loaded as given."""


class CheckpointError(LoadError):
    """A checkpoint that is missing, corrupt, refused or does not fit the model."""


def one_line(err: BaseException) -> str:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
