"""Capture in query/key form: when the store writer asks for it (``form="qk"``), the
sdpa strategy hands the kernel's inputs to the store instead of probabilities.

The model's own call runs unchanged (the fused kernel), and no ``query x key`` tensor
is built at capture unless the caller also keeps maps in memory (``keep=True``): then
the probabilities are computed from the kept inputs, the same way a read does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from attnscope.kernels import QkInputs, from_sdpa, qk_probabilities
from attnscope.maps import AttentionMap
from attnscope.options import FORMS, check_form  # noqa: F401  (capture checks form= here)

SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
             "enable_gqa")


def session_form(session: Any) -> str:
    """The form the session's store writer asked for (``"probs"`` without a store),
    also when the writer sits behind a sink wrapper (``capture(stats=True)``)."""
    sink = session.sink
    while sink is not None and not hasattr(sink, "form"):
        sink = getattr(sink, "inner", None)
    return getattr(sink, "form", "probs") if sink is not None else "probs"


def record_sdpa(session: Any, owner: Any, bound: dict[str, Any], samples: list[int] | None,
                heads: list[int] | None, *, kind: str | None = None,
                source: str = "sdpa") -> AttentionMap | None:
    """Record one sdpa call as :class:`QkInputs` (attached to the map as ``qk``)."""
    if owner.name in session.claimed:  # a declared strategy owns this module's maps
        return None
    sel = session.selection
    with torch.no_grad():
        inputs = from_sdpa(bound["query"], bound["key"], bound.get("attn_mask"),
                           bool(bound.get("is_causal", False)), bound.get("scale"),
                           samples=samples, heads=heads, half=session_form(session) == "qk16",
                           reduced=sel.reduce)
    kind = session.dense_kind(owner, kind, lengths=(bound["query"].shape[-2],
                                                    bound["key"].shape[-2]))
    # maps kept in memory, or a sink wrapper that summarises them (stats), need real
    # probabilities; only a writer alone takes a map that carries just its inputs
    if session.keep or not hasattr(session.sink, "form"):
        probs = qk_probabilities(QkInputs(**{**inputs.__dict__, "reduced": None}))
        m = session.record(owner, probs, kind=kind, source=source, selected=True,
                           heads=heads, samples=samples, owned=True)
        if m is not None:
            m.qk = inputs
        return m
    # store only: the map carries its shape (a meta tensor, no data) and the inputs
    weights = torch.empty(inputs.shape, dtype=torch.float32, device="meta")
    m = AttentionMap(module=owner.name, kind=kind, weights=weights,
                     forward_index=max(session.forward_index, 0), call_index=owner.call_index,
                     source=source, heads=heads, samples=samples, reduced=sel.reduce)
    m.qk = inputs
    session.recording.num_recorded += 1
    session._unsent.append(m)  # sent with the model call's batch, like session.record
    return m


def record_mha(session: Any, owner: Any, func: Any, args: tuple, kwargs: dict,
               call: dict[str, Any], hint: str) -> Any:
    """``F.multi_head_attention_forward`` in query/key form: it hands projected queries
    and keys and its merged mask to ``scaled_dot_product_attention`` when no weights are
    asked for; that call is watched (the module global, restored in ``finally``). A
    caller that asked for weights gets its own call back, and a second, gradient-free
    call without weights supplies the queries and keys."""
    seen: list[dict[str, Any]] = []
    original = F.scaled_dot_product_attention

    def watch(*a: Any, **kw: Any) -> Any:
        bound = dict(zip(SDPA_ARGS, a))
        bound.update(kw)
        seen.append(bound)
        return original(*a, **kw)

    F.scaled_dot_product_attention = watch
    try:
        result = func(*args, **kwargs)
        if not seen:  # the caller asked for weights: that path never calls sdpa
            with torch.no_grad():
                func(**{**call, "need_weights": False, "training": False,
                        "dropout_p": 0.0})
    finally:
        F.scaled_dot_product_attention = original
    if len(seen) != 1:
        raise RuntimeError(f"{owner.name!r}: expected one sdpa call inside "
                           f"multi_head_attention_forward, saw {len(seen)}")
    bound = seen[0]
    query = bound["query"]
    samples = session.sample_rows(query.shape[0])
    if samples != []:
        heads = session.selection.head_index(query.shape[1], owner.name)
        record_sdpa(session, owner, bound, samples, heads, kind=hint, source="mha")
    return result
