"""Value-weighted attention (Kobayashi et al., 2020): ``||alpha_ij f(x_j)||``, how much
key ``j`` really moves query ``i``'s output, not only how much weight it gets.

Captured on request with ``attnscope.capture(model, value_weighted=True)`` where the
values are reachable: ``nn.MultiheadAttention`` (``f(x) = (x W_V + b_V) W_O`` per head,
the paper's definition, output projection included) and
``F.scaled_dot_product_attention`` (``f(x) = v``: the output projection runs after the
call and is invisible to it, so the norms are those of the value vectors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.analysis._blocks import AnalysisError


def value_weighted(m: Any, normalize: bool = False) -> np.ndarray:
    """``(batch, head, query, key)`` value-weighted map of a captured ``AttentionMap``.

    Args:
        normalize: divide each row by its sum, for comparison with the weights.
    """
    vw = getattr(m, "value_weighted", None)
    if vw is None:
        raise AnalysisError(
            f"{getattr(m, 'module', 'this map')!r} has no value-weighted map: capture with "
            "attnscope.capture(model, value_weighted=True); only sdpa and "
            "nn.MultiheadAttention calls expose their values")
    out = vw.float().numpy()
    if normalize:
        total = out.sum(-1, keepdims=True)
        out = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
    return out
