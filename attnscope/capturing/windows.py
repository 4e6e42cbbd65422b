"""Local-window attention ``(..., window, query, key)`` rebuilt as dense
``(..., query, key)`` maps over the whole sequence.

Two layouts are recognised: windows that see only themselves (block-diagonal), and
look-around windows (lucidrains' ``local-attention``, Longformer-style chunking) whose
keys are the ``back`` windows before, the window itself and the ``forward`` windows
after, concatenated. How many windows each side is read from the weights: the key
slots that fall off either end of the sequence are padding the model masked, so every
query gives them exactly zero; the pattern must hold in every window or the layout is
refused. Key cells outside a query's windows were never computed: they are zeros,
recorded as masked cells.

Deliberately left out: windows of a size other than the query chunk, dilated windows,
and look-around without masked padding (its offsets cannot be read from the weights).
"""

from __future__ import annotations

import torch


def _offsets(blocks: torch.Tensor) -> tuple[int, int] | None:
    """``(back, forward)`` windows of look-around ``blocks`` ``(..., window, query,
    slot, key)``: the slots falling off the sequence are all-zero, the others are not."""
    windows, slots = blocks.shape[-4], blocks.shape[-2]
    zero = (blocks == 0).flatten(0, -5).all(0).all(-3).all(-1)  # (window, slot)
    back = 0
    while back < slots - 1 and bool(zero[0, back]):
        back += 1
    forward = slots - 1 - back
    outside = torch.tensor([[not 0 <= c - back + s < windows for s in range(slots)]
                            for c in range(windows)])
    return (back, forward) if bool(zero[outside].all()) else None


def windows_to_dense(t: torch.Tensor, tokens: int) -> tuple[torch.Tensor | None, str | None]:
    """``t`` ``(..., window, query, key)`` over ``tokens`` queries as ``(..., query, key)``
    and a note on what was rebuilt, or ``None`` and the reason it cannot be."""
    windows, size, k_len = t.shape[-3:]
    slots = k_len // size
    refused = (f"local-window chunks ({windows} windows of {size} queries over {k_len} "
               f"keys, {tokens} tokens): key offsets are not recoverable")
    if k_len % size or windows * size < tokens:
        return None, refused
    blocks = t.reshape(*t.shape[:-1], slots, size)  # (..., window, query, slot, key)
    back, forward = (0, 0) if slots == 1 else (_offsets(blocks) or (-1, -1))
    if back < 0:
        return None, refused
    n = windows * size
    dense = t.new_zeros(*t.shape[:-3], n, n)
    for c in range(windows):
        for s in range(slots):
            kc = c - back + s
            if 0 <= kc < windows:
                dense[..., c * size:(c + 1) * size, kc * size:(kc + 1) * size] = \
                    blocks[..., c, :, s, :]
    note = None if slots == 1 else (
        f"look-around local windows ({windows} windows of {size} queries, {back} back, "
        f"{forward} forward) rebuilt dense; keys outside a query's windows are masked zeros")
    if n > tokens:  # the model padded the sequence to whole windows
        dense = dense[..., :tokens, :]
        if bool((dense[..., tokens:] == 0).all()):
            dense = dense[..., :tokens]
        else:
            note = "; ".join(filter(None, [note, (
                f"keys keep the {n - tokens} padding positions the model added to fill its "
                "last window (it gave them weight)")]))
    return dense, note
