"""Axis names of tracked tensors and the pure shape logic behind them (helpers of
:mod:`attnscope.capturing.provenance`): which axes a reshape pairs, which axis a
permute moves where, which rows an index picks, and what a folded axis says about the
order of heads and samples."""

from __future__ import annotations

from dataclasses import dataclass

import torch

Axis = tuple[tuple[str, int], ...]  # (name, size) factors, outer first


@dataclass(frozen=True)
class Tag:
    axes: tuple[Axis, ...]
    rows: tuple[torch.Tensor, int] | None = None  # (index (..., u), full length) on axis -2
    picked: bool = False  # values chosen by topk (or indexed by topk indices)
    split: tuple[int, int, int, int] | None = None  # (source id, piece, pieces, dim)


def pair_axes(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Axes of shape ``a`` and ``b`` that hold the same elements (a reshape's pairing)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        ia, jb, pa, pb = [i], [j], a[i], b[j]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb and i < len(a):
                pa, i = pa * a[i], i + 1
                ia.append(i - 1)
            elif pb < pa and j < len(b):
                pb, j = pb * b[j], j + 1
                jb.append(j - 1)
            else:
                return None
        groups.append((ia, jb))
    if any(s != 1 for s in a[i:]) or any(s != 1 for s in b[j:]) or not groups:
        return None
    return groups


def fold_order(axis: Axis) -> tuple[str, int | None] | None:
    """``("batch", heads)`` when the heads are the inner factor of a folded axis,
    ``("head", heads)`` when they are the outer one; ``None`` without evidence."""
    names = [n for n, s in axis if s > 1]
    if len(names) < 2:
        return None
    heads = next((s for n, s in axis if n == "H" and s > 1), None)
    if "H" in names and names.count("H") == 1:
        if names[-1] == "H":
            return "batch", heads
        if names[0] == "H":
            return "head", heads
        return None
    if names.count("B") == 1:
        if names[0] == "B":
            return "batch", None
        if names[-1] == "B":
            return "head", None
    return None


def getitem_rows(src: torch.Tensor, parts: tuple, out: torch.Tensor) -> torch.Tensor | None:
    """The query-axis index of ``src[parts]`` when it picks rows with a tensor index."""
    if any(p is None or p is Ellipsis for p in parts) or len(parts) < src.ndim - 1:
        return None
    index = parts[src.ndim - 2]
    if not isinstance(index, torch.Tensor) or index.dtype not in (torch.long, torch.int):
        return None
    tensors = [p for p in parts if isinstance(p, torch.Tensor)]
    if any(not isinstance(p, (torch.Tensor, slice)) for p in parts):
        return None
    try:
        position = next(i for i, t in enumerate(tensors) if t is index)
        return torch.broadcast_tensors(*tensors)[position]
    except RuntimeError:
        return None


def permutation(name: str, ndim: int, rest: tuple, kwargs: dict) -> list[int] | None:
    """Output axis ``k`` is input axis ``order[k]``."""
    order = list(range(ndim))
    try:
        if name in ("transpose", "swapaxes"):
            a = rest[0] if rest else kwargs.get("dim0", kwargs.get("axis0"))
            b = rest[1] if len(rest) > 1 else kwargs.get("dim1", kwargs.get("axis1"))
            a, b = a % ndim, b % ndim
            order[a], order[b] = order[b], order[a]
            return order
        if name == "permute":
            dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
            dims = dims or kwargs.get("dims")
            return [d % ndim for d in dims]
        source, dest = (rest + (None, None))[:2]
        if isinstance(source, int) and isinstance(dest, int):  # movedim
            order.remove(source % ndim)
            order.insert(dest % ndim, source % ndim)
            return order
    except (TypeError, IndexError):
        return None
    return None


def split_dim(name: str, args: tuple, kwargs: dict, ndim: int) -> int:
    position = 1 if name == "unbind" else 2
    dim = args[position] if len(args) > position else kwargs.get("dim", 0)
    return dim % ndim if isinstance(dim, int) else 0


def einsum_axes(equation: str, axes: tuple[Axis, ...], ndim: int) -> tuple[Axis, ...] | None:
    """Output axes of an einsum named like its first operand's (``"bhie,bhje->bhij"``)."""
    first, result = equation.split(",")[0], equation.split("->")[1]
    if len(first) != len(axes) or len(result) != ndim:
        return None
    return tuple(axes[first.index(c)] if c in first else () for c in result)


def selected_rows(name: str, src: torch.Tensor, dim: object, index: object
                  ) -> torch.Tensor | None:
    """The query-axis (axis -2) index of ``gather``/``index_select(src, dim, index)``."""
    if not isinstance(dim, int) or not isinstance(index, torch.Tensor) or src.ndim < 2 or \
            dim % src.ndim != src.ndim - 2:
        return None
    if name == "index_select":
        return index
    return index[..., 0] if index.ndim == src.ndim else None


def _pack(atoms: list[tuple[str, int]], sizes: list[int]) -> list[Axis] | None:
    """Factors ``atoms`` (outer first) dealt to axes of ``sizes``, inner axes first; a
    factor larger than an axis is split, its inner part keeping the name."""
    atoms, dealt = list(atoms), []
    for size in reversed(sizes):
        got: list[tuple[str, int]] = []
        product = 1
        while product < size:
            if not atoms:
                return None
            name, s = atoms.pop()
            if size % (product * s) == 0:
                got.insert(0, (name, s))
                product *= s
            elif s % (size // product) == 0 and size % product == 0:
                need = size // product
                got.insert(0, (name, need))
                product *= need
                atoms.append(("?", s // need))  # the outer rest has no name
            else:
                return None
        dealt.append(tuple(got))
    if any(s > 1 for _, s in atoms):
        return None
    return list(reversed(dealt))


def reshaped_axes(axes_in: tuple[Axis, ...], src: tuple[int, ...], out: tuple[int, ...]
                  ) -> tuple[Axis, ...] | None:
    """Names of a reshape's output axes: merged axes concatenate their factors, split
    axes deal them out again; the last (feature) axis split into ``(..., head, dim)``
    gets ``H`` just before the head dimension, also inside a merge (fairseq's
    ``(seq, batch, head*dim) -> (seq, batch*head, dim)``)."""
    groups = pair_axes(src, out)
    if groups is None:
        return None
    axes: list[Axis] = [()] * len(out)
    for ia, jb in groups:
        factors = [f for i in ia for f in axes_in[i] if f[1] > 1]
        sizes = [out[j] for j in jb]
        if len(jb) == 1:
            axes[jb[0]] = tuple(factors)
            continue
        last = [s for s in sizes if s > 1][-1:]
        if ia[-1] == len(src) - 1 and factors and last and factors[-1][0] == "?" and \
                factors[-1][1] > last[0] and factors[-1][1] % last[0] == 0:
            size = factors.pop()[1]  # features: (head, dim)
            factors += [("H", size // last[0]), ("?", last[0])]
        dealt = _pack(factors, sizes)
        for k, j in enumerate(jb):
            axes[j] = dealt[k] if dealt is not None else \
                ((("?", out[j]),) if out[j] > 1 else ())
    return tuple(axes)
