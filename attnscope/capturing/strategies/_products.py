"""What tells a softmax apart as attention: the products around it (which operands,
which axes they sum over) and its layout; :class:`Pending`, a softmax output waiting
for that evidence. Helpers of the softmax strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from attnscope.capturing.frames import Frame
from attnscope.maps import AttentionMap


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


@dataclass
class Pending:
    """A candidate softmax output and the tensors that are it, only dropped out or cast."""

    probs: torch.Tensor
    key_dim: int
    owner: Frame  # the module call that made it
    recorded: bool = False
    record: AttentionMap | None = None  # the map, while an effective matrix can line up
    same: list[torch.Tensor] = field(default_factory=list)
    moved: bool = False  # handed to the caller's frame once
    done: bool = False  # recorded or refused by the layout check: nothing left to decide
    skipped: bool = False  # its module is not named like attention: evidence is noted only
    evidence: dict = field(default_factory=dict)  # how the scores were built (provenance)
    scores: torch.Tensor | None = None  # its input, kept only for a query/key store

    def is_same(self, t: object) -> bool:
        return any(t is s for s in self.same)

    def shares(self, t: object) -> bool:
        if not isinstance(t, torch.Tensor):
            return False
        ptr = t.untyped_storage().data_ptr()
        return any(s.untyped_storage().data_ptr() == ptr for s in self.same)


def note_skipped(session: Any, pending: Pending, evidence: str) -> None:
    """A softmax that looks like attention in a module not named like attention:
    not recorded (the default covers attention-named modules only), but never
    dropped without a word."""
    pending.done = True
    owner = pending.owner
    name = owner.name or type(owner.module).__name__
    session.note(
        f"{name} ({type(owner.module).__name__}): softmax {evidence} not recorded: "
        f"the module's name does not say attention; if it is attention, pass "
        f"include=[{name!r}]")
