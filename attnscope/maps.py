"""The two objects a capture hands back: one `AttentionMap` per attention call, and the
`Recording` that collects them in call order.

Shapes use the fixed dimension names of the project:

* dense maps: ``weights`` is ``(batch, head, query, key)``; the key axis is the softmax
  axis, so every row sums to 1 (rows whose keys were all masked are zeros);
* graph maps: ``weights`` is ``(edge, head)`` or ``(..., edge, head)``, with ``edge_index``
  the ``(2, edge)`` connectivity the layer actually used (self loops included).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from attnscope.entries import entry_name
from attnscope.options import KINDS  # noqa: F401  (the kinds a map may have)


@dataclass(eq=False)
class AttentionMap:
    """Attention probabilities of one call of one module.

    Attributes:
        module: qualified name of the module that computed it (``""`` is the root).
        kind: ``"self"``, ``"cross"`` or ``"graph"``.
        weights: CPU tensor, ``(batch, head, query, key)`` or ``(..., edge, head)``.
        edge_index: ``(2, edge)`` LongTensor for graph maps, else ``None``.
        forward_index: which call of the captured model (0, 1, ...) produced it.
        call_index: which call of ``module`` inside that model call (modules run in a
            loop, e.g. once per epoch or channel, give 0, 1, ...).
        source: the strategy that found it (``"sdpa"``, ``"mha"``, ``"softmax"`` ...).
        heads: original head indices kept by the selection (``None``: all, in order).
        samples: original batch indices kept by the selection (``None``: all).
        reduced: ``"mean"`` when heads were averaged into one.
        effective: for dense maps whose probabilities are changed after the softmax and
            before they multiply the values (e.g. a relative position bias added after
            the softmax), the matrix that really multiplies V, same shape as ``weights``.
        qk: with a store in query/key form, the kernel inputs the probabilities are
            computed from (:class:`attnscope.kernels.QkInputs`); ``weights``
            is then a data-less ``meta`` tensor unless maps are also kept in memory.
        value_weighted: ``alpha_ij * ||f(x_j)||`` (Kobayashi et al. 2020), same shape as
            ``weights``, when captured with ``value_weighted=True`` (sdpa and MHA calls).
        effective_bias: with a store in query/key form, ``effective - weights`` when it is
            a relative bias (one value per query-key offset and head, the same for every
            sample): ``(head, 2 * key - 1)``, so ``@effective`` is stored as q/k too.
        axes: graph maps: names of the leading dims before ``(edge, head)``, e.g.
            ``("batch", "dim2")`` for tsl/SPIN temporal attention over
            ``(batch, time-edge, node, head)``; ``None``: ``batch`` then ``dim<i>``.
    """

    module: str
    kind: str
    weights: torch.Tensor
    edge_index: torch.Tensor | None = None
    forward_index: int = 0
    call_index: int = 0
    source: str = ""
    heads: list[int] | None = None
    samples: list[int] | None = None
    reduced: str | None = None
    effective: torch.Tensor | None = field(default=None, repr=False)
    qk: Any = field(default=None, repr=False)
    value_weighted: torch.Tensor | None = field(default=None, repr=False)
    axes: tuple[str, ...] | None = None
    effective_bias: torch.Tensor | None = field(default=None, repr=False)

    @property
    def entry(self) -> str:
        """Its name in a store and in listings: ``module``, ``module[call_index]``
        (see :mod:`attnscope.entries`)."""
        return entry_name(self.module, self.call_index)

    @property
    def is_graph(self) -> bool:
        return self.edge_index is not None

    @property
    def dims(self) -> tuple[str, ...]:
        """Name of every dim of ``weights``: ``("batch", "head", "query", "key")`` for
        dense maps, e.g. ``("batch", "dim2", "edge", "head")`` for graph maps."""
        if not self.is_graph:
            return ("batch", "head", "query", "key")
        lead = self.weights.ndim - 2
        names = tuple(self.axes or ())[:lead]
        if len(names) < lead:  # maps built by hand: batch first, then positions
            names = (*names, *(("batch" if i == 0 else f"dim{i}") for i in
                               range(len(names), lead)))
        return (*names, "edge", "head")

    @property
    def num_heads(self) -> int:
        return int(self.weights.shape[-1] if self.is_graph else self.weights.shape[1])

    def to_dense(self, num_nodes: int | None = None) -> torch.Tensor:
        """Dense ``(..., head, query, key)`` matrix of a graph map.

        The destination node is the query and the source node the key, so row ``i``
        holds the weights node ``i`` gave to its neighbours; missing edges are 0.
        """
        if self.edge_index is None:
            return self.weights
        src, dst = self.edge_index
        n = int(num_nodes if num_nodes is not None else int(self.edge_index.max()) + 1)
        w = self.weights  # (..., edge, head)
        lead = w.shape[:-2]
        dense = torch.zeros(*lead, w.shape[-1], n * n, dtype=w.dtype)
        flat = (dst * n + src).expand(*lead, w.shape[-1], -1)
        dense.scatter_add_(-1, flat, w.transpose(-1, -2))
        return dense.reshape(*lead, w.shape[-1], n, n)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.weights.shape)
        return (
            f"AttentionMap(module={self.module!r}, kind={self.kind!r}, weights=[{shape}], "
            f"source={self.source!r}, forward={self.forward_index}, call={self.call_index})"
        )


class Recording:
    """What ``attnscope.capture`` collected, in call order.

    Example:
        >>> with attnscope.capture(model) as rec:
        ...     model(x)
        >>> rec.modules                 # names, in first-call order
        >>> rec["encoder.layers.0.self_attn"]   # its maps, one per call
        >>> rec.notes                   # what was skipped or unfolded, and why
    """

    def __init__(self) -> None:
        self.maps: list[AttentionMap] = []
        self.num_recorded = 0
        # why attention-like calls were not recorded (or were reshaped), one line each
        self.notes: list[str] = []
        self.stats: Any = None  # per-head summary, with capture(..., stats=True)

    def note(self, text: str) -> None:
        """Add a note once (the same call repeats every batch)."""
        if text not in self.notes:
            self.notes.append(text)

    @property
    def modules(self) -> list[str]:
        return list(dict.fromkeys(m.module for m in self.maps))

    def __getitem__(self, module: str) -> list[AttentionMap]:
        found = [m for m in self.maps if m.module == module]
        if not found:
            raise KeyError(f"no maps from module {module!r}; captured: {self.modules}")
        return found

    def stacked(self, module: str) -> torch.Tensor:
        """All calls of one dense module concatenated along the batch axis."""
        found = self[module]
        if found[0].is_graph:
            raise ValueError(f"{module!r} holds graph maps; read them one by one")
        shapes = {tuple(m.weights.shape[1:]) for m in found}
        if len(shapes) > 1:
            raise ValueError(
                f"{module!r} maps have different (head, query, key) shapes {sorted(shapes)}; "
                "read them one by one"
            )
        return torch.cat([m.weights for m in found], dim=0)

    def __iter__(self) -> Iterator[AttentionMap]:
        return iter(self.maps)

    def __len__(self) -> int:
        return len(self.maps)

    def __repr__(self) -> str:
        return f"Recording({len(self.maps)} maps from {len(self.modules)} modules)"


def is_one_d(shape: tuple[int, ...] | torch.Size) -> bool:
    """Whether a dense map of ``shape`` (``(..., head, query, key)``) is 1-D attention:
    one weight per key in a single query row (an LSTM's attention over time steps).
    Each head of a one-query map is then drawn as bars; with one head too it is stored
    and exported as ``(sample, key)``."""
    return len(shape) >= 3 and shape[-2] == 1
