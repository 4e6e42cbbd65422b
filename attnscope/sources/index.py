"""The one index normaliser: names, steps, samples and heads chosen the same way by
every reader (plot, viewer, analysis, graph, the CLI).

A selection is ``None`` (everything), an int (negative counts from the end), a slice, a
sequence of ints, or for heads ``"all"``/``"mean"``. Out-of-range positions and unknown
names raise one-line :class:`~attnscope.errors.SelectionError` messages that list what
exists.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnscope.errors import SelectionError

HeadSpec = int | str | Sequence[int] | None
Positions = int | slice | Sequence[int] | None


def listing(names: Sequence[str], limit: int = 12) -> str:
    """``a, b, c ...``: the first names, for error lines."""
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")


def pick_name(names: Sequence[str], spec: str | int | None, what: str = "module") -> str:
    """One of ``names``: by name, by position (negative: from the end), or the only one."""
    names = list(names)
    if spec is None:
        if len(names) == 1:
            return names[0]
        raise SelectionError(f"several {what}s are available, pick one: {listing(names)}")
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str)
                                               and re.fullmatch(r"-?\d+", spec)):
        i = int(spec)
        if -len(names) <= i < len(names):
            return names[i]
        raise SelectionError(f"{what} index {i} out of range ({len(names)} {what}s: "
                             f"{listing(names)})")
    if spec not in names:
        raise SelectionError(f"no {what} {spec!r}; available: {listing(names)}")
    return spec


def pick_names(names: Sequence[str], spec: str | Sequence[str | int] | None,
               what: str = "module") -> list[str]:
    """Several of ``names``: a glob, a list of names or positions, or None (all)."""
    names = list(names)
    if spec is None:
        return names
    if isinstance(spec, str) and spec not in names and not re.fullmatch(r"-?\d+", spec):
        chosen = [n for n in names if fnmatch.fnmatchcase(n, spec)]
        if not chosen:
            raise SelectionError(f"no {what} matches {spec!r}; available: {listing(names)}")
        return chosen
    items = [spec] if isinstance(spec, (str, int, np.integer)) else list(spec)
    return [pick_name(names, item, what) for item in items]


def pick_steps(have: Sequence[str], spec: str | Sequence[str] | None) -> list[str]:
    """Steps by name, ``"last"``, or None (all of ``have``)."""
    have = list(have)
    if spec is None:
        return have
    wanted = [spec] if isinstance(spec, str) else list(spec)
    if wanted == ["last"]:
        return have[-1:]
    missing = [s for s in wanted if s not in have]
    if missing:
        raise SelectionError(f"no step {missing[0]!r}; steps: {listing(have)}")
    return wanted


def positions(spec: Positions, n: int, what: str = "sample", where: str = "the source"
              ) -> np.ndarray:
    """Positions ``0..n-1`` chosen by ``spec``, in the order given, negatives wrapped."""
    if spec is None:
        return np.arange(n)
    try:
        if isinstance(spec, slice):
            return np.arange(n)[spec]
        idx = np.atleast_1d(np.asarray(spec, dtype=np.int64)).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise SelectionError(f"{what} selection {spec!r} is not integers or a slice") from None
    bad = idx[(idx < -n) | (idx >= n)]
    if len(bad):
        raise SelectionError(f"{what} {int(bad[0])} out of range: {where} has {n} {what}s")
    return np.where(idx < 0, idx + n, idx)


def resolve_layer(layer: int, n: int, what: str) -> int:
    """A layer position for every workflow; negative counts from the end (-1: the last)."""
    if not -n <= layer < n:
        raise SelectionError(f"layer {layer} is out of range: the model has {n} {what} "
                             f"layers (use 0..{n - 1}, or -1 for the last)")
    return layer % n


def head_positions(spec: HeadSpec, num_heads: int) -> list[int]:
    """Head positions chosen by ``spec`` (int, list, ``"all"``/``"mean"``/None = all)."""
    if spec is None or (isinstance(spec, str) and spec in ("all", "mean")):
        return list(range(num_heads))
    if isinstance(spec, str):
        raise SelectionError(f"head must be an index, a list, 'mean' or 'all', not {spec!r}")
    out = [int(spec)] if np.isscalar(spec) else [int(h) for h in spec]
    bad = [h for h in out if not -num_heads <= h < num_heads]
    if bad:
        raise SelectionError(f"no head {bad[0]}: this map has {num_heads} heads "
                             f"(0..{num_heads - 1}, 'mean' or 'all')")
    return [h % num_heads for h in out]


def as_list(spec: Any) -> list[int]:
    """An int or a sequence of ints as a list (``samples=0`` or ``samples=[0, 1]``)."""
    return [int(spec)] if np.isscalar(spec) else [int(s) for s in spec]
