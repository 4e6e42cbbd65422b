"""Capture in query/key form: when the store writer asks for it (``form="qk"``), the
session's policy (:mod:`attnscope.capturing.policy`) hands sdpa and MHA calls here,
and the kernel's inputs go to the store instead of probabilities.

The model's own call runs unchanged (the fused kernel), and no ``query x key`` tensor
is built at capture unless the caller also keeps maps in memory (``keep=True``): then
the probabilities are computed from the kept inputs, the same way a read does.
"""

from __future__ import annotations

from typing import Any

import torch

from attnscope.capturing.mode import KernelWatch
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


def record_qk(session: Any, owner: Any, bound: dict[str, Any], samples: list[int] | None,
              heads: list[int] | None, *, kind: str | None = None,
              source: str = "sdpa") -> AttentionMap | None:
    """Record one sdpa call as :class:`QkInputs` (attached to the map as ``qk``)."""
    if owner.name in session.claimed:  # a declared strategy owns this module's maps
        return None
    sel = session.selection
    with torch.no_grad():
        inputs = from_sdpa(bound["query"], bound["key"], bound.get("attn_mask"),
                           bool(bound.get("is_causal", False)), bound.get("scale"),
                           samples=samples, heads=heads, half=session.form == "qk16",
                           reduced=sel.reduce, masks=session.qk_masks,
                           token=session.forward_index)
    kind = session.dense_kind(owner, kind, lengths=(bound["query"].shape[-2],
                                                    bound["key"].shape[-2]))
    # maps kept in memory, or a sink wrapper that summarises them (stats), need real
    # probabilities; only a writer alone takes a map that carries just its inputs
    if session.keep or not hasattr(session.sink, "form"):
        probs = qk_probabilities(QkInputs(**{**inputs.__dict__, "reduced": None}))
        m = session.record(owner, probs, kind=kind, source=source, selected=True,
                           heads=heads, samples=samples, owned=True,
                           masked=False)  # qk_probabilities marks masked keys
        if m is not None:
            m.qk = inputs
        return m
    # store only: the map carries its shape (a meta tensor, no data) and the inputs
    weights = torch.empty(inputs.shape, dtype=torch.float32, device="meta")
    m = AttentionMap(module=owner.name, kind=kind, weights=weights,
                     forward_index=max(session.forward_index, 0), call_index=owner.call_index,
                     source=source, heads=heads, samples=samples, reduced=sel.reduce)
    m.qk = inputs
    session.emit(m)  # sent with the model call's batch, like every recorded map
    return m


def record_mha(session: Any, call: Any) -> Any:
    """``F.multi_head_attention_forward`` (an :class:`~attnscope.capturing.calls.MhaCall`)
    in query/key form: without weights asked for, it hands projected queries and keys
    and its merged mask to the sdpa kernel; that kernel call is seen by a
    :class:`~attnscope.capturing.mode.KernelWatch` entered on this thread for the length
    of the call (thread-local, nothing of torch swapped). A caller that asked for
    weights gets its own call back, and a second, gradient-free call without weights
    supplies the queries and keys. Should no kernel show (a torch that decomposes
    sdpa), the map is kept as probabilities, with a note in the store."""
    watch = KernelWatch()
    with watch:
        result = call.run()
        if not watch.seen:  # the caller asked for weights: that path calls no kernel
            with torch.no_grad():
                call.run(need_weights=False, training=False, dropout_p=0.0)
    owner = call.owner
    if len(watch.seen) != 1:
        _record_mha_probabilities(session, call, len(watch.seen))
        return result
    bound = watch.seen[0]
    query = bound["query"]
    samples = session.sample_rows(query.shape[0])
    if samples != []:
        heads = session.selection.head_index(query.shape[1], owner.name)
        record_qk(session, owner, bound, samples, heads, kind=call.hint, source="mha")
    return result


def _record_mha_probabilities(session: Any, call: Any, kernels: int) -> None:
    with torch.no_grad():
        _, probs = call.run(need_weights=True, average_attn_weights=False, training=False,
                            dropout_p=0.0)
    probs = probs if probs.ndim == 4 else probs.unsqueeze(0)
    m = session.record(call.owner, probs, kind=session.dense_kind(call.owner, call.hint),
                       source="mha")
    if m is not None:
        m.qk_note = (f"{kernels} sdpa kernel calls seen inside multi_head_attention_forward "
                     "(one expected)")
