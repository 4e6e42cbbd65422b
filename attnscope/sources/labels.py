"""Which label names which axis of a map: the one label resolver.

Every view (figures, the HTML viewer, the metrics that need tokens) asks here, so a
label lands on the same axis everywhere. The store's convention (step labels, one list
per axis or one list per sample) is documented in :mod:`attnscope.store.schema`.

Which side of an encoder-decoder a self-attention map belongs to decides whether its
axes get ``source_tokens`` or ``target_tokens``. It is read, in this order, from a
``sides`` mapping the caller gives (globs over module names), from the module name (an
``encoder``/``enc`` or ``decoder``/``dec`` component, outermost first), then, when
both lists are there, from the map itself (a causal map is the decoder's), and finally
from lengths (only one of the two lists fits). When nothing tells, neither is used: a
wrong label is worse than none. Cross-attention has target rows and source columns.

Left out on purpose: padding or truncating a list that does not fit its axis.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SIDE_KEYS = {"source": "source_tokens", "target": "target_tokens"}
AXIS_KEYS = {"query": "query_tokens", "key": "key_tokens"}
# labels of any axis whose length they fit, after the axis- and side-specific ones
GENERIC_KEYS = ("tokens", "time_steps", "channels", "classes")
NODE_KEYS = ("nodes", "time_steps", "tokens")  # graph maps: node names
SAMPLE_PREFIX = "sample_"
# per-sample lists stored under another name: true->pred of each night's epochs
ALIASES = {"epoch_labels": "classes"}

_ENC = re.compile(r"(^|[^a-z])enc(oder)?s?([^a-z]|$)")
_DEC = re.compile(r"(^|[^a-z])dec(oder)?s?([^a-z]|$)")


@dataclass
class AxisLabels:
    """Labels of both axes of one map, and the key each came from (for messages/tests)."""

    query: list[str] | None
    key: list[str] | None
    query_from: str | None = None
    key_from: str | None = None


def sample_labels(labels: Mapping[str, Any] | None, sample: int,
                  total: int | None = None) -> dict[str, Any]:
    """The step's labels as seen by one sample: ``sample_<key>`` lists (one list per
    stored sample) become ``<key>`` for ``sample``; plain lists stay as they are.

    A plain ``<key>`` holding one list per sample (``total`` of them) is read the same
    way, as stores written before the ``sample_`` prefix did.
    """
    out = dict(labels or {})
    for key, value in (labels or {}).items():
        if not _per_sample(value):
            continue
        if key.startswith(SAMPLE_PREFIX):
            name = key[len(SAMPLE_PREFIX):]
        elif total is not None and len(value) == total:
            name = key
        else:
            continue
        if 0 <= sample < len(value):
            out[name] = value[sample]
            if name in ALIASES:
                out.setdefault(ALIASES[name], value[sample])
        elif name == key:
            out.pop(name)
    return out


def has_sample_labels(labels: Mapping[str, Any] | None) -> bool:
    """Whether any label differs from sample to sample."""
    return any(k.startswith(SAMPLE_PREFIX) and _per_sample(v) for k, v in (labels or {}).items())


def _per_sample(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, (list, tuple)) for v in value))


def name_side(module: str) -> str | None:
    """``"source"`` for an encoder's module, ``"target"`` for a decoder's, from the
    outermost name component that says one of them (and not both)."""
    for part in module.split("."):
        words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", part).lower()
        enc, dec = bool(_ENC.search(words)), bool(_DEC.search(words))
        if enc != dec:
            return "source" if enc else "target"
    return None


def is_causal(weights: np.ndarray | None) -> bool | None:
    """True when every cell above the diagonal of a square ``(..., query, key)`` map is
    zero or missing in every head; None when the map cannot tell (not square, 1 query)."""
    if weights is None or weights.ndim < 2:
        return None
    q, k = weights.shape[-2:]
    if q != k or q < 2:
        return None
    rows, cols = np.triu_indices(q, 1)
    upper = weights[..., rows, cols]
    return bool(not np.any(np.nan_to_num(upper, nan=0.0) != 0))


def self_side(module: str, sides: Mapping[str, str] | None = None) -> str | None:
    """Side of a self-attention map from the caller's ``sides`` globs, else its name."""
    for pattern, side in (sides or {}).items():
        if fnmatch.fnmatchcase(module, pattern):
            if side not in SIDE_KEYS:
                raise ValueError(f"sides[{pattern!r}] must be 'source' or 'target', "
                                 f"not {side!r}")
            return side
    return name_side(module)


def resolve(stored: Mapping[str, Any] | None, q: int, k: int, *, module: str = "",
            kind: str | None = None, weights: np.ndarray | None = None,
            sides: Mapping[str, str] | None = None,
            given: Mapping[str, Sequence[Any] | None] | None = None,
            generic: Sequence[str] = GENERIC_KEYS) -> AxisLabels:
    """Labels for the ``(q, k)`` axes of one map of ``module``.

    Args:
        stored: one sample's labels (see :func:`sample_labels`).
        kind: ``"self"``, ``"cross"`` or ``"graph"`` (graph: node labels on both axes).
        weights: the map, ``(..., query, key)``: a causal one is the decoder's.
        sides: ``{glob: "source" | "target"}`` for self-attention modules whose name
            does not say which side of an encoder-decoder they are on.
        given: the caller's lists under the same keys (``tokens``, ``query_tokens``,
            ``key_tokens``, ``source_tokens``, ``target_tokens``); they win over stored
            ones, and like them are used only where their length fits.
        generic: the axis-agnostic keys to fall back on, in order (token metrics ask
            for ``("tokens",)`` only: time steps or ``true->pred`` are not tokens).
    """
    given = {key: v for key, v in (given or {}).items() if v is not None}
    stored = stored or {}
    if kind == "graph":
        keys = {"query": NODE_KEYS, "key": NODE_KEYS}
    else:
        side = {"query": "target", "key": "source"} if kind == "cross" else None
        if side is None:
            s = self_side(module, sides)
            if s is None:
                s = _side_by_length(stored, given, q, k, weights)
            side = {"query": s, "key": s}
        keys = {axis: ((AXIS_KEYS[axis],) + ((SIDE_KEYS[side[axis]],) if side[axis] else ())
                       + tuple(generic)) for axis in ("query", "key")}
    out = AxisLabels(None, None)
    for axis, n in (("query", q), ("key", k)):
        if axis == "query" and q == 1 and k > 1:
            continue  # 1-D attention: a single query row has no labels of its own
        for origin, found in (("given", given), ("store", stored)):
            hit = next((key for key in keys[axis] if _fits(found.get(key), n)), None)
            if hit is not None:
                setattr(out, axis, [str(x) for x in found[hit]])
                setattr(out, axis + "_from", f"{origin}:{hit}")
                break
    return out


def _side_by_length(stored: Mapping[str, Any], given: Mapping[str, Any], q: int, k: int,
                    weights: np.ndarray | None) -> str | None:
    """With both source and target lists present (an encoder-decoder), the map's mask
    decides (causal: the decoder's); otherwise the one side whose tokens fit."""
    present = [s for s, key in SIDE_KEYS.items() if key in given or key in stored]
    if len(present) == 2:
        causal = is_causal(weights)
        if causal is not None:
            return "target" if causal else "source"
    fit = [s for s, key in SIDE_KEYS.items()
           if any(_fits(d.get(key), q) and _fits(d.get(key), k) for d in (given, stored))]
    return fit[0] if len(fit) == 1 else None


def _fits(value: Any, n: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == n
            and not any(isinstance(v, (list, tuple, dict)) for v in value))
