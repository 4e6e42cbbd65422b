"""What an sdpa kernel received, kept small: the exact inputs its probabilities are a
function of, so a store can keep these instead of the ``(query x key)`` matrix.

``QkInputs`` holds post-RoPE queries and keys (exactly the tensors the kernel saw), a
compact mask (broadcast and repeated axes reduced to size 1, never expanded to
``query x key`` unless the model itself built it that way), the causal flag, the scale
and the grouped-query layout. :func:`qk_probabilities` turns it back into probabilities
with the same block function the sdpa strategy uses at capture
(:func:`attnscope.kernels.sdpa_probabilities`), so a read gives what a
capture in probability form would have stored.

Left out on purpose: per-row logsumexp (every reader asks for whole rows, which need
the row's scores anyway) and dropout (attnscope records pre-dropout probabilities).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

from attnscope.kernels.sdpa import sdpa_probabilities, to_4d, unbroadcast

Index = list[int] | slice | None


@dataclass(eq=False)
class QkInputs:
    """Inputs of one sdpa call for the kept samples and heads.

    Attributes:
        query: ``(batch, head, query, dim)``, the kept heads only.
        key: ``(batch or 1, key_head, key, dim)``, only the key heads the kept heads use.
        kv_index: for each kept query head, its key head in ``key`` (grouped-query).
        mask: ``None`` or a compact mask ``(batch or 1, head or 1, query or 1, key)``,
            bool (True = attend) or additive float, as the kernel saw it.
        causal: sdpa's ``is_causal`` (top-left aligned: query i sees keys 0..i).
        scale: the scale actually used (``1/sqrt(dim)`` when the call gave none).
        reduced: ``"mean"``: the stored map is the mean over the kept heads.
    """

    query: torch.Tensor
    key: torch.Tensor
    kv_index: list[int]
    mask: torch.Tensor | None
    causal: bool
    scale: float
    reduced: str | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of the probabilities ``(batch, head, query, key)`` (head 1 if reduced)."""
        n, h, q, _ = self.query.shape
        return (n, 1 if self.reduced else h, q, self.key.shape[-2])

    @property
    def nbytes(self) -> int:
        parts = (self.query, self.key, self.mask)
        return sum(t.numel() * t.element_size() for t in parts if t is not None)


def _positions(index: Index, n: int) -> list[int]:
    if index is None:
        return list(range(n))
    if isinstance(index, slice):
        return list(range(n))[index]
    return [int(i) for i in index]


def compact_mask(attn_mask: torch.Tensor, query: torch.Tensor, k_len: int,
                 samples: list[int] | None, heads: list[int] | None) -> torch.Tensor:
    """The mask as ``(batch, head, query, key)`` with every axis that is broadcast or
    repeats one value kept at size 1, for the kept samples and heads only. An expanded
    view is reduced without being materialised; a materialised padding mask (the same
    row for every query) becomes one row."""
    shape = (1,) * (query.ndim - attn_mask.ndim) + tuple(attn_mask.shape)
    m = attn_mask.reshape(shape)
    m = m.expand(*query.shape[:-2], m.shape[-2], k_len)
    m = unbroadcast(to_4d(m))  # broadcast (stride 0) axes first
    if samples is not None and m.shape[0] > 1:
        m = m[samples]
    if heads is not None and m.shape[1] > 1:
        m = m[:, heads]
    for axis in range(3):  # then axes the model materialised with one repeated value
        if m.shape[axis] > 1 and bool((m == m.narrow(axis, 0, 1)).all()):
            m = m.narrow(axis, 0, 1)
    return m


def _cpu_copy(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A contiguous CPU copy that outlives ``inference_mode`` and in-place model ops:
    one copy (``to(copy=True)`` keeps a view's strides, so ``contiguous`` copied again)."""
    with torch.inference_mode(False):
        out = torch.empty(t.shape, dtype=dtype or t.dtype)
        out.copy_(t.detach())
        return out


class MaskMemo:
    """The compact CPU mask of the last mask tensor seen, reused while the same tensor
    comes again with the same shapes and selection: models hand one mask object to every
    layer, and compacting a materialised ``(batch, 1, query, key)`` mask reads all of it.
    A tensor with a version counter must also be unchanged; an inference tensor has
    none, so ``token`` (the model call) bounds the reuse to one forward. The mask is
    held weakly: the model's tensor is never kept alive."""

    def __init__(self) -> None:
        self._mask: weakref.ref | None = None
        self._key: tuple | None = None
        self._value: torch.Tensor | None = None

    def compact(self, attn_mask: torch.Tensor, query: torch.Tensor, k_len: int,
                samples: list[int] | None, heads: list[int] | None,
                token: object = None) -> torch.Tensor:
        version = None if attn_mask.is_inference() else attn_mask._version
        key = (token, version, attn_mask.data_ptr(), tuple(attn_mask.stride()),
               tuple(query.shape), k_len, None if samples is None else tuple(samples),
               None if heads is None else tuple(heads))
        if self._mask is None or self._mask() is not attn_mask or self._key != key:
            value = _cpu_copy(compact_mask(attn_mask, query, k_len, samples, heads))
            self._mask, self._key, self._value = weakref.ref(attn_mask), key, value
        assert self._value is not None
        return self._value


def _first_copies(key: torch.Tensor) -> list[int]:
    """For each key head, the first of a run of identical heads: code that repeats
    grouped-query keys itself (``repeat_kv``) before sdpa then stores each once. Heads
    whose first key row differs from the previous head's are told apart by one
    comparison of those rows; only the others are compared whole."""
    heads = key.shape[1]
    if heads < 2:
        return [0] * heads
    if key.numel():  # (head - 1,): the first key row of each head equals the previous's
        rows = key[:1, :, :1].reshape(heads, -1)
        maybe = (rows[1:] == rows[:-1]).all(-1).tolist()
    else:
        maybe = [True] * (heads - 1)
    first, run = [0], 0
    for h in range(1, heads):
        if not (maybe[h - 1] and torch.equal(key[:, h], key[:, h - 1])):
            run = h
        first.append(run)
    return first


def from_sdpa(query: torch.Tensor, key: torch.Tensor, attn_mask: torch.Tensor | None,
              is_causal: bool, scale: float | None, *, samples: list[int] | None = None,
              heads: list[int] | None = None, half: bool = False,
              reduced: str | None = None, masks: MaskMemo | None = None,
              token: object = None) -> QkInputs:
    """Keep what an sdpa call received, for the kept ``samples`` and ``heads``.

    ``half``: store 32/64-bit queries and keys as float16 (half the size, lossy: see the
    README for the measured error); 16-bit inputs are always kept as they are.
    ``masks``: a :class:`MaskMemo` shared by the calls of one capture (``token``: the
    model call), so a mask every layer receives is compacted once.
    """
    q4, k4 = to_4d(query), to_4d(key)
    num_heads, kv_heads = q4.shape[1], k4.shape[1]
    group = max(1, num_heads // kv_heads)
    if samples is not None:
        q4 = q4[samples]
        k4 = k4[samples] if k4.shape[0] > 1 else k4
    head_list = list(range(num_heads)) if heads is None else list(heads)
    if heads is not None:
        q4 = q4[:, heads]
    first = _first_copies(k4)
    wanted = [first[h // group] for h in head_list]
    needed = sorted(set(wanted))
    if needed != list(range(kv_heads)):
        k4 = k4[:, needed]
    kv_index = [needed.index(w) for w in wanted]
    mask = None
    if attn_mask is not None:
        memo = masks if masks is not None else MaskMemo()
        mask = memo.compact(attn_mask, query, k4.shape[-2], samples, heads, token)
    dtype = torch.float16 if half and q4.dtype in (torch.float32, torch.float64) else None
    used = 1.0 / math.sqrt(q4.shape[-1]) if scale is None else float(scale)
    return QkInputs(_cpu_copy(q4, dtype), _cpu_copy(k4, dtype), kv_index, mask,
                    bool(is_causal), used, reduced)


def qk_probabilities(inp: QkInputs, samples: Index = None, heads: Index = None,
                     rows: Index = None) -> torch.Tensor:
    """Probabilities ``(sample, head, query, key)`` float32 of the chosen samples, heads
    (positions among the kept ones) and query rows, computed one sample at a time by
    :func:`sdpa_probabilities` (which works in blocks of query rows), masked keys as
    ``-0.0`` exactly as a capture in probability form records them. A reduced entry
    ignores ``heads`` and returns the head mean as one head."""
    n, h, q_len, _ = inp.query.shape
    k_len = inp.key.shape[-2]
    sample_list = _positions(samples, n)
    head_list = list(range(h)) if inp.reduced else _positions(heads, h)
    row_list = None if rows is None else _positions(rows, q_len)
    kv = [inp.kv_index[i] for i in head_list]
    parts = []
    for s in sample_list:
        query = inp.query[s:s + 1, head_list]
        key = inp.key[(s if inp.key.shape[0] > 1 else 0):][:1, kv]
        mask, causal = inp.mask, inp.causal
        if mask is not None:
            mask = mask[(s if mask.shape[0] > 1 else 0):][:1]
            mask = mask[:, head_list] if mask.shape[1] > 1 else mask
        if row_list is not None:
            query = query[:, :, row_list]
            if mask is not None and mask.shape[2] > 1:
                mask = mask[:, :, row_list]
            if causal:  # causal over a subset of rows: the same rule as an explicit mask
                keys = torch.arange(k_len)
                mask = (keys <= torch.tensor(row_list).unsqueeze(1))[None, None]
                causal = False
        probs, _ = sdpa_probabilities(query, key, mask, causal, inp.scale,
                                      out_dtype=torch.float32, mark=True)
        parts.append(probs.mean(1, keepdim=True) if inp.reduced else probs)
    if len(parts) == 1:  # one sample (a one-head read): no copy
        return parts[0]
    if not parts:
        return torch.empty(0, 1 if inp.reduced else len(head_list),
                           q_len if row_list is None else len(row_list), k_len)
    return torch.cat(parts)
