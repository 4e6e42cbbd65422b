"""Attention kernels shared by capture and the store: blocked sdpa probabilities and the
query/key inputs they are computed from.

One home for the arithmetic, so a probability captured from a model and one recomputed
from a stored query/key segment come from the same function (the store never imports
the capture engine).

Example:
    >>> probs, _ = sdpa_probabilities(q, k, mask, is_causal=False)   # (batch, head, query, key)
    >>> inp = from_sdpa(q, k, mask, False, None)                      # what the kernel saw
    >>> torch.equal(qk_probabilities(inp), probs)
"""

from __future__ import annotations

from attnscope.kernels.qk import QkInputs, compact_mask, from_sdpa, qk_probabilities
from attnscope.kernels.sdpa import (
    BLOCK_ELEMENTS,
    mark_masked_,
    query_blocks,
    sdpa_probabilities,
    to_4d,
)

__all__ = ["BLOCK_ELEMENTS", "QkInputs", "compact_mask", "from_sdpa", "mark_masked_",
           "qk_probabilities", "query_blocks", "sdpa_probabilities", "to_4d"]
