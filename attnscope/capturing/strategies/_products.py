"""What tells a softmax apart as attention: the products around it (which operands,
which axes they sum over) and its layout. Helpers of the softmax strategy."""

from __future__ import annotations

import torch
from torch import nn


def softmax_dim(args: tuple, kwargs: dict, ndim: int) -> int:
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:  # F.softmax's legacy implicit choice
        dim = 0 if ndim in (0, 1, 3) else 1
    return dim % max(ndim, 1)


def is_weight(t: object) -> bool:
    return isinstance(t, nn.Parameter) or isinstance(getattr(t, "_base", None), nn.Parameter)


def operands(func, args: tuple, kwargs: dict) -> tuple[str | None, tuple]:
    name = getattr(func, "__name__", "")  # by name: func may be another tool's wrapper
    if name == "einsum":
        ops = args[1:]
        if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
            ops = tuple(ops[0])
        return str(args[0]).replace(" ", ""), ops
    if name == "baddbmm":  # bias + batch1 @ batch2
        named = dict(zip(("input", "batch1", "batch2"), args))
        named.update({k: v for k, v in kwargs.items() if k in ("batch1", "batch2")})
        return None, (named.get("batch1"), named.get("batch2"))
    return None, args[:2]


def contracts_last(equation: str | None, index: int, ndim: int) -> bool:
    """Whether operand ``index`` is multiplied over its last axis (summed away)."""
    if equation is None:
        return index == 0
    inputs, _, output = equation.partition("->")
    terms = inputs.split(",")
    if index >= len(terms) or "." in terms[index] or len(terms[index]) != ndim or not output:
        return False
    return terms[index][-1] not in output


def same_scores(product: torch.Size, scores: torch.Size) -> bool:
    """Scores are the product, maybe viewed with heads split from or folded into the
    batch: same elements, same (query, key) axes."""
    return product[-2:] == scores[-2:] and product.numel() == scores.numel()


def batch_rows(probs: torch.Tensor, key_dim: int) -> int:
    """Rows of a softmax output that has no query axis: its leading (batch) axis."""
    others = [s for i, s in enumerate(probs.shape) if i != key_dim and s != 1]
    if not others:
        return 1
    return others[0] if len(others) == 1 else -1
