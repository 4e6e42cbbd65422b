"""``F.scaled_dot_product_attention``, however the caller imported it.

The fused kernel never materialises the probabilities, so they are recomputed from the
same q, k, mask, causal flag, scale and grouped-query layout, one block of queries at a
time: the full score tensor is never held twice. When the probabilities of every head
and sample are computed anyway and no gradient or dropout is involved, the output is
taken as ``probs @ v`` from the same block instead of running the kernel a second time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnscope._memory import check_map
from attnscope.capturing import aliases, provenance
from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.session import CaptureSession

# scores of at most this many elements are alive at once (float32: 16 MB). Measured on
# [8,12,512,512]: 32M-element blocks 56 ms (float32 out) / 70 ms (float16 out); 4M: 56 / 37
# ms; smaller blocks lose to per-block overhead.
BLOCK_ELEMENTS = 4 * 1024 * 1024
_SITES = aliases.sites("scaled_dot_product_attention", F, torch._C._nn)
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
              "enable_gqa")


def _to_4d(t: torch.Tensor) -> torch.Tensor:
    """``(..., head, seq, dim)`` as ``(batch, head, seq, dim)``; 3-D is one head."""
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3:
        return t[:, None]
    if t.ndim > 4:
        return t.flatten(0, t.ndim - 4)
    return t


def _blocks(batch: int, heads: int, q_len: int, k_len: int, budget: int):
    """Slices ``(batch, head, query)`` whose ``(..., key)`` block is contiguous in a
    ``(batch, head, query, key)`` tensor and holds at most ``budget`` elements (or one
    query row): whole samples, else whole heads, else runs of query rows."""
    per_head = q_len * k_len
    if heads * per_head <= budget:
        step = max(1, budget // (heads * per_head))
        for b in range(0, batch, step):
            yield slice(b, b + step), slice(None), slice(None)
    elif per_head <= budget:
        step = budget // per_head
        for b in range(batch):
            for h in range(0, heads, step):
                yield slice(b, b + 1), slice(h, h + step), slice(None)
    else:
        step = max(1, budget // k_len)
        for b in range(batch):
            for h in range(heads):
                for r in range(0, q_len, step):
                    yield slice(b, b + 1), slice(h, h + 1), slice(r, r + step)


def _pick(t: torch.Tensor, axis: int, index: slice) -> torch.Tensor:
    """Slice a broadcastable axis (size 1 stays as it is)."""
    if t.shape[axis] == 1:
        return t
    return t[(slice(None),) * axis + (index,)]


def _softmax_(scores: torch.Tensor) -> None:
    """Softmax over the last axis, in place: no second score-sized buffer."""
    torch.ops.aten._softmax.out(scores, -1, False, out=scores)


def sdpa_probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    value: torch.Tensor | None = None,
    samples: list[int] | None = None,
    heads: list[int] | None = None,
    out_dtype: torch.dtype | None = None,
    block_elements: int = BLOCK_ELEMENTS,
    module: str = "",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax probabilities of an sdpa call, ``(batch, head, query, key)``.

    Grouped-query attention (fewer key heads than query heads) maps query head ``h`` to
    key head ``h // (Hq // Hk)``. With ``value``, also returns the attention output in
    the 4-D layout (only meaningful without a sample/head selection). Scores are
    written straight into the result and normalised in place, block by block.
    """
    q4, k4 = _to_4d(query), _to_4d(key)
    q_len, dim = q4.shape[-2:]
    k_len, num_heads, kv_heads = k4.shape[-2], q4.shape[1], k4.shape[1]
    group = num_heads // kv_heads
    mask4 = None
    if attn_mask is not None:
        mask4 = _to_4d(attn_mask.expand(*query.shape[:-2], q_len, k_len))
    v4 = None if value is None else _to_4d(value)
    if samples is not None:
        q4 = q4[samples]
        k4 = k4[samples] if k4.shape[0] > 1 else k4
        mask4 = mask4[samples] if mask4 is not None and mask4.shape[0] > 1 else mask4
    head_list = heads if heads is not None else list(range(num_heads))
    if heads is not None:
        q4 = q4[:, heads]
        mask4 = mask4[:, heads] if mask4 is not None and mask4.shape[1] > 1 else mask4
    if group > 1 or heads is not None:
        key_heads = [h // group for h in head_list]
        k4 = k4[:, key_heads] if k4.shape[1] > 1 else k4
        v4 = v4[:, key_heads] if v4 is not None and v4.shape[1] > 1 else v4

    # batched matmuls run faster on dense operands (HF hands over transposed views)
    k4 = k4.contiguous()
    v4 = None if v4 is None else v4.contiguous()
    compute = torch.promote_types(query.dtype, torch.float32)
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    n, h = q4.shape[0], q4.shape[1]
    store = out_dtype or compute
    check_map(module, (n, h, q_len, k_len), torch.empty((), dtype=store).element_size())
    # results are ordinary tensors even under inference_mode, so they outlive it
    with torch.inference_mode(False):
        probs = torch.empty(n, h, q_len, k_len, dtype=store, device=query.device)
        out = None if v4 is None else torch.empty(
            n, h, q_len, v4.shape[-1], dtype=value.dtype, device=query.device)
    future = None
    if is_causal:  # top-left aligned, like sdpa: query i sees keys 0..i
        future = torch.arange(k_len, device=query.device) > torch.arange(
            q_len, device=query.device).unsqueeze(1)
    dead_rows = None  # queries whose keys are all masked, found on the small mask
    if mask4 is not None:
        if mask4.dtype == torch.bool:
            mask4 = mask4.logical_not()  # once, not per block: True = masked out
            dead = mask4.all(dim=-1, keepdim=True)
        else:
            dead = (mask4 == float("-inf")).all(dim=-1, keepdim=True)
        dead_rows = dead if bool(dead.any()) else None
    for bs, hs, rs in _blocks(n, h, q_len, k_len, block_elements):
        view = probs[bs, hs, rs]
        scores = view if store == compute else torch.empty(view.shape, dtype=compute,
                                                            device=view.device)
        qb = q4[bs, hs, rs].to(compute) * scale
        kb = _pick(_pick(k4, 0, bs), 1, hs).to(compute)
        torch.matmul(qb, kb.transpose(-1, -2), out=scores)
        if future is not None:
            scores.masked_fill_(future[rs], float("-inf"))
        if mask4 is not None:
            block = _pick(_pick(mask4, 0, bs), 1, hs)[:, :, rs]
            if block.dtype == torch.bool:
                scores.masked_fill_(block, float("-inf"))
            else:
                scores.add_(block.to(compute))
        _softmax_(scores)
        if dead_rows is not None:  # a query with every key masked: zeros, like sdpa
            scores.masked_fill_(_pick(_pick(dead_rows, 0, bs), 1, hs)[:, :, rs], 0.0)
        if out is not None:
            vb = _pick(_pick(v4, 0, bs), 1, hs)
            torch.matmul(scores.to(vb.dtype), vb, out=out[bs, hs, rs])
        if scores is not view:
            view.copy_(scores)
    return probs, out


@register_strategy
class SdpaStrategy(Strategy):
    name = "sdpa"
    description = "F.scaled_dot_product_attention calls (HF sdpa models, custom code)"

    def handlers(self, session: CaptureSession):
        def handle(func, args, kwargs):
            owner = session.owner()
            if owner is None or not session.wants(owner, True):
                return func(*args, **kwargs)
            bound = dict(zip(_SDPA_ARGS, args))
            bound.update(kwargs)
            query, key, value = bound["query"], bound["key"], bound["value"]
            dropout_p = bound.get("dropout_p", 0.0)
            batch = query.shape[0] if query.ndim >= 3 else 1
            num_heads = query.shape[-3] if query.ndim >= 3 else 1
            kv_heads = key.shape[-3] if key.ndim >= 3 else 1
            # one key head broadcasts over the query heads (multi-query attention)
            invalid = (kv_heads not in (num_heads, 1) and not bound.get("enable_gqa", False)) or (
                bound.get("is_causal", False) and bound.get("attn_mask") is not None)
            if invalid:
                return func(*args, **kwargs)  # let torch raise its own error
            needs_grad = torch.is_grad_enabled() and any(
                t.requires_grad for t in (query, key, value)
            )
            mask, causal = bound.get("attn_mask"), bool(bound.get("is_causal", False))
            shape = (*query.shape[:-1], key.shape[-2])
            plain = query.ndim == 4
            evidence = provenance.of(session).evidence(query)  # how q was laid out
            if plain:  # the layout check on shapes alone: nothing is computed
                fitted = session.fit(owner, torch.empty(shape, device="meta"),
                                     "sdpa probabilities", evidence=evidence)
                if fitted is None:
                    return func(*args, **kwargs)
                plain = tuple(fitted.shape) == shape
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
                    from attnscope.capturing import _qk  # hook: issue 16

                    if m is not None and _qk.session_form(session) != "probs":
                        # a qk store keeps this map as probabilities, with this note
                        m.qk_note = ("the layout check rebuilt this map (heads packed into "
                                     "the query axis or folded into the batch)")
                return result
            sel = session.selection
            samples = session.sample_rows(batch)
            if samples == []:
                return func(*args, **kwargs)
            heads = sel.head_index(num_heads, owner.name)
            from attnscope.capturing import _qk  # hook: query/key store form (issue 16)

            if _qk.session_form(session) != "probs":
                result = func(*args, **kwargs)
                _qk.record_sdpa(session, owner, bound, samples, heads)
                return result
            # one pass gives both when every probability is computed anyway
            reuse = (samples is None and heads is None and not needs_grad
                     and dropout_p == 0.0 and query.device.type == "cpu")
            with torch.no_grad():
                probs, out = sdpa_probabilities(
                    query, key, mask, causal, bound.get("scale"),
                    value=value if reuse else None, samples=samples, heads=heads,
                    out_dtype=sel.dtype if sel.reduce is None else None, module=owner.name,
                )
            if reuse:
                result = out.reshape(*query.shape[:-1], value.shape[-1])
            else:
                result = func(*args, **kwargs)
            vw = None
            if getattr(session, "value_weighted", False):  # opt-in: alpha * ||v_j||
                from attnscope.capturing.value import sdpa_value_norms, weighted

                vw = weighted(probs, sdpa_value_norms(value, num_heads, samples, heads))
            m = session.record(owner, probs, kind=session.dense_kind(
                owner, lengths=(query.shape[-2], key.shape[-2])), source="sdpa",
                selected=True, heads=heads, samples=samples, owned=True)
            if vw is not None and m is not None:
                m.value_weighted = sel.finish(vw, 1)
            return result

        return aliases.table(_SITES, handle)  # (another tool's wrapper too)
