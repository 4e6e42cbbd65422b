"""How the operands of attention were built, from the reshapes, permutes, splits and cats
the interception mode sees: evidence for the layout check instead of defaults.

Each tracked tensor carries a :class:`Tag`: per axis, the factors it is made of, outer
to inner, each named ``"B"`` (the model call's samples), ``"H"`` (heads) or ``"?"``. A
``(batch, seq, head*dim)`` activation split by a view gets ``H`` on the axis just before
the head dimension; permutes move the names, merges concatenate them; ``torch.cat`` of
the pieces of one split of the feature axis, along axis 0 (braindecode's ATCNet), puts
``H`` outside. So ``(batch*head, ...)`` and ``(head*batch, ...)`` are told apart however
the model wrote it (view/transpose/reshape, einops, split/cat).

Also tagged: query rows picked by an index (ProbSparse's top-u queries; ``rows`` holds
the index along the query axis) and values picked by ``topk`` (Autoformer's lags), so a
softmax over them is not mistaken for attention over every key.

Deliberately left out: elementwise ops other than scaling (a bias add drops the tag;
the softmax strategy then reads the tag of the product the scores came from), and
``expand``/``repeat``, whose new axes have no name. Lookups are by ``id`` checked
against a weak reference, so untracked tensors cost one dict miss.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import replace
from typing import Any

import torch

from attnscope.capturing import aliases
from attnscope.capturing.axes import (
    Tag,
    einsum_axes,
    fold_order,
    getitem_rows,
    permutation,
    reshaped_axes,
    selected_rows,
    split_dim,
)


def _sites(names: str, owners: tuple = (torch, torch.Tensor)) -> list[aliases.Site]:
    return [aliases.Site(o, n) for n in names.split() for o in owners
            if callable(getattr(o, n, None))]


# the functions each handler follows, where torch exposes them (at import: see aliases)
_SITES = {
    "reshaped": _sites("reshape view flatten unflatten squeeze unsqueeze view_as reshape_as"),
    "permuted": _sites("transpose swapaxes permute movedim"),
    "same": _sites("contiguous clone to float half type_as mul __mul__ __rmul__ div "
                   "__truediv__ add __add__ __radd__ sub __sub__ masked_fill"),
    "split": _sites("split chunk unbind"),
    "padded": _sites("pad", (torch.nn.functional, torch._C._nn)),
    "product": _sites("matmul __matmul__ bmm baddbmm"),
    "picked": _sites("topk"),
    "indexed": _sites("__getitem__ gather index_select"),
    "joined": _sites("cat concat stack", (torch,)),
    "einsum": _sites("einsum", (torch,)),
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


def of(session: Any) -> Provenance:
    """The session's tracker, made on first use."""
    tracker = getattr(session, "provenance", None)
    if tracker is None:
        tracker = session.provenance = Provenance(lambda: session.call_batch, session.owner)
    return tracker


class Provenance:
    """Tags of the tensors made during one capture (see the module docstring)."""

    def __init__(self, batch: Any, owner: Any = lambda: None) -> None:
        self._batch = batch  # callable: the current model call's batch size
        self._owner = owner  # callable: the module call running now
        self._tags: dict[int, tuple[weakref.ref, Tag]] = {}
        # (module call, shape, tag) of the last tagged products: scores often outlive
        # the product they came from only as a copy (a mask added, then a view)
        self._products: list[tuple[Any, torch.Size, Tag]] = []

    # -- lookup ---------------------------------------------------------------------
    def get(self, t: Any) -> Tag | None:
        entry = self._tags.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        return entry[1]

    def _set(self, t: Any, tag: Tag) -> None:
        if not isinstance(t, torch.Tensor):
            return
        key, tags = id(t), self._tags
        tags[key] = (weakref.ref(t, lambda r: tags.pop(key, None)
                                 if tags.get(key, (None,))[0] is r else None), tag)

    def _initial(self, t: torch.Tensor) -> Tag:
        batch = self._batch()
        axes = tuple(((("B" if i == 0 and s == batch else "?"), s),)
                     for i, s in enumerate(t.shape))
        return Tag(axes)

    def _of(self, t: torch.Tensor) -> Tag:
        return self.get(t) or self._initial(t)

    def evidence(self, t: Any, frame: Any = None) -> dict[str, Any]:
        """What the layout check may use about ``t`` (attention scores, or an sdpa
        query): how its leading axis was folded, which query rows it holds. Scores lose
        part of their tag on the way (a mask added, then a view), so the latest product
        of the same elements made in module call ``frame`` fills what ``t`` lacks; a fold
        that names the heads beats one that only names the samples."""
        tags = [self.get(t)]
        if frame is not None and isinstance(t, torch.Tensor):
            tags.append(next((made for f, shape, made in reversed(self._products)
                              if f is frame and shape[-2:] == t.shape[-2:] and
                              shape.numel() == t.numel()), None))
        folds = [fold_order(g.axes[0]) for g in tags if g is not None and g.axes]
        folds = [f for f in folds if f is not None]
        found: dict[str, Any] = {}
        if folds:
            found["fold"] = next((f for f in folds if f[1] is not None), folds[0])
        rows = next((g.rows for g in tags if g is not None and g.rows is not None), None)
        if rows is not None:
            found["rows"] = rows
        return found

    def picked(self, t: Any) -> bool:
        """Whether ``t`` holds values chosen by ``topk`` (not scores over every key)."""
        tag = self.get(t)
        return tag is not None and tag.picked

    # -- propagation ----------------------------------------------------------------
    def _reshaped(self, src: torch.Tensor, out: torch.Tensor) -> None:
        tag = self.get(src)
        if tag is None and (src.ndim < 2 or (out.ndim == src.ndim and
                                             out.shape[0] == src.shape[0])):
            return  # nothing known and nothing folded or split: not worth a tag
        tag = tag or self._initial(src)
        axes = reshaped_axes(tag.axes, tuple(src.shape), tuple(out.shape))
        if axes is not None:
            self._set(out, replace(tag, axes=axes, split=None))

    def _permuted(self, src: torch.Tensor, out: torch.Tensor, order: list[int]) -> None:
        tag = self.get(src)
        if tag is None and src.ndim < 3:
            return
        tag = tag or self._initial(src)
        self._set(out, replace(tag, axes=tuple(tag.axes[i] for i in order), split=None))

    def handlers(self) -> dict[Any, Any]:
        def reshaped(func, args, kwargs, out):
            src = args[0] if args else kwargs.get("input")
            if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor):
                self._reshaped(src, out)

        def permuted(func, args, kwargs, out):
            src = args[0] if args else kwargs.get("input")
            if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor) and \
                    src.ndim == out.ndim:
                order = permutation(func.__name__, src.ndim, args[1:], kwargs)
                if order is not None:
                    self._permuted(src, out, order)

        def same(func, args, kwargs, out):  # casts, copies, elementwise with a scalar
            if not isinstance(out, torch.Tensor):
                return
            for t in args[:2]:  # the operand of the output's shape that carries a tag
                tag = self.get(t)
                if tag is not None and t.shape == out.shape:
                    self._set(out, tag)
                    return

        def padded(func, args, kwargs, out):  # F.pad: axes of unchanged size keep names
            tag = self.get(args[0]) if args else None
            if tag is not None and isinstance(out, torch.Tensor) and out.ndim == len(tag.axes):
                axes = tuple(a if out.shape[i] == args[0].shape[i] else (("?", out.shape[i]),)
                             for i, a in enumerate(tag.axes))
                self._set(out, replace(tag, axes=axes, rows=None, split=None))

        def split(func, args, kwargs, out):
            src = args[0] if args else None
            if not isinstance(src, torch.Tensor) or src.ndim < 2 or \
                    not isinstance(out, (tuple, list)):
                return
            dim = split_dim(func.__name__, args, kwargs, src.ndim)
            tag = self._of(src)
            for i, piece in enumerate(out):
                if func.__name__ == "unbind":
                    axes = tag.axes[:dim] + tag.axes[dim + 1:]
                else:
                    axes = tuple(a if k != dim else (("?", piece.shape[k]),)
                                 for k, a in enumerate(tag.axes))
                self._set(piece, replace(tag, axes=axes, split=(id(src), i, len(out), dim)))

        def joined(func, args, kwargs, out):
            seq = args[0] if args else kwargs.get("tensors")
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            tags = [self.get(t) for t in seq or ()]
            if not tags or any(t is None for t in tags) or not isinstance(dim, int):
                return
            if any(t.picked for t in tags):
                self._set(out, Tag((), picked=True))
            if len(tags) == 1 and func.__name__ != "stack":  # einops pack: a copy
                self._set(out, tags[0])
                return
            first = tags[0].split
            pieces = [t.split for t in tags]
            heads = first is not None and first[3] == len(tags[0].axes) - 1 and \
                pieces == [(first[0], i, first[2], first[3]) for i in range(len(tags))]
            if heads and dim == 0 and func.__name__ != "stack":  # ATCNet: head-major
                axes = ((("H", len(tags)),) + tags[0].axes[0],) + tags[0].axes[1:]
                self._set(out, Tag(axes))
            elif heads and dim == 0:
                self._set(out, Tag(((("H", len(tags)),),) + tags[0].axes))

        def product(func, args, kwargs, out):
            if func.__name__ == "einsum":
                self._einsum(args, out)
            else:
                ops = args[1:3] if func.__name__ == "baddbmm" else args[:2]
                tag = self.get(ops[0]) if ops else None
                if tag is not None and isinstance(out, torch.Tensor) and \
                        out.ndim == len(tag.axes):
                    self._set(out, Tag(tag.axes[:-2] + ((), ()), rows=tag.rows))
            made = self.get(out)
            if made is not None:
                self._products = [*self._products[-7:], (self._owner(), out.shape, made)]

        def picked(func, args, kwargs, out):  # topk
            self._set(out[0], Tag((), picked=True))
            self._set(out[1], Tag((), picked=True))

        def indexed(func, args, kwargs, out):
            if func.__name__ == "__getitem__":
                self._indexed(func.__name__, args, out)
            else:  # gather / index_select(input, dim, index)
                named = dict(zip(("input", "dim", "index"), args), **kwargs)
                self._indexed(func.__name__, (named.get("input"), named.get("dim"),
                                              named.get("index")), out)

        table: dict[Any, Any] = {}
        for key, handler in (("reshaped", reshaped), ("permuted", permuted), ("same", same),
                             ("split", split), ("padded", padded), ("product", product), ("picked", picked),
                             ("indexed", indexed), ("joined", joined), ("einsum", product)):
            table.update(aliases.table(_SITES[key], _guarded(handler)))
        return table

    def _einsum(self, args: tuple, out: Any) -> None:
        """Output axes named like the first operand's (``"bhie,bhje->bhij"``)."""
        ops = args[1:]
        if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
            ops = tuple(ops[0])
        equation = str(args[0]).replace(" ", "")
        tag = self.get(ops[0]) if ops else None
        if tag is None or "." in equation or "->" not in equation or \
                not isinstance(out, torch.Tensor):
            return
        axes = einsum_axes(equation, tag.axes, out.ndim)
        if axes is not None:
            self._set(out, Tag(axes))

    def _indexed(self, name: str, args: tuple, out: Any) -> None:
        """Rows picked along the query axis (axis -2), and values picked by topk."""
        src = args[0] if args else None
        if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        tag = self.get(src)
        index = args[1] if len(args) > 1 else None
        if name == "__getitem__":
            parts = index if isinstance(index, tuple) else (index,)
            if (tag is not None and tag.picked) or any(
                    (self.get(p) or Tag(())).picked for p in parts):
                self._set(out, Tag((), picked=True))
            rows = getitem_rows(src, parts, out)
        else:  # gather / index_select: (src, dim, index)
            rows = selected_rows(name, src, args[1], args[2])
        if rows is None or out.ndim != src.ndim:
            return
        axes = (tag or self._initial(src)).axes[:-2] + ((), ())
        self._set(out, Tag(axes, rows=(rows.expand(out.shape[:-1]), int(src.shape[-2]))))
