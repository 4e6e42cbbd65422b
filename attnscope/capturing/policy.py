"""How the session records a call a strategy found: one policy for every strategy.

* ``form="probs"`` (the default): the probabilities, for the selected samples and heads
  only; an sdpa call's output is taken from the same probabilities when every one of
  them is computed anyway and no gradient or dropout is involved (one pass, not two).
* ``form="qk"``/``"qk16"`` (a store in query/key form): the kernel's inputs
  (:mod:`attnscope.capturing._qk`); no ``query x key`` tensor unless maps are also kept.
* ``value_weighted=True``: ``alpha_ij * ||f(x_j)||`` beside the probabilities
  (:mod:`attnscope.capturing.value`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from attnscope._memory import check_map
from attnscope.capturing import _qk
from attnscope.capturing.calls import MhaCall, SdpaCall
from attnscope.capturing.value import mha_value_norms, sdpa_value_norms, weighted
from attnscope.kernels import sdpa_probabilities

if TYPE_CHECKING:
    from attnscope.capturing.session import CaptureSession


def record_sdpa(session: CaptureSession, call: SdpaCall) -> Any:
    """Run ``call`` (or compute its output) and record it; returns what the model gets."""
    owner, sel = call.owner, session.selection
    samples = session.sample_rows(call.batch)
    if samples == []:
        return call.run()
    heads = sel.head_index(call.num_heads, owner.name)
    if session.form != "probs":
        result = call.run()
        _qk.record_qk(session, owner, call.bound, samples, heads, kind=call.hint,
                      source=call.source)
        return result
    query, key, value = call.query, call.key, call.value
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (query, key, value))
    reuse = (samples is None and heads is None and not needs_grad and value is not None
             and call.dropout_p == 0.0 and query.device.type == "cpu")
    with torch.no_grad():
        probs, out = sdpa_probabilities(
            query, key, call.mask, call.causal, call.scale,
            value=value if reuse else None, samples=samples, heads=heads,
            out_dtype=sel.dtype if sel.reduce is None else None, module=owner.name,
            mark=True,
        )
    result = out.reshape(*query.shape[:-1], value.shape[-1]) if reuse else call.run()
    m = session.record(owner, probs, kind=session.dense_kind(owner, call.hint,
                                                             lengths=call.lengths),
                       source=call.source, selected=True, heads=heads, samples=samples,
                       owned=True, masked=False)  # the kernel marked its blocks
    if m is not None and session.value_weighted and value is not None:
        norms = sdpa_value_norms(value, call.num_heads, samples, heads)
        m.value_weighted = sel.finish(weighted(probs, norms), 1)
    return result


def record_mha(session: CaptureSession, call: MhaCall) -> Any:
    """``F.multi_head_attention_forward`` with per-head weights; the caller gets what it
    asked for. With dropout active, the caller's call runs untouched and a second,
    dropout-free call gives the pre-dropout probabilities."""
    owner, args = call.owner, call.call
    asked_weights, asked_mean = args["need_weights"], args["average_attn_weights"]
    if session.form != "probs" and not (asked_weights and call.dropout_active):
        return _qk.record_mha(session, call)
    query, key = args["query"], args["key"]
    batch = query.shape[1] if query.ndim == 3 else 1  # (query, batch, embed)
    check_map(owner.name, (batch, args["num_heads"], query.shape[0], key.shape[0]),
              query.element_size())
    weights_asked = {"need_weights": True, "average_attn_weights": False}
    if call.dropout_active:
        result = call.run()
        with torch.no_grad():
            _, probs = call.run(**weights_asked, training=False, dropout_p=0.0)
    else:
        output, probs = call.run(**weights_asked)
        result = (output, None) if not asked_weights else (
            output, probs.mean(dim=-3) if asked_mean else probs)
    if probs.ndim == 3:  # unbatched: (head, query, key)
        probs = probs.unsqueeze(0)
    m = session.record(owner, probs, kind=session.dense_kind(owner, call.hint), source="mha")
    if m is not None and session.value_weighted:
        with torch.no_grad():  # alpha * ||(x W_V + b_V) W_O^h||
            vw, _, _ = session.select(weighted(probs, mha_value_norms(args)), owner.name,
                                      False)
        m.value_weighted = session.selection.finish(vw, 1)
    return result
