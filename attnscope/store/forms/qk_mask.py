"""Masks of query/key segments on disk: a bool mask, or an additive one that takes two
values (such as ``0``/``finfo.min``), is stored as packed bits (1 bit per query and key,
8x to 32x smaller than the mask) plus the two values as hex floats, which JSON keeps
exactly; any other mask is stored as it is. Both read back bit for bit."""

from __future__ import annotations

import numpy as np
import torch


def encode_mask(mask: torch.Tensor) -> tuple[torch.Tensor, str, list[str] | None]:
    """``(stored tensor, kind, values)``: kind ``"bits"`` (packed along the key axis;
    ``values``: the two additive values, or None for a bool mask) or ``"raw"``."""
    if mask.dtype == torch.bool:
        return torch.from_numpy(np.packbits(mask.numpy(), axis=-1)), "bits", None
    lo, hi = mask.min(), mask.max()
    if bool(((mask == lo) | (mask == hi)).all()):  # which of the two values, per bit
        bits = torch.from_numpy(np.packbits((mask == lo).numpy(), axis=-1))
        return bits, "bits", [float(lo).hex(), float(hi).hex()]
    return mask, "raw", None


def decode_mask(stored: torch.Tensor, key_len: int, dtype: str, kind: str,
                values: list[str] | None) -> torch.Tensor:
    """The mask :func:`encode_mask` stored (``dtype``: the mask's own torch dtype name)."""
    if kind != "bits":
        return stored
    mask = torch.from_numpy(np.unpackbits(stored.numpy(), axis=-1, count=key_len)
                            .astype(bool))
    if values is None:
        return mask
    lo, hi = (torch.tensor(float.fromhex(v), dtype=getattr(torch, dtype)) for v in values)
    return torch.where(mask, lo, hi)
