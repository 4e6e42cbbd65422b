"""Queries and keys behind a map, for the page's query/key view: the per-dimension
products ``q_i * k_j`` that sum (times the scale) to one attention score.

They come from a store in query/key form (``form="qk"``, :mod:`attnscope.store.qk`) or
from maps captured with their sdpa inputs (``AttentionMap.qk``); no model is needed.
Left out: maps whose stored head is a mean (the products belong to single heads) and
maps longer than ``MAX_TOKENS`` (the view is a drill-down into one query).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnscope.maps import Recording

MAX_TOKENS = 1024


def _store_inputs(store: Any, module: str, step: str | None, sample: int,
                  heads: Sequence[int]) -> Any:
    from attnscope.store.forms import qk

    found = store.locate(module, step, sample)
    if found is None:
        return None
    seg, row = found
    seg.meta()  # checked against its journal before reading
    if seg.form.name != "qk":
        return None
    return qk.load(seg.path, [row], list(heads))


def _recording_inputs(rec: Recording, module: str, sample: int, heads: Sequence[int]) -> Any:
    seen = 0
    for m in (m for m in rec.maps if m.entry == module):
        n = m.weights.shape[0]
        if sample < seen + n:
            inp = getattr(m, "qk", None)
            if inp is None:
                return None
            row, kb = sample - seen, inp.key.shape[0]
            keep = list(heads)
            return type(inp)(inp.query[row:row + 1, keep], inp.key[row % kb:row % kb + 1],
                             [inp.kv_index[h] for h in keep], None, inp.causal, inp.scale,
                             inp.reduced)
        seen += n
    return None


def qk_arrays(source: Any, module: str, step: str | None, sample: int,
              heads: Sequence[int], shape: tuple[int, int]) -> dict[str, Any] | None:
    """``{"q": [(query, dim) per head], "k": [(key, dim) per head], "scale": s}`` of the
    selected heads (grouped-query keys resolved per head), or None where not stored."""
    if max(shape) > MAX_TOKENS:
        return None
    if isinstance(source, Recording):
        inp = _recording_inputs(source, module, sample, heads)
    elif callable(getattr(source, "checked", None)):  # a store (its committed segments)
        inp = _store_inputs(source, module, step, sample, heads)
    else:
        return None
    if inp is None or inp.reduced or inp.query.shape[1] != len(heads):
        return None
    q = inp.query[0].float().numpy()  # (head, query, dim)
    k = inp.key[0].float().numpy()  # (key_head, key, dim)
    if q.shape[1] != shape[0] or k.shape[1] != shape[1]:
        return None
    return {"q": [np.ascontiguousarray(x) for x in q],
            "k": [np.ascontiguousarray(k[i]) for i in inp.kv_index], "scale": float(inp.scale)}
