"""What part of each attention map is kept, so memory stays bounded on long sequences.

Selection is applied as early as the strategy allows: the sdpa strategy computes only the
selected samples and heads, the others slice what the model already computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attnscope.errors import SelectionError
from attnscope.options import resolve_dtype


def _as_tuple(value: int | Sequence[int] | None, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, int) else tuple(value)
    if not items or any(not isinstance(i, int) or i < 0 for i in items):
        raise SelectionError(f"{what} must be non-negative integers, got {value!r}")
    return items


@dataclass(frozen=True)
class Selection:
    """Heads and batch samples to keep, an optional head mean, and the stored dtype.

    ``samples`` index the batch of each call (a partial last batch keeps what it has);
    ``heads`` index the heads of each map; ``reduce="mean"`` averages the kept heads.
    """

    heads: tuple[int, ...] | None = None
    samples: tuple[int, ...] | None = None
    reduce: str | None = None
    dtype: torch.dtype | None = None

    @classmethod
    def build(cls, heads=None, samples=None, reduce=None, dtype=None) -> Selection:
        if reduce not in (None, "mean"):
            raise SelectionError(f"reduce must be None or 'mean', got {reduce!r}")
        return cls(_as_tuple(heads, "heads"), _as_tuple(samples, "samples"), reduce,
                   resolve_dtype(dtype))

    @property
    def is_full(self) -> bool:
        return self.heads is None and self.samples is None and self.reduce is None

    def sample_index(self, batch: int) -> list[int] | None:
        """Kept batch rows of a call with ``batch`` samples (``None``: all of them)."""
        if self.samples is None:
            return None
        return [s for s in self.samples if s < batch]

    def head_index(self, num_heads: int, module: str) -> list[int] | None:
        if self.heads is None:
            return None
        bad = [h for h in self.heads if h >= num_heads]
        if bad:
            raise SelectionError(
                f"heads {bad} do not exist in {module!r}, which has {num_heads} heads "
                f"(0..{num_heads - 1})"
            )
        return list(self.heads)

    def finish(self, weights: torch.Tensor, head_axis: int) -> torch.Tensor:
        """Head mean and dtype cast, done in torch (much faster than in NumPy)."""
        if self.reduce == "mean":
            weights = weights.mean(dim=head_axis, keepdim=True)
        if self.dtype is not None and weights.dtype != self.dtype:
            weights = weights.to(self.dtype)
        return weights


def to_dense_layout(probs: torch.Tensor, key_dim: int) -> torch.Tensor:
    """View any softmax output as ``(batch, head, query, key)``.

    The softmax axis becomes the key axis. 1-D attention gets single head and query
    axes; with more than four axes, the extra leading ones are folded into the batch
    (e.g. ``(batch, channel, head, query, key)`` -> ``(batch*channel, head, ...)``).
    """
    t = probs.movedim(key_dim, -1)
    if t.ndim == 1:
        return t.reshape(1, 1, 1, -1)
    if t.ndim == 2:
        return t[:, None, None, :]
    if t.ndim == 3:
        return t[:, None]
    if t.ndim > 4:
        return t.flatten(0, t.ndim - 4)
    return t


def to_graph_layout(probs: torch.Tensor, edge_dim: int, batch: int | None = None
                    ) -> tuple[torch.Tensor, tuple[str, ...]]:
    """View an edge softmax output as ``(batch, ..., edge, head)`` and name its leading
    axes. The last axis after the edge axis is the head axis (a missing one becomes a
    single head); axes between the edge and head axes (tsl/SPIN's node axis of a
    temporal graph, ``(batch, edge, node, head)``) stay leading axes of their own, never
    folded into heads. The first axis is ``"batch"`` when it has the model call's batch
    size; a map without one gets a batch axis of 1. Other axes are named ``dim<i>`` after
    their position in the model's tensor (:mod:`attnscope.graph` resolves them to
    ``node``/``time``/... from a store's labels).
    """
    edge_dim = edge_dim % probs.ndim
    names = [f"dim{i}" for i in range(probs.ndim)]
    t = probs if edge_dim < probs.ndim - 1 else probs.unsqueeze(-1)  # (..., edge, head)
    if t.ndim == 2:
        return t, ()
    t = t.movedim(edge_dim, -2)
    names = [n for i, n in enumerate(names) if i != edge_dim][: t.ndim - 2]
    if edge_dim > 0 and (batch is None or t.shape[0] == batch):
        names[0] = "batch"
    else:  # no batch axis: every call is one sample
        t, names = t.unsqueeze(0), ["batch", *names]
    return t, tuple(names)
