"""What a strategy hands the session: one attention call it found, described by the
kernel's own inputs, and a way to run the call as the model made it.

Strategies only find calls (and check their layout); how a found call is recorded
(probabilities, query/key inputs for a store, value-weighted maps as well) is the
session's policy (:mod:`attnscope.capturing.policy`), the same for every strategy.
Weights a model already materialised (a softmax output, returned weights, PyG edge
probabilities) need no call object: the strategy passes them to ``session.record``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from attnscope.capturing.frames import Frame

SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
             "enable_gqa")


def bind_sdpa(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``scaled_dot_product_attention``'s arguments by name."""
    bound = dict(zip(SDPA_ARGS, args))
    bound.update(kwargs)
    return bound


@dataclass
class SdpaCall:
    """One ``scaled_dot_product_attention`` call in ``(batch, head, query, dim)`` layout
    (3-D and 2-D inputs count as one head / one sample).

    ``run`` makes the call exactly as the model did; ``source`` names the strategy
    that found it and ``hint`` its self/cross guess (``None``: from names and lengths).
    """

    owner: Frame
    bound: dict[str, Any]
    run: Callable[[], Any]
    source: str = "sdpa"
    hint: str | None = None

    @property
    def query(self) -> torch.Tensor:
        return self.bound["query"]

    @property
    def key(self) -> torch.Tensor:
        return self.bound["key"]

    @property
    def value(self) -> torch.Tensor | None:
        return self.bound.get("value")

    @property
    def mask(self) -> torch.Tensor | None:
        return self.bound.get("attn_mask")

    @property
    def causal(self) -> bool:
        return bool(self.bound.get("is_causal", False))

    @property
    def scale(self) -> float | None:
        return self.bound.get("scale")

    @property
    def dropout_p(self) -> float:
        return float(self.bound.get("dropout_p", 0.0) or 0.0)

    @property
    def batch(self) -> int:
        return int(self.query.shape[0]) if self.query.ndim >= 3 else 1

    @property
    def num_heads(self) -> int:
        return int(self.query.shape[-3]) if self.query.ndim >= 3 else 1

    @property
    def lengths(self) -> tuple[int, int]:
        return int(self.query.shape[-2]), int(self.key.shape[-2])


@dataclass
class MhaCall:
    """One ``F.multi_head_attention_forward`` call: ``call`` holds its arguments by name
    (defaults applied), ``func``/``args``/``kwargs`` the call as the model made it."""

    owner: Frame
    func: Callable[..., Any]
    args: tuple
    kwargs: dict[str, Any]
    call: dict[str, Any] = field(default_factory=dict)

    def run(self, **changes: Any) -> Any:
        """The model's call as it was, or with ``changes`` to its arguments."""
        if not changes:
            return self.func(*self.args, **self.kwargs)
        return self.func(**{**self.call, **changes})

    @property
    def hint(self) -> str:
        """``"self"`` when queries and keys are one tensor, else ``"cross"``."""
        query, key = self.call["query"], self.call["key"]
        same = query is key or (query.shape == key.shape
                                and query.data_ptr() == key.data_ptr())
        return "self" if same else "cross"

    @property
    def dropout_active(self) -> bool:
        return bool(self.call["training"]) and self.call["dropout_p"] > 0.0
