"""The torch functions the provenance tracker follows, and how each passes axis names
from its inputs to its output (see :mod:`attnscope.capturing.provenance`). Every handler
runs the call as the model made it first; tracking is best effort and never changes or
breaks a call."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from attnscope.capturing import aliases
from attnscope.capturing.axes import (
    Tag,
    einsum_axes,
    getitem_rows,
    permutation,
    reshaped_axes,
    selected_rows,
    split_dim,
)
from attnscope.capturing.provenance import Lazy, resolve

if TYPE_CHECKING:
    from attnscope.capturing.provenance import Provenance


# the functions each handler follows, where torch exposes them (at import: see aliases)
_T = (torch, torch.Tensor)
_SITES = {
    "reshaped": aliases.sites("reshape view flatten unflatten squeeze unsqueeze view_as "
                              "reshape_as", *_T),
    "permuted": aliases.sites("transpose swapaxes permute movedim", *_T),
    "same": aliases.sites("contiguous clone to float half type_as mul __mul__ __rmul__ div "
                          "__truediv__ add __add__ __radd__ sub __sub__ masked_fill", *_T),
    "split": aliases.sites("split chunk unbind", *_T),
    "padded": aliases.sites("pad", torch.nn.functional, torch._C._nn),
    "product": aliases.sites("matmul __matmul__ bmm baddbmm", *_T),
    "picked": aliases.sites("topk", *_T),
    "indexed": aliases.sites("__getitem__ gather index_select", *_T),
    "joined": aliases.sites("cat concat stack", torch),
    "einsum": aliases.sites("einsum", torch),
}


PICKED = Tag((), picked=True)


def _guarded(track: Any) -> Any:
    """The call as the model made it, then ``track`` on its output: evidence is best
    effort and never changes or breaks the call."""
    def handler(func, args, kwargs):
        out = func(*args, **kwargs)
        try:  # noqa: SIM105  (contextlib.suppress costs a microsecond per torch call)
            track(func, args, kwargs, out)
        except Exception:  # noqa: BLE001  (a shape this tracker did not foresee)
            pass
        return out

    return handler


def _reshape_tag(tag: Tag | None, src: tuple, out: tuple) -> Tag | None:
    axes = None if tag is None else reshaped_axes(tag.axes, src, out)
    return None if axes is None else replace(tag, axes=axes, split=None)


def _permute_tag(tag: Tag | None, order: list[int] | None) -> Tag | None:
    if tag is None or order is None:
        return None
    return replace(tag, axes=tuple(tag.axes[i] for i in order), split=None)


def _pad_tag(tag: Tag | None, src: tuple, out: tuple) -> Tag | None:
    if tag is None or len(out) != len(tag.axes):
        return None
    axes = tuple(a if out[i] == src[i] else (("?", out[i]),) for i, a in enumerate(tag.axes))
    return replace(tag, axes=axes, rows=None, split=None)


def _piece_tag(tag: Tag | None, dim: int, size: int, split: tuple, unbind: bool
               ) -> Tag | None:
    if tag is None:
        return None
    if unbind:
        axes = tag.axes[:dim] + tag.axes[dim + 1:]
    else:
        axes = tuple(a if k != dim else (("?", size),) for k, a in enumerate(tag.axes))
    return replace(tag, axes=axes, split=split)


def _joined_tag(tags: list[Tag | None], dim: int, stack: bool) -> Tag | None:
    """ATCNet's ``torch.cat(x.split(d, -1), 0)``: the pieces of one split of the feature
    axis, in order, along axis 0: heads outside the samples."""
    if any(t is None for t in tags):
        return None
    if any(t.picked for t in tags):
        return PICKED
    first = tags[0].split
    heads = first is not None and first[3] == len(tags[0].axes) - 1 and dim == 0 and \
        [t.split for t in tags] == [(first[0], i, first[2], first[3]) for i in range(len(tags))]
    if not heads:
        return None
    if stack:
        return Tag(((("H", len(tags)),),) + tags[0].axes)
    return Tag(((("H", len(tags)),) + tags[0].axes[0],) + tags[0].axes[1:])


def _product_tag(tag: Tag | None, ndim: int) -> Tag | None:
    if tag is None or ndim != len(tag.axes):
        return None
    return Tag(tag.axes[:-2] + ((), ()), rows=tag.rows)


def _einsum_tag(tag: Tag | None, equation: str, ndim: int) -> Tag | None:
    if tag is None or "." in equation or "->" not in equation:
        return None
    axes = einsum_axes(equation, tag.axes, ndim)
    return None if axes is None else Tag(axes)


def _indexed(tracker: Provenance, name: str, args: tuple, out: Any) -> None:
    """Rows picked along the query axis (axis -2), and values picked by topk."""
    src = args[0] if args else None
    if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
        return
    if name == "__getitem__":
        index = args[1] if len(args) > 1 else None
        parts = index if isinstance(index, tuple) else (index,)
        tensors = [p for p in parts if isinstance(p, torch.Tensor)]
        if not tensors:
            src_tag = tracker.get(src) if tracker.lazy(src) is not None else None
            if src_tag is not None and src_tag.picked:
                tracker.tag(out, PICKED)
            return
        if tracker.picked(src) or any(tracker.picked(p) for p in tensors):
            tracker.tag(out, PICKED)
        rows = getitem_rows(src, parts, out)
    else:  # gather / index_select: (src, dim, index)
        rows = selected_rows(name, src, args[1], args[2])
    if rows is None or out.ndim != src.ndim:
        return
    parent = tracker.lazy(src) or tracker.initial(src)
    full = (rows.expand(out.shape[:-1]), int(src.shape[-2]))
    tracker.rows_made += 1  # the only place a query-row index enters a tag
    tracker.tag(out, Lazy(lambda: Tag(resolve(parent).axes[:-2] + ((), ()), rows=full)))


def handlers(tracker: Provenance) -> dict[Any, Any]:
    """The handlers that keep ``tracker``'s tags, keyed on every object the functions
    may arrive as. Each stores a :class:`Lazy` tag: the shapes it needs are taken now,
    the names worked out only if attention asks."""
    def reshaped(func, args, kwargs, out):
        src = args[0] if args else kwargs.get("input")
        if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        parent = tracker.lazy(src)
        if parent is None:
            if src.ndim < 2 or out.shape == src.shape:
                return  # nothing known and nothing folded or split: not worth a tag
            parent = tracker.initial(src)
        shapes = tuple(src.shape), tuple(out.shape)
        tracker.tag(out, Lazy(lambda: _reshape_tag(resolve(parent), *shapes)))

    def permuted(func, args, kwargs, out):
        src = args[0] if args else kwargs.get("input")
        if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        parent = tracker.lazy(src)
        if parent is None:
            if src.ndim < 3:
                return
            parent = tracker.initial(src)
        name, ndim, rest = func.__name__, src.ndim, args[1:]
        tracker.tag(out, Lazy(lambda: _permute_tag(
            resolve(parent), permutation(name, ndim, rest, kwargs))))

    def same(func, args, kwargs, out):  # casts, copies, elementwise with a scalar
        for t in args[:2]:  # the operand of the output's shape that carries a tag
            value = tracker.lazy(t)
            if value is not None and isinstance(out, torch.Tensor) and t.shape == out.shape:
                tracker.tag(out, value)
                return

    def padded(func, args, kwargs, out):  # F.pad: axes of unchanged size keep names
        parent = tracker.lazy(args[0]) if args else None
        if parent is not None and isinstance(out, torch.Tensor):
            shapes = tuple(args[0].shape), tuple(out.shape)
            tracker.tag(out, Lazy(lambda: _pad_tag(resolve(parent), *shapes)))

    def split(func, args, kwargs, out):
        src = args[0] if args else None
        if not isinstance(src, torch.Tensor) or src.ndim < 2 or \
                not isinstance(out, (tuple, list)):
            return
        parent = tracker.lazy(src) or tracker.initial(src)
        dim = split_dim(func.__name__, args, kwargs, src.ndim)
        unbind = func.__name__ == "unbind"
        for i, piece in enumerate(out):
            marks = (dim, piece.shape[dim] if not unbind else 0, (id(src), i, len(out), dim))
            tracker.tag(piece, Lazy(lambda m=marks: _piece_tag(resolve(parent), *m, unbind)))

    def joined(func, args, kwargs, out):
        seq = args[0] if args else kwargs.get("tensors")
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        values = [tracker.lazy(t) for t in seq or ()]
        if not values or any(v is None for v in values) or not isinstance(dim, int):
            return
        stack = func.__name__ == "stack"
        if len(values) == 1 and not stack:  # einops pack: a copy
            tracker.tag(out, values[0])
            return
        tracker.tag(out, Lazy(lambda: _joined_tag([resolve(v) for v in values], dim, stack)))

    def product(func, args, kwargs, out):
        if not isinstance(out, torch.Tensor):
            return
        if func.__name__ == "einsum":
            ops = args[1:]
            ops = tuple(ops[0]) if len(ops) == 1 and isinstance(ops[0], (list, tuple)) else ops
            parent = tracker.lazy(ops[0]) if ops else None
            if parent is None:
                return
            equation = str(args[0]).replace(" ", "")
            made = Lazy(lambda: _einsum_tag(resolve(parent), equation, out.ndim))
        else:
            ops = args[1:3] if func.__name__ == "baddbmm" else args[:2]
            parent = tracker.lazy(ops[0]) if ops else None
            if parent is None:
                return
            made = Lazy(lambda: _product_tag(resolve(parent), out.ndim))
        tracker.tag(out, made)
        tracker.products = [*tracker.products[-7:], (tracker.owner(), out.shape, made)]

    def picked(func, args, kwargs, out):  # topk
        tracker.tag(out[0], PICKED)
        tracker.tag(out[1], PICKED)

    def indexed(func, args, kwargs, out):
        if func.__name__ == "__getitem__":
            _indexed(tracker, func.__name__, args, out)
        else:  # gather / index_select(input, dim, index)
            named = dict(zip(("input", "dim", "index"), args), **kwargs)
            _indexed(tracker, func.__name__, (named.get("input"), named.get("dim"),
                                              named.get("index")), out)

    table: dict[Any, Any] = {}
    for key, handler in (("reshaped", reshaped), ("permuted", permuted), ("same", same),
                         ("split", split), ("padded", padded), ("product", product),
                         ("picked", picked), ("indexed", indexed), ("joined", joined),
                         ("einsum", product)):
        table.update(aliases.table(_SITES[key], _guarded(handler)))
    return table
