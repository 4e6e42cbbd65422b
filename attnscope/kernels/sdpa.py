"""Blocked softmax probabilities of a ``scaled_dot_product_attention`` call.

The fused kernel never materialises the probabilities, so they are recomputed from the
same q, k, mask, causal flag, scale and grouped-query layout, one block of queries at a
time: the full score tensor is never held twice. Capture (the sdpa strategy) and the
store (reading query/key segments) both call :func:`sdpa_probabilities`, so a read
gives bit for bit what a capture in probability form computes.

Left out on purpose: dropout (attnscope records pre-dropout probabilities) and
per-row logsumexp (every reader asks for whole rows).
"""

from __future__ import annotations

import math

import torch

from attnscope._memory import check_map

# scores of at most this many elements are alive at once (float32: 16 MB). Measured on
# [8,12,512,512]: 32M-element blocks 56 ms (float32 out) / 70 ms (float16 out); 4M: 56 / 37
# ms; smaller blocks lose to per-block overhead.
BLOCK_ELEMENTS = 4 * 1024 * 1024
# stored in another dtype (float16): scores go through a float32 scratch block first,
# and a block that stays in cache makes the cast nearly free. Measured on [8,12,512,512],
# float16 out, one thread, maps kept (fresh memory): 4M-element blocks 162 ms, 1M 137 ms,
# 512K 138 ms (float32 out is not helped: 158 / 158 / 152 ms)
SCRATCH_ELEMENTS = 1024 * 1024


def to_4d(t: torch.Tensor) -> torch.Tensor:
    """``(..., head, seq, dim)`` as ``(batch, head, seq, dim)``; 3-D is one head."""
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3:
        return t[:, None]
    if t.ndim > 4:
        return t.flatten(0, t.ndim - 4)
    return t


def unbroadcast(mask: torch.Tensor) -> torch.Tensor:
    """A 4-D mask with its broadcast (stride 0) batch, head and query axes cut to size 1:
    what is computed from it (its negation, the rows with no key) then has the mask's
    own size, not ``heads`` times it (blocks broadcast size-1 axes again)."""
    for axis in range(3):
        if mask.shape[axis] > 1 and mask.stride(axis) == 0:
            mask = mask.narrow(axis, 0, 1)
    return mask


def query_blocks(batch: int, heads: int, q_len: int, k_len: int, budget: int):
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


def mark_masked_(probs: torch.Tensor) -> torch.Tensor:
    """Exact zeros of softmax probabilities become ``-0.0``, in place: they equal 0 for
    every computation, yet survive float16 storage (unlike a small weight that merely
    rounds to +0.0 there), so figures and metrics can tell a key the call masked (-inf
    or a huge negative score, the causal future, a query with no key) from a weight.
    For probabilities whose mask is not known as booleans (additive masks, softmax
    outputs taken from a model); the kernel marks the keys a bool mask or the causal
    flag hid by those booleans themselves (:func:`_hide`)."""
    return probs.masked_fill_(probs == 0, -0.0)


def _hide(scores: torch.Tensor, hidden: torch.Tensor, mark: bool = False) -> None:
    """Add ``-inf`` to the scores of ``hidden`` keys (bool, broadcastable), as sdpa adds
    its mask; ``mark``: multiply probabilities there by ``-1`` instead, so their exact
    zeros become ``-0.0``. Through a float tensor of the mask's own size, not
    ``masked_fill_``: with a mask broadcast over heads that runs ~10x slower
    ([1,12,512,512] block, 2 threads: 4.1 ms against 0.5)."""
    on, off = (-1.0, 1.0) if mark else (float("-inf"), 0.0)
    small = torch.where(hidden, on, off)  # on hidden's device; exact in every float dtype
    if mark:
        scores.mul_(small)
    else:
        scores.add_(small)


def _empty_rows(hidden: torch.Tensor | None, added: torch.Tensor | None
                ) -> torch.Tensor | None:
    """Queries of a block that see no key, or None: sdpa gives them zeros, not the NaN
    of a softmax over ``-inf`` alone. Found on the mask-sized tensors, not the scores."""
    gone = hidden
    if added is not None:
        inf = added == float("-inf")
        gone = inf if gone is None else gone | inf
    if gone is None:
        return None
    rows = gone.all(dim=-1, keepdim=True)
    return rows if bool(rows.any()) else None


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
    mark: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax probabilities of an sdpa call, ``(batch, head, query, key)``.

    Grouped-query attention (fewer key heads than query heads) maps query head ``h`` to
    key head ``h // (Hq // Hk)``. With ``value``, also returns the attention output in
    the 4-D layout (only meaningful without a sample/head selection). Scores are
    written straight into the result and normalised in place, block by block.
    ``mark``: keys the call masked come out as ``-0.0``, in the same block pass, before
    any cast: the keys a bool mask or ``is_causal`` hid, and with an additive mask every
    exact zero (:func:`mark_masked_`).
    """
    q4, k4 = to_4d(query), to_4d(key)
    q_len, dim = q4.shape[-2:]
    k_len, num_heads, kv_heads = k4.shape[-2], q4.shape[1], k4.shape[1]
    group = num_heads // kv_heads
    mask4 = None
    if attn_mask is not None:
        mask4 = unbroadcast(to_4d(attn_mask.expand(*query.shape[:-2], q_len, k_len)))
    v4 = None if value is None else to_4d(value)
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

    compute = torch.promote_types(query.dtype, torch.float32)
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    # the scale goes on the keys, in the one pass that also makes them dense (batched
    # matmuls run faster on dense operands; HF hands over transposed views); queries
    # are read where they lie, with no scaled copy per block
    k4 = k4.to(compute) * scale
    v4 = None if v4 is None else v4.contiguous()
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
    if mask4 is not None and mask4.dtype == torch.bool:
        mask4 = mask4.logical_not()  # once, not per block: True = masked out
    scratch = None  # stored in another dtype: scores of every block in one buffer
    if store != compute:
        block_elements = min(block_elements, SCRATCH_ELEMENTS)
    for bs, hs, rs in query_blocks(n, h, q_len, k_len, block_elements):
        view = probs[bs, hs, rs]
        scores = view
        if store != compute:
            if scratch is None or scratch.numel() < view.numel():
                scratch = torch.empty(view.numel(), dtype=compute, device=view.device)
            scores = scratch[: view.numel()].view(view.shape)
        qb = q4[bs, hs, rs].to(compute)
        kb = _pick(_pick(k4, 0, bs), 1, hs)
        torch.matmul(qb, kb.transpose(-1, -2), out=scores)
        hidden, added = future[rs] if future is not None else None, None
        if mask4 is not None:
            block = _pick(_pick(_pick(mask4, 0, bs), 1, hs), 2, rs)
            if block.dtype == torch.bool:
                hidden = block if hidden is None else hidden | block
            else:
                added = block.to(compute)
        if hidden is not None:
            _hide(scores, hidden)
        if added is not None:
            scores.add_(added)
        _softmax_(scores)
        empty = _empty_rows(hidden, added)
        if empty is not None:  # a query with every key masked: zeros, like sdpa
            scores.masked_fill_(empty, 0.0)
        if mark and added is not None:  # an additive mask: its zeros are its masked keys
            mark_masked_(scores)
        elif mark and hidden is not None:  # the keys it hid: exact zeros, now -0.0
            _hide(scores, hidden, mark=True)
        if out is not None:
            vb = _pick(_pick(v4, 0, bs), 1, hs)
            torch.matmul(scores.to(vb.dtype), vb, out=out[bs, hs, rs])
        if scores is not view:
            view.copy_(scores)
    return probs, out
