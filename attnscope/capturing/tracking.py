"""The torch functions the provenance tracker follows, and how each passes axis names
from its inputs to its output (see :mod:`attnscope.capturing.provenance`). Every handler
runs the call as the model made it first; tracking is best effort and never changes or
breaks a call."""

from __future__ import annotations

import contextlib
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


def _guarded(track: Any) -> Any:
    """The call as the model made it, then ``track`` on its output: evidence is best
    effort and never changes or breaks the call."""
    def handler(func, args, kwargs):
        out = func(*args, **kwargs)
        with contextlib.suppress(Exception):  # a shape this tracker did not foresee
            track(func, args, kwargs, out)
        return out

    return handler


def _reshaped(tracker: Provenance, src: torch.Tensor, out: torch.Tensor) -> None:
    tag = tracker.get(src)
    if tag is None and (src.ndim < 2 or (out.ndim == src.ndim and
                                         out.shape[0] == src.shape[0])):
        return  # nothing known and nothing folded or split: not worth a tag
    tag = tag or tracker.initial(src)
    axes = reshaped_axes(tag.axes, tuple(src.shape), tuple(out.shape))
    if axes is not None:
        tracker.tag(out, replace(tag, axes=axes, split=None))


def _permuted(tracker: Provenance, src: torch.Tensor, out: torch.Tensor,
              order: list[int]) -> None:
    tag = tracker.get(src)
    if tag is None and src.ndim < 3:
        return
    tag = tag or tracker.initial(src)
    tracker.tag(out, replace(tag, axes=tuple(tag.axes[i] for i in order), split=None))


def _einsum(tracker: Provenance, args: tuple, out: Any) -> None:
    """Output axes named like the first operand's (``"bhie,bhje->bhij"``)."""
    ops = args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    equation = str(args[0]).replace(" ", "")
    tag = tracker.get(ops[0]) if ops else None
    if tag is None or "." in equation or "->" not in equation or \
            not isinstance(out, torch.Tensor):
        return
    axes = einsum_axes(equation, tag.axes, out.ndim)
    if axes is not None:
        tracker.tag(out, Tag(axes))


def _indexed(tracker: Provenance, name: str, args: tuple, out: Any) -> None:
    """Rows picked along the query axis (axis -2), and values picked by topk."""
    src = args[0] if args else None
    if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
        return
    tag = tracker.get(src)
    index = args[1] if len(args) > 1 else None
    if name == "__getitem__":
        parts = index if isinstance(index, tuple) else (index,)
        if (tag is not None and tag.picked) or any(
                (tracker.get(p) or Tag(())).picked for p in parts):
            tracker.tag(out, Tag((), picked=True))
        rows = getitem_rows(src, parts, out)
    else:  # gather / index_select: (src, dim, index)
        rows = selected_rows(name, src, args[1], args[2])
    if rows is None or out.ndim != src.ndim:
        return
    axes = (tag or tracker.initial(src)).axes[:-2] + ((), ())
    tracker.tag(out, Tag(axes, rows=(rows.expand(out.shape[:-1]), int(src.shape[-2]))))


def handlers(tracker: Provenance) -> dict[Any, Any]:
    """The handlers that keep ``tracker``'s tags, keyed on every object the functions
    may arrive as."""
    def reshaped(func, args, kwargs, out):
        src = args[0] if args else kwargs.get("input")
        if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor):
            _reshaped(tracker, src, out)

    def permuted(func, args, kwargs, out):
        src = args[0] if args else kwargs.get("input")
        if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor) and \
                src.ndim == out.ndim:
            order = permutation(func.__name__, src.ndim, args[1:], kwargs)
            if order is not None:
                _permuted(tracker, src, out, order)

    def same(func, args, kwargs, out):  # casts, copies, elementwise with a scalar
        if not isinstance(out, torch.Tensor):
            return
        for t in args[:2]:  # the operand of the output's shape that carries a tag
            tag = tracker.get(t)
            if tag is not None and t.shape == out.shape:
                tracker.tag(out, tag)
                return

    def padded(func, args, kwargs, out):  # F.pad: axes of unchanged size keep names
        tag = tracker.get(args[0]) if args else None
        if tag is not None and isinstance(out, torch.Tensor) and out.ndim == len(tag.axes):
            axes = tuple(a if out.shape[i] == args[0].shape[i] else (("?", out.shape[i]),)
                         for i, a in enumerate(tag.axes))
            tracker.tag(out, replace(tag, axes=axes, rows=None, split=None))

    def split(func, args, kwargs, out):
        src = args[0] if args else None
        if not isinstance(src, torch.Tensor) or src.ndim < 2 or \
                not isinstance(out, (tuple, list)):
            return
        dim = split_dim(func.__name__, args, kwargs, src.ndim)
        tag = tracker.tag_of(src)
        for i, piece in enumerate(out):
            if func.__name__ == "unbind":
                axes = tag.axes[:dim] + tag.axes[dim + 1:]
            else:
                axes = tuple(a if k != dim else (("?", piece.shape[k]),)
                             for k, a in enumerate(tag.axes))
            tracker.tag(piece, replace(tag, axes=axes, split=(id(src), i, len(out), dim)))

    def joined(func, args, kwargs, out):
        seq = args[0] if args else kwargs.get("tensors")
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        tags = [tracker.get(t) for t in seq or ()]
        if not tags or any(t is None for t in tags) or not isinstance(dim, int):
            return
        if any(t.picked for t in tags):
            tracker.tag(out, Tag((), picked=True))
        if len(tags) == 1 and func.__name__ != "stack":  # einops pack: a copy
            tracker.tag(out, tags[0])
            return
        first = tags[0].split
        pieces = [t.split for t in tags]
        heads = first is not None and first[3] == len(tags[0].axes) - 1 and \
            pieces == [(first[0], i, first[2], first[3]) for i in range(len(tags))]
        if heads and dim == 0 and func.__name__ != "stack":  # ATCNet: head-major
            axes = ((("H", len(tags)),) + tags[0].axes[0],) + tags[0].axes[1:]
            tracker.tag(out, Tag(axes))
        elif heads and dim == 0:
            tracker.tag(out, Tag(((("H", len(tags)),),) + tags[0].axes))

    def product(func, args, kwargs, out):
        if func.__name__ == "einsum":
            _einsum(tracker, args, out)
        else:
            ops = args[1:3] if func.__name__ == "baddbmm" else args[:2]
            tag = tracker.get(ops[0]) if ops else None
            if tag is not None and isinstance(out, torch.Tensor) and \
                    out.ndim == len(tag.axes):
                tracker.tag(out, Tag(tag.axes[:-2] + ((), ()), rows=tag.rows))
        made = tracker.get(out)
        if made is not None:
            tracker.products = [*tracker.products[-7:], (tracker.owner(), out.shape, made)]

    def picked(func, args, kwargs, out):  # topk
        tracker.tag(out[0], Tag((), picked=True))
        tracker.tag(out[1], Tag((), picked=True))

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

