"""The layout check every dense map passes before it is recorded.

A map is recorded only as ``(batch, head, query, key)`` of the call that made it: its
rows must be able to multiply the values of that call, with the model call's batch and
the module's head count. What a strategy sees is often laid out otherwise; this module
turns the recognised layouts into that shape and refuses the rest with a reason:

* grouped-query heads packed into the query axis (one-token decoding): unfolded;
* heads folded into the batch axis (``(batch*head, query, key)``): unfolded, in the
  order the provenance of the operands shows (:mod:`attnscope.capturing.provenance`),
  else the one the masked keys show, else batch-major with a note that it was assumed;
* local windows ``(..., window, query, key)``, alone or looking around: rebuilt dense
  (see :mod:`attnscope.capturing.windows`);
* Longformer bands ``(batch, query, head, 2w+1)``: rebuilt dense (see ``band_to_dense``);
* query subsets with the index that picked them (ProbSparse): put back at their rows;
* anything else that does not fit: refused, and the reason is the caller's note.

Deliberately left out: guessing heads from sizes alone when the module declares none
and the batch axis is not a multiple of the call's batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnscope.capturing.windows import windows_to_dense

_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "nhead", "heads",
               "num_head", "h")


@dataclass(frozen=True)
class CallShape:
    """What is known about the call a map belongs to (``None``: unknown)."""

    batch: int | None = None  # samples of the model call
    heads: int | None = None  # heads the module declares
    tokens: int | None = None  # query tokens of the module call
    cached: bool = False  # a key/value cache is in use (decoding)
    # how the folded leading axis was built: ("batch" | "head", heads or None) (provenance)
    fold: tuple[str, int | None] | None = None
    # query rows a subset was picked from: (index (..., u) on the query axis, full length)
    rows: tuple[torch.Tensor, int] | None = None


def declared_heads(module: nn.Module) -> int | None:
    """Head count a module states in the usual attribute names (or its HF config)."""
    for attr in _HEAD_ATTRS:
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    config = getattr(module, "config", None)
    value = getattr(config, "num_attention_heads", None)
    if isinstance(value, int) and value > 0 and hasattr(module, "head_dim"):
        return value
    return None


def _consistent(w: torch.Tensor, outer: int, inner: int, order: str) -> bool:
    """Whether rows of ``w`` (N, query, key) folded in ``order`` ("batch": row
    ``o*inner + i`` belongs to ``o``; "head": row ``i*outer + o`` does) mask the same keys
    within each ``o``: a padding mask is per sample."""
    dead = (w == 0).all(dim=-2)  # (N, key): keys no query of that row may see
    if order == "batch":
        by = dead.reshape(outer, inner, -1)
        return bool((by == by[:, :1]).all())
    by = dead.reshape(inner, outer, -1)
    return bool((by == by[:1]).all())


def _unfold(w: torch.Tensor, call: CallShape) -> tuple[torch.Tensor | None, str | None]:
    """``(N, query, key)`` with heads (or other rows) folded into the batch, as
    ``(N // inner, inner, query, key)``: in the order the provenance of its operands
    shows, else the one the masked keys show, else batch-major with a note saying so."""
    n, batch = w.shape[0], call.batch
    order, heads = call.fold or (None, None)
    heads = heads or call.heads
    if heads and heads > 1 and n % heads == 0 and (n // heads) % batch == 0:
        outer, inner = n // heads, heads
    elif n % batch == 0:
        outer, inner = batch, n // batch
    else:
        return None, (f"leading axis of {n} rows is not a multiple of the call's "
                      f"batch of {batch}: layout unknown")
    fits = [o for o in ("batch", "head") if _consistent(w, outer, inner, o)]
    note = None
    if order is not None and order not in fits:
        return None, (f"the folded axis ({n} rows) was built {order}-major, but its rows "
                      "mask keys that contradict that order")
    if order is None:
        if not fits:
            return None, (f"rows of the folded axis ({n}) mask different keys in both "
                          "batch-major and head-major order")
        order = fits[0]
        if len(fits) == 2:
            note = (f"order of the folded axis ({n} rows = {outer} x {inner}) assumed "
                    "batch-major: no reshape, permute or cat that built it was seen and no "
                    "masked keys tell its samples apart")
    if order == "batch":
        return w.reshape(outer, inner, *w.shape[-2:]), note
    return w.reshape(inner, outer, *w.shape[-2:]).transpose(0, 1), note


def _place_rows(t: torch.Tensor, rows: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, str]:
    """A query subset ``(..., u, key)`` back at its positions in ``(..., full, key)``;
    rows that were never computed are NaN."""
    index, full = rows
    dense = t.new_full((*t.shape[:-2], full, t.shape[-1]), float("nan"))
    dense.scatter_(-2, index.to(t.device)[..., None].expand(t.shape), t)
    return dense, (f"{t.shape[-2]} of {full} query rows computed (a query subset, as in "
                   "ProbSparse attention), placed at their positions; the rows of the "
                   "queries not selected are NaN (no attention row was computed for them)")


def packed_group(call: CallShape, query: torch.Tensor, key: torch.Tensor) -> int | None:
    """The group size when a one-token call packs its grouped-query heads into the query
    axis (``(batch, kv_head, group, dim)`` over keys ``(batch, kv_head, key, dim)``, as
    Hugging Face does for a decode step with a mask), else ``None``."""
    if query.ndim != 4 or key.ndim != 4 or call.tokens != 1 or not call.heads:
        return None
    kv, group = query.shape[1], query.shape[2]
    if group > 1 and kv * group == call.heads and key.shape[1] == kv:
        return group
    return None


def unpack_gqa(bound: dict[str, Any], group: int) -> dict[str, Any]:
    """An sdpa call's arguments with packed grouped-query heads (:func:`packed_group`)
    laid out as ``(batch, head, 1, dim)`` by reshape (head ``kv * group + g``, key head
    ``head // group``): the same scores, so its queries and keys can be stored as they
    are; a mask with a group axis is unpacked the same way."""
    query = bound["query"]
    b, kv, _, dim = query.shape
    out = {**bound, "query": query.reshape(b, kv * group, 1, dim), "enable_gqa": True}
    mask = bound.get("attn_mask")
    if mask is not None:
        mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
        if mask.shape[1] > 1 or mask.shape[2] > 1:  # per kv head or per group: unpack
            mask = mask.expand(mask.shape[0], kv, group, mask.shape[-1])
            mask = mask.reshape(mask.shape[0], kv * group, 1, mask.shape[-1])
        out["attn_mask"] = mask
    return out


def fit_dense(t: torch.Tensor, call: CallShape) -> tuple[torch.Tensor | None, str | None]:
    """``t`` (key axis last) as ``(batch, head, query, key)`` of ``call`` and a note on what
    was assumed or rebuilt (or ``None``), or ``None`` and the reason it cannot be."""
    if t.ndim == 1:
        return t.reshape(1, 1, 1, -1), None
    if t.ndim == 2:  # one weight per key and sample: 1-D attention
        return t[:, None, None, :], None
    batch, heads, tokens = call.batch, call.heads, call.tokens
    note = None
    if call.rows is not None and tuple(call.rows[0].shape) == tuple(t.shape[:-1]) and \
            call.rows[1] > t.shape[-2]:
        t, note = _place_rows(t, call.rows)
    q_len = t.shape[-2]
    lead = t.shape[:-2]
    if tokens is not None and len(lead) >= 2 and 1 < q_len < tokens and \
            lead[-1] * q_len >= tokens > (lead[-1] - 1) * q_len:
        t, why = windows_to_dense(t, tokens)
        if t is None:
            return None, why
        note = _join(note, why)
        lead, q_len = t.shape[:-2], tokens
    if tokens == 1 and q_len > 1 and heads and len(lead) == 2 and lead[1] * q_len == heads:
        # grouped-query heads packed into the query axis: (batch, kv_head, group, key)
        return t.reshape(lead[0], heads, 1, t.shape[-1]), None
    if tokens is not None and 1 < q_len < tokens and not call.cached:
        return None, (f"{q_len} query rows for {tokens} tokens: a query subset "
                      "(ProbSparse-like, block-sparse fragment or band); not recorded")
    if len(lead) == 1:
        n = lead[0]
        if batch is None or n == batch:
            return t[:, None], note
        if q_len == 1 and tokens and tokens > 1 and n % (batch * tokens) == 0:
            return None, (f"one row of {t.shape[-1]} weights per token, tokens folded into "
                          f"the batch ({n} rows = {batch} samples x {tokens} tokens x "
                          f"{n // batch // tokens}): a dynamic-convolution or band layout "
                          "whose key offsets are not recorded")
        t, why = _unfold(t, call)
        return t, why if t is None else _join(note, why)
    if len(lead) > 2:
        t = t.flatten(0, len(lead) - 2)
    return t, note


def _join(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def folded_note(rows: int, batch: int | None) -> str | None:
    """What a kept-whole batch axis holds when it is not the model call's batch."""
    if batch is None or rows == batch:
        return None
    return (f"batch axis holds {rows} rows for a model call of {batch} samples (epochs, "
            "channels or windows folded into the batch): kept whole, sample selection "
            "does not apply")


def band_to_dense(band: torch.Tensor, one_sided: int) -> torch.Tensor:
    """Longformer's sliding-window band ``(batch, query, head, 2w+1)`` (column ``j`` is key
    ``query + j - w``) as a dense ``(batch, head, query, key)`` matrix."""
    b, n, h, width = band.shape
    dense = band.new_zeros(b, h, n, n + 2 * one_sided)  # padded so every offset fits
    rows = torch.arange(n, device=band.device)[:, None]
    cols = rows + torch.arange(width, device=band.device)[None, :]  # key + w
    index = cols.expand(b, h, n, width)
    dense.scatter_(-1, index, band.permute(0, 2, 1, 3))
    return dense[..., one_sided:one_sided + n]
