"""Every object a torch function may reach the interception mode as, so a handler table
still matches when another tool (TorchLens, a profiler, a user's ``functools.wraps``
decorator) has replaced torch's functions with wrappers.

The mode receives whatever object the call went through: torch's C builtin for
``F.scaled_dot_product_attention`` (the wrapper calls it), the wrapper itself for a
Python-level method such as ``Tensor.softmax`` that was replaced on the class. A handler
is therefore keyed on the function as it was when attnscope was imported, on what is
installed under the same name now (looked up when a capture starts), and on every
function reached through ``__wrapped__``. Identity of the current attribute alone is
not enough, and neither is the import-time original alone.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from typing import Any


def _chain(func: Any) -> list[Any]:
    """``func`` and the functions it wraps: ``__wrapped__`` (``functools.wraps``), else a
    function of the same name the wrapper closes over."""
    found = []
    while func is not None and not any(func is f for f in found) and len(found) < 8:
        found.append(func)
        inner = getattr(func, "__wrapped__", None)
        if inner is None:
            name = getattr(func, "__name__", None)
            cells = getattr(func, "__closure__", None) or ()
            inner = next((c.cell_contents for c in cells if _named(c, name)), None)
        func = inner
    return found


def _named(cell: Any, name: str | None) -> bool:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return callable(value) and name is not None and getattr(value, "__name__", None) == name


class Site:
    """A place torch exposes a function (``Site(torch.Tensor, "softmax")``), with the
    object found there when this module was imported."""

    def __init__(self, owner: Any, name: str) -> None:
        self.owner, self.name = owner, name
        self.original = getattr(owner, name)
        self._seen: tuple[Any, list[Any]] | None = None  # (occupant, its objects)

    def objects(self) -> list[Callable[..., Any]]:
        """The original, the current occupant and everything either wraps; worked out
        again only when the occupant changed (every capture asks, for ~100 sites)."""
        current = getattr(self.owner, self.name, None)
        seen = self._seen
        if seen is not None and seen[0] is current:
            return seen[1]
        found: list[Any] = []
        for func in (*_chain(self.original), *_chain(current)):
            if not any(func is f for f in found):
                found.append(func)
        self._seen = (current, found)
        return found


def sites(names: str, *owners: Any) -> list[Site]:
    """A :class:`Site` for each space-separated name on each owner that has it."""
    return [Site(o, n) for n in names.split() for o in owners if callable(getattr(o, n, None))]


def table(sites: Iterable[Site], handler: Callable[..., Any]) -> dict[Any, Any]:
    """``{object: handler}`` for every object each site's function may arrive as."""
    return {func: handler for site in sites for func in site.objects()}


def merge(handlers: dict[Any, Any], more: dict[Any, Any]) -> None:
    """Add ``more`` to ``handlers``; where both handle one function, the new handler runs
    around the old one (its ``func`` is the old handler bound to the real function)."""
    for func, handler in more.items():
        old = handlers.get(func)
        handlers[func] = handler if old is None or old is handler else _around(old, handler)


def _around(inner: Callable[..., Any], outer: Callable[..., Any]) -> Callable[..., Any]:
    def chained(func, args, kwargs):
        def call(*a, **k):
            return inner(func, a, k)

        with contextlib.suppress(AttributeError, TypeError):
            call = functools.wraps(func)(call)  # keeps __name__ (handlers read it)
        return outer(call, args, kwargs)

    return chained
