"""The options of one ``capture``, validated once, before anything touches the model.

:meth:`CaptureOptions.validate` turns ``capture``'s keyword arguments into one frozen
value or raises a one-line :class:`~attnscope.errors.AttnscopeError`; building the
session and attaching hooks (:mod:`attnscope.capturing.api`) then never re-checks them.
Checks that need the model (a pattern that matches no module) happen when the session
is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from attnscope.capturing._qk import check_form
from attnscope.capturing.registry import strategy_classes
from attnscope.capturing.selection import Selection
from attnscope.errors import SelectionError
from attnscope.options import check_kind, store_dtype

Patterns = str | Sequence[str] | None


def patterns(value: Patterns) -> tuple[str, ...]:
    """One glob or several, as a tuple."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def is_writer(store: Any) -> bool:
    """An open store writer (the caller closes it), not a path."""
    return hasattr(store, "write") and hasattr(store, "commit")


@dataclass(frozen=True)
class CaptureOptions:
    """Everything ``capture`` was asked to do (see its docstring for each option)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)
    returns: Mapping[str, int | str] = field(default_factory=dict)
    methods: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)
    strategies: tuple[str, ...] = ()
    store: Any = None
    step: str | None = None
    stored_dtype: Any = None  # what a store path is opened with
    keep: bool = True
    form: str | None = None
    stats: bool = False
    value_weighted: bool = False

    @classmethod
    def validate(
        cls,
        include: Patterns = None,
        exclude: Patterns = None,
        *,
        heads: int | Sequence[int] | None = None,
        samples: int | Sequence[int] | None = None,
        reduce: str | None = None,
        dtype: str | torch.dtype | None = None,
        returns: Mapping[str, int | str] | None = None,
        methods: Mapping[str, str] | None = None,
        kinds: Mapping[str, str] | None = None,
        strategies: Sequence[str] | None = None,
        store: Any = None,
        step: str | None = None,
        keep: bool | None = None,
        form: str | None = None,
        stats: bool = False,
        value_weighted: bool = False,
    ) -> CaptureOptions:
        """Check every option that needs no model; the first bad one is the error."""
        selection = Selection.build(heads, samples, reduce, dtype)
        stored = None
        if store is not None:  # a store holds fewer dtypes than a recording: say so now
            stored = store_dtype(dtype if dtype is not None else getattr(store, "dtype", None))
        for kind in (kinds or {}).values():
            check_kind(kind, dense=True)
        available = strategy_classes()
        names = tuple(available) if strategies is None else tuple(strategies)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise SelectionError(f"unknown strategies {unknown}; available: "
                                 f"{sorted(available)}")
        if form is not None:
            check_form(form)
            if store is None:
                raise SelectionError(f"form={form!r} is a store form; pass store= as well")
            opened = getattr(store, "form", "probs") if is_writer(store) else form
            if opened != form:
                raise SelectionError(f"form={form!r} but the writer was opened with "
                                     f"form={opened!r}; pass form to open_writer")
        return cls(
            include=patterns(include), exclude=patterns(exclude), selection=selection,
            returns=dict(returns or {}), methods=dict(methods or {}),
            kinds=dict(kinds or {}), strategies=names, store=store, step=step,
            stored_dtype=stored, keep=store is None if keep is None else keep, form=form,
            stats=stats, value_weighted=value_weighted,
        )
