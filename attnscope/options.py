"""Allowed values of the options several parts take, checked in one place so a bad value
fails at once, with the same message, wherever it is given (``capture``, a store
writer, the Lightning callback's config, the command line).

Example:
    >>> resolve_dtype("bfloat16", stored=True)
    OptionError: dtype 'bfloat16' cannot be stored; a store holds float16 or float32
"""

from __future__ import annotations

import torch

from attnscope.errors import OptionError, SelectionError

# weights are computed in float32; these are what a recording may hold ...
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}
# ... and what a store may hold
STORE_DTYPES = ("float16", "float32")
KINDS = ("self", "cross", "graph")
DENSE_KINDS = ("self", "cross")
# how a store keeps dense maps: probabilities, or the queries and keys they come from
FORMS = ("probs", "qk", "qk16")
# maps longer than this are never held whole: the viewer shows them coarse (computed from
# queries and keys where stored so), generate keeps q/k layers lazy and scores them blockwise
LONG_MAP = 1024
MAX_KEEPBITS = 23  # float32 mantissa bits; float16 has 10


def resolve_dtype(dtype: str | torch.dtype | None, *, stored: bool = False
                  ) -> torch.dtype | None:
    """The torch dtype named by ``dtype`` (``None`` stays ``None``); ``stored``: it must
    also be one a store can hold."""
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise OptionError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    if stored and name not in STORE_DTYPES:
        raise OptionError(f"dtype {name!r} cannot be stored; a store holds "
                          f"{' or '.join(STORE_DTYPES)} (capture in memory for {name})")
    return DTYPES[name]


def store_dtype(dtype: str | torch.dtype | None) -> str:
    """The store dtype name for ``dtype`` (``None``: the default, float16)."""
    resolved = resolve_dtype(dtype, stored=True)
    return "float16" if resolved is None else str(resolved).replace("torch.", "")


def check_kind(kind: str, *, dense: bool = False) -> str:
    """``kind`` when it is a known attention kind (``dense``: ``self`` or ``cross``)."""
    allowed = DENSE_KINDS if dense else KINDS
    if kind not in allowed:
        raise OptionError(f"kind {kind!r} is not one of {', '.join(allowed)}")
    return kind


def check_keepbits(keepbits: int | None) -> int | None:
    """Mantissa bits kept by the lossy store mode (``None``: lossless)."""
    if keepbits is None:
        return None
    if isinstance(keepbits, bool) or not isinstance(keepbits, int) or \
            not 0 <= keepbits <= MAX_KEEPBITS:
        raise OptionError(f"keepbits={keepbits!r} out of range; use 0..10 for float16 "
                          f"(0..{MAX_KEEPBITS} for float32) or None for lossless")
    return keepbits


def check_form(form: str | None) -> str:
    """``None`` -> ``"probs"``; anything not in :data:`FORMS` is a one-line error."""
    if form is None:
        return "probs"
    if form not in FORMS:
        raise SelectionError(f"form={form!r}; use 'probs' (probabilities), 'qk' (queries and "
                             "keys, exact) or 'qk16' (queries and keys as float16)")
    return form
