"""Capture in query/key form: when the store writer asks for it (``form="qk"``), the
sdpa strategy hands the kernel's inputs to the store instead of probabilities.

The model's own call runs unchanged (the fused kernel), and no ``query x key`` tensor
is built at capture unless the caller also keeps maps in memory (``keep=True``): then
the probabilities are computed from the kept inputs, the same way a read does.
"""

from __future__ import annotations

from typing import Any

import torch

from attnscope.capture.qk_inputs import QkInputs, from_sdpa, qk_probabilities
from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap

FORMS = ("probs", "qk", "qk16")


def check_form(form: str | None) -> str:
    """``None`` -> ``"probs"``; anything not in :data:`FORMS` is a one-line error."""
    if form is None:
        return "probs"
    if form not in FORMS:
        raise SelectionError(f"form={form!r}; use 'probs' (probabilities), 'qk' (queries and "
                             "keys, exact) or 'qk16' (queries and keys as float16)")
    return form


def session_form(session: Any) -> str:
    """The form the session's store writer asked for (``"probs"`` without a store)."""
    return getattr(session.sink, "form", "probs") if session.sink is not None else "probs"


def record_sdpa(session: Any, owner: Any, bound: dict[str, Any], samples: list[int] | None,
                heads: list[int] | None) -> AttentionMap | None:
    """Record one sdpa call as :class:`QkInputs` (attached to the map as ``qk``)."""
    if owner.name in session.claimed:  # a declared strategy owns this module's maps
        return None
    sel = session.selection
    with torch.no_grad():
        inputs = from_sdpa(bound["query"], bound["key"], bound.get("attn_mask"),
                           bool(bound.get("is_causal", False)), bound.get("scale"),
                           samples=samples, heads=heads, half=session_form(session) == "qk16",
                           reduced=sel.reduce)
    kind = session.dense_kind(owner)
    if session.keep:  # maps in memory too: they need real probabilities
        probs = qk_probabilities(QkInputs(**{**inputs.__dict__, "reduced": None}))
        m = session.record(owner, probs, kind=kind, source="sdpa", selected=True,
                           heads=heads, samples=samples, owned=True)
        if m is not None:
            m.qk = inputs
        return m
    # store only: the map carries its shape (a meta tensor, no data) and the inputs
    weights = torch.empty(inputs.shape, dtype=torch.float32, device="meta")
    m = AttentionMap(module=owner.name, kind=kind, weights=weights,
                     forward_index=max(session.forward_index, 0), call_index=owner.call_index,
                     source="sdpa", heads=heads, samples=samples, reduced=sel.reduce)
    m.qk = inputs
    session.recording.num_recorded += 1
    session._unsent.append(m)  # sent with the model call's batch, like session.record
    return m
