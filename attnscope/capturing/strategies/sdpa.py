"""``F.scaled_dot_product_attention``, however the caller imported it.

The fused kernel never materialises the probabilities, so they are recomputed from the
same q, k, mask, causal flag, scale and grouped-query layout, one block of queries at a
time: the full score tensor is never held twice. When the probabilities of every head
and sample are computed anyway and no gradient or dropout is involved, the output is
taken as ``probs @ v`` from the same block instead of running the kernel a second time.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from attnscope.capturing import aliases, provenance
from attnscope.capturing.calls import SdpaCall, bind_sdpa
from attnscope.capturing.layout import packed_group, unpack_gqa
from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.session import CaptureSession
from attnscope.kernels import sdpa_probabilities

_SITES = aliases.sites("scaled_dot_product_attention", F, torch._C._nn)
# layouts that passed the check unchanged and without a note, per module, by map shape
# and call shape (batch, declared heads, tokens, cache): the check is a function of
# these alone when the query rows are the call's tokens, a model repeats them every
# call, and the check costs more than the rest of a call's bookkeeping
_AS_IS: weakref.WeakKeyDictionary[nn.Module, set[tuple]] = weakref.WeakKeyDictionary()


@register_strategy
class SdpaStrategy(Strategy):
    """Finds sdpa calls and checks their layout; the session records them (probabilities,
    query/key inputs or value-weighted: :mod:`attnscope.capturing.policy`)."""

    name = "sdpa"
    description = "F.scaled_dot_product_attention calls (HF sdpa models, custom code)"

    def handlers(self, session: CaptureSession):
        def fits_as_is(owner, shape: tuple, evidence: dict) -> bool | None:
            """``True``: record as is; ``False``: the check changes the layout;
            ``None``: refused (noted)."""
            call = session.call_shape(owner)
            key = (shape, call) if call.tokens == shape[-2] and not evidence else None
            as_is = _AS_IS.setdefault(owner.module, set())
            if key is not None and key in as_is:
                return True
            notes: list[str] = []  # what the check says, also when rec.notes has it
            fitted = session.fit(owner, torch.empty(shape, device="meta"),
                                 "sdpa probabilities", evidence=evidence, say=notes.append)
            for text in notes:
                session.note(text)
            if fitted is None:
                return None
            plain = tuple(fitted.shape) == shape
            if plain and key is not None and not notes:
                as_is.add(key)
            return plain

        def handle(func, args, kwargs):
            owner = session.owner()
            if owner is None or not session.wants(owner, True):
                return func(*args, **kwargs)
            bound = bind_sdpa(args, kwargs)
            query, key = bound["query"], bound["key"]
            num_heads = query.shape[-3] if query.ndim >= 3 else 1
            kv_heads = key.shape[-3] if key.ndim >= 3 else 1
            # one key head broadcasts over the query heads (multi-query attention)
            invalid = (kv_heads not in (num_heads, 1) and not bound.get("enable_gqa", False)) or (
                bound.get("is_causal", False) and bound.get("attn_mask") is not None)
            if invalid:
                return func(*args, **kwargs)  # let torch raise its own error
            mask, causal = bound.get("attn_mask"), bool(bound.get("is_causal", False))
            shape = (*query.shape[:-1], key.shape[-2])
            group = None if causal or session.form == "probs" else \
                packed_group(session.call_shape(owner), query, key)
            if group is not None:  # q/k form: packed grouped-query heads unpacked
                return session.record_call(SdpaCall(owner, unpack_gqa(bound, group),
                                                    lambda: func(*args, **kwargs)))
            plain = query.ndim == 4
            tracker = provenance.of(session)
            # how q was laid out; a 4-D query can only gain picked query rows from it
            evidence = tracker.evidence(query) if not plain or tracker.rows_made else {}
            if plain:  # the layout check on shapes alone: nothing is computed
                plain = fits_as_is(owner, shape, evidence)
                if plain is None:
                    return func(*args, **kwargs)
            if not plain:
                # heads folded into the batch or packed into the query axis: compute all
                # of it, then let the layout check unfold or refuse it
                with torch.no_grad():
                    probs, _ = sdpa_probabilities(query, key, mask, causal, bound.get("scale"))
                result = func(*args, **kwargs)
                dense = session.fit(owner, probs.flatten(0, 1) if query.ndim == 3
                                    else probs, "sdpa probabilities", evidence=evidence)
                if dense is not None:
                    m = session.record(owner, dense, kind=session.dense_kind(
                        owner, lengths=tuple(dense.shape[-2:])), source="sdpa", owned=True)
                    if m is not None:  # why a q/k store keeps it as probabilities
                        m.qk_note = ("the layout check rebuilt this map (heads packed into "
                                     "the query axis or folded into the batch)")
                return result
            return session.record_call(SdpaCall(owner, bound, lambda: func(*args, **kwargs)))

        return aliases.table(_SITES, handle)  # (another tool's wrapper too)
