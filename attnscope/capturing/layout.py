"""The layout check every dense map passes before it is recorded.

A map is recorded only as ``(batch, head, query, key)`` of the call that made it: its
rows must be able to multiply the values of that call, with the model call's batch and
the module's head count. What a strategy sees is often laid out otherwise; this module
turns the recognised layouts into that shape and refuses the rest with a reason:

* grouped-query heads packed into the query axis (one-token decoding): unfolded;
* heads folded into the batch axis (``(batch*head, query, key)``): unfolded, in the
  batch-major or head-major order the masked keys reveal;
* non-overlapping local windows ``(..., window, query, key)``: rebuilt block-diagonal;
* Longformer bands ``(batch, query, head, 2w+1)``: rebuilt dense (see ``band_to_dense``);
* overlapping windows, query subsets (ProbSparse, block-sparse fragments) and anything
  else that does not fit: refused, and the reason is the caller's note.

Deliberately left out: guessing heads from sizes alone when the module declares none
and the batch axis is not a multiple of the call's batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "nhead", "heads",
               "num_head", "h")


@dataclass(frozen=True)
class CallShape:
    """What is known about the call a map belongs to (``None``: unknown)."""

    batch: int | None = None  # samples of the model call
    heads: int | None = None  # heads the module declares
    tokens: int | None = None  # query tokens of the module call
    cached: bool = False  # a key/value cache is in use (decoding)


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


def _fold_order(w: torch.Tensor, batch: int, inner: int) -> str | None:
    """``"batch"`` if rows ``b*inner + i`` of ``w`` (N, query, key) belong to sample ``b``,
    ``"head"`` if rows ``i*batch + b`` do, from the keys each sample masks out; ``None``
    when the masked keys contradict both."""
    dead = (w == 0).all(dim=-2)  # (N, key): keys no query of that row may see
    by_batch = dead.reshape(batch, inner, -1)
    by_head = dead.reshape(inner, batch, -1)
    batch_ok = bool((by_batch == by_batch[:, :1]).all())
    head_ok = bool((by_head == by_head[:1]).all())
    if batch_ok:
        return "batch"
    return "head" if head_ok else None


def _unfold(w: torch.Tensor, outer: int, inner: int) -> tuple[torch.Tensor | None, str | None]:
    """``(outer*inner, query, key)`` as ``(outer, inner, query, key)``."""
    order = _fold_order(w, outer, inner)
    if order == "batch":
        return w.reshape(outer, inner, *w.shape[-2:]), None
    if order == "head":
        return w.reshape(inner, outer, *w.shape[-2:]).transpose(0, 1), None
    return None, (f"rows of the folded axis ({w.shape[0]}) mask different keys in both "
                  "batch-major and head-major order")


def _windows(t: torch.Tensor, tokens: int) -> tuple[torch.Tensor | None, str | None]:
    """``(..., window, query, key)`` chunks of ``tokens`` queries: block-diagonal when the
    windows tile the sequence and see only themselves, else refused."""
    windows, q_len, k_len = t.shape[-3:]
    if windows * q_len != tokens or k_len != q_len:
        return None, (f"local-window chunks ({windows} windows of {q_len} queries over "
                      f"{k_len} keys, {tokens} tokens): key offsets are not recoverable")
    dense = t.new_zeros(*t.shape[:-3], tokens, tokens)
    for c in range(windows):
        rows = slice(c * q_len, (c + 1) * q_len)
        dense[..., rows, rows] = t[..., c, :, :]
    return dense, None


def fit_dense(t: torch.Tensor, call: CallShape) -> tuple[torch.Tensor | None, str | None]:
    """``t`` (key axis last) as ``(batch, head, query, key)`` of ``call``, or ``None`` and
    the reason it cannot be."""
    if t.ndim == 1:
        return t.reshape(1, 1, 1, -1), None
    if t.ndim == 2:  # one weight per key and sample: 1-D attention
        return t[:, None, None, :], None
    batch, heads, tokens = call.batch, call.heads, call.tokens
    q_len = t.shape[-2]
    lead = t.shape[:-2]
    if tokens is not None and len(lead) >= 2 and 1 < q_len < tokens and \
            lead[-1] * q_len >= tokens > (lead[-1] - 1) * q_len:
        t, why = _windows(t, tokens)
        if t is None:
            return None, why
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
            return t[:, None], None
        if q_len == 1 and tokens and tokens > 1 and n % (batch * tokens) == 0:
            return None, (f"one row of {t.shape[-1]} weights per token, tokens folded into "
                          f"the batch ({n} rows = {batch} samples x {tokens} tokens x "
                          f"{n // batch // tokens}): a dynamic-convolution or band layout "
                          "whose key offsets are not recorded")
        if heads and heads > 1 and n % heads == 0 and (n // heads) % batch == 0:
            return _unfold(t, n // heads, heads)
        if n % batch == 0:
            return _unfold(t, batch, n // batch)
        return None, (f"leading axis of {n} rows is not a multiple of the call's "
                      f"batch of {batch}: layout unknown")
    if len(lead) > 2:
        t = t.flatten(0, len(lead) - 2)
    return t, None


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
