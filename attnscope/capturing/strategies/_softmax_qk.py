"""Query/key form for hand-written softmax attention (ConvTranPlus, timm-style, custom
code): when the scores are a recognisable product of two activations times a known
scale, ``softmax(scale * q @ k^T)``, the map carries :class:`QkInputs` and a store in
``form="qk"`` keeps queries and keys instead of the ``(query, key)`` probabilities.

Recognised: ``q @ k`` / ``torch.matmul`` / ``bmm`` of two activations with the query
axis second to last and the key axis last, then multiplied by a scale that is a module
attribute (``scale``, ``scaling``, ``softmax_scale``; ``1/temperature``), ``1/sqrt(dim)``
or 1, checked on every element (relative 1e-6) before anything is kept. Left out on
purpose (stored as probabilities, with the store's note): masks and additive biases
before the softmax, einsum products, layouts the layout check had to rebuild.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from attnscope.capturing._qk import session_form
from attnscope.capturing.selection import to_dense_layout
from attnscope.kernels import from_sdpa

_SCALE_NAMES = ("scale", "scaling", "softmax_scale", "attn_scale", "sm_scale")
_TEMPERATURES = ("temperature", "temp")


def product_operands(func: Any, equation: str | None, ops: tuple) -> tuple | None:
    """``(query, key)`` views ``(..., query, dim)`` and ``(..., key, dim)`` of a plain
    matrix product ``a @ b`` of two activations; None for anything else."""
    if equation is not None or len(ops) < 2 or func in (torch.baddbmm, torch.Tensor.baddbmm):
        return None
    a, b = ops[0], ops[1]
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or \
            a.ndim < 3 or a.ndim != b.ndim or a.shape[-1] != b.shape[-2] or \
            not a.is_floating_point():
        return None
    return a, b.transpose(-1, -2)


def _scales(module: nn.Module, dim: int) -> list[float]:
    found = [float(getattr(module, n)) for n in _SCALE_NAMES
             if isinstance(getattr(module, n, None), (int, float))]
    found += [1.0 / float(getattr(module, n)) for n in _TEMPERATURES
              if isinstance(getattr(module, n, None), (int, float)) and getattr(module, n)]
    return [*found, dim ** -0.5, 1.0 / math.sqrt(dim), 1.0]


def find_inputs(module: nn.Module, scores: torch.Tensor, products: list
                ) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """``(query, key, scale)`` whose ``scale * query @ key^T`` are ``scores`` (to
    float rounding), from the products this module call made; None if none fits."""
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point() or \
            not bool(torch.isfinite(scores).all()):
        return None  # masked scores: left to the probability form
    for entry in reversed(products):
        if len(entry) < 3 or entry[2] is None:
            continue
        (q, k), product = entry[2], entry[1]()
        if tuple(entry[0]) != tuple(scores.shape):
            continue
        with torch.no_grad():
            if product is None:  # a temporary, freed once scaled: the same product again
                product = torch.matmul(q, k.transpose(-1, -2))
            for scale in _scales(module, int(q.shape[-1])):
                if torch.allclose(product * scale, scores, rtol=1e-6, atol=1e-30):
                    return q, k, scale
    return None


def form_qk(session: Any) -> bool:
    """Whether the session's store keeps maps as queries and keys (``qk``/``qk16``)."""
    return session_form(session) != "probs"


def attach_qk(session: Any, m: Any, owner: Any, scores: torch.Tensor) -> None:
    """Queries and keys on map ``m`` (as ``m.qk``) when ``scores`` are their scaled
    product; otherwise the store keeps the probabilities, with its note."""
    found = find_inputs(owner.module, scores, owner.products)
    if found is None:
        return
    q, k, scale = found
    with torch.no_grad():
        m.qk = from_sdpa(q, k, None, False, scale, samples=m.samples, heads=m.heads,
                         half=session_form(session) == "qk16",
                         reduced=session.selection.reduce)


def effective_bias(session: Any, pending: Any, eff: torch.Tensor, m: Any
                   ) -> torch.Tensor | None:
    """``(head, 2L - 1)`` when the effective matrix (``eff``, the kept samples and heads)
    is the probabilities plus a relative bias (see :mod:`attnscope.store.relative_bias`);
    None otherwise, and the ``@effective`` entry stays probabilities."""
    from attnscope.capturing.selection import to_dense_layout
    from attnscope.store.relative_bias import toeplitz

    probs, _, _ = session.select(to_dense_layout(pending.probs.detach(), pending.key_dim),
                                 m.module, graph=False)
    if probs is None or probs.shape != eff.shape:
        return None
    with torch.no_grad():
        return toeplitz(eff.float() - probs.float())


def keep_effective(session: Any, pending: Any, used: torch.Tensor) -> None:
    """Keep the matrix that multiplied V when the model changed the probabilities after
    the softmax (``AttentionMap.effective``), and its relative bias for a q/k store."""
    m = pending.record
    if m is None:
        return
    eff, _, _ = session.select(to_dense_layout(used.detach(), pending.key_dim), m.module,
                               graph=False)
    m.effective = session.detach_copy(session.selection.finish(eff, 1), (used,))
    if m.qk is not None and m.reduced is None:  # a relative bias: q/k form for it too
        m.effective_bias = effective_bias(session, pending, eff, m)
