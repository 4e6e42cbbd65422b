"""One causal ``(token x token)`` map per attention module from a prefill and its decode
steps.

The prefill gives the prompt's rows; each decode step adds the rows of the token(s) it
fed, over the keys its cache held. A cache may hold fewer keys than the sequence
(sliding-window layers keep the last ``w``): a step's keys are the *last* positions up
to its own, so they are aligned at the end, never at 0. Cells a step never had (the
causal future, keys dropped by a window cache) carry ``-0.0``: exactly what eager
attention gives there (probability 0), and the sign marks them as masked, as for every
key the softmax masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnscope.generation.protocol import GenerationError
from attnscope.maps import AttentionMap

Key = tuple[str, int]  # (module, call index inside one model call)


class StitchError(ValueError):
    """Per-step maps that do not tile one causal sequence."""


def group_steps(steps: Sequence[Sequence[AttentionMap]]) -> dict[Key, list[AttentionMap]]:
    """``{(module, call): [its map in step 0, step 1, ...]}`` from the maps each model step
    recorded, for modules that ran in every step; ``call`` counts a module's calls inside
    one step (a model's own ``step`` method is not its ``forward``, so the capture's
    forward and call indices cannot tell steps apart)."""
    found: dict[Key, list[AttentionMap]] = {}
    for s, maps in enumerate(steps):
        seen: dict[str, int] = {}
        for m in maps:
            if m.is_graph:
                continue
            call = seen.get(m.module, 0)
            seen[m.module] = call + 1
            group = found.setdefault((m.module, call), [])
            if len(group) == s:
                group.append(m)
    return {key: group for key, group in found.items() if len(group) == len(steps)}


def stitch_causal(steps: Sequence[AttentionMap], length: int) -> AttentionMap:
    """The ``(batch, head, length, length)`` map the steps tile, in float32."""
    first = steps[0]
    batch, heads = first.weights.shape[:2]
    out = torch.full((batch, heads, length, length), -0.0, dtype=torch.float32)
    pos = 0
    for m in steps:
        w = m.weights
        if tuple(w.shape[:2]) != (batch, heads):
            raise StitchError(f"{m.module}: a step has (batch, head) "
                              f"{tuple(w.shape[:2])}, the prefill {(batch, heads)}")
        q, k = w.shape[-2:]
        end = pos + q
        if end > length or k > end:
            raise StitchError(f"{m.module}: a step has {q} queries over {k} "
                              f"keys at position {pos}; they do not fit a causal sequence "
                              f"of {length} tokens")
        out[:, :, pos:end, end - k:end] = w.float()
        pos = end
    if pos != length:
        raise StitchError(f"{first.module}: the steps cover {pos} of {length} positions")
    return AttentionMap(module=first.module, kind="self", weights=out, forward_index=0,
                        call_index=first.call_index, source=first.source, heads=first.heads,
                        samples=first.samples, reduced=first.reduced)


def non_causal(m: AttentionMap, tol: float = 1e-6) -> float:
    """The largest weight a query puts on a later key (0 for causal attention); the
    queries are the last rows of the sequence the keys span."""
    w = m.weights.float()
    q, k = w.shape[-2:]
    if q > k:
        return 0.0
    rows = torch.arange(k - q, k).unsqueeze(1)
    future = torch.arange(k).unsqueeze(0) > rows  # (query, key)
    vals = torch.nan_to_num(w, nan=0.0).abs() * future
    return float(vals.max()) if vals.numel() else 0.0


def check_causal(maps: Sequence[AttentionMap]) -> None:
    """Refuse a model whose prefill lets a token see later tokens."""
    for m in maps:
        if not m.is_graph and m.kind == "self":
            worst = non_causal(m)
            if worst > 1e-6:
                raise GenerationError(f"{m.module} lets tokens attend to later tokens (weight "
                                      f"{worst:.3g}): the model is not causal, so it cannot "
                                      "generate; use `attnscope text` for encoders")
