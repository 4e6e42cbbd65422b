"""Three warning signs in one example's attention, each a number, a threshold relative
to what uniform attention gives over the same keys, and a sentence:

* **diffuse** cross-attention: normalised entropy closer to uniform than random
  attention is (needs 4 or more source tokens); a decoder that looks at no source word
  in particular is not aligning and may hallucinate;
* **repetition**: the generated text repeats a token and decoder self-attention puts
  far more of its mass on the repeated tokens than uniform attention would: the model
  is copying itself;
* **positional**: the first/last source tokens get far more mass than uniform attention
  gives them, whatever the query (3 or more rows): attention parked on a position,
  not on content. When both ends are special tokens (``<s>``, ``</s>``) that is the
  usual harmless sink, reported but not flagged.

The numbers are the ones ``attnscope stats`` reports (:mod:`attnscope.analysis`: one
vocabulary, the same allowed keys, the same :class:`~attnscope.analysis.Thresholds`),
computed on the head mean of one layer; NaN cells (keys a step never had) and masked
keys are not keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnscope.analysis import Block, Finding, Thresholds, allowed_keys, map_metrics
from attnscope.analysis.baselines import mass_lift, random_norm_entropy
from attnscope.analysis.diagnostics import block_flags
from attnscope.analysis.metrics import SPECIAL, valid_rows

THRESHOLDS = Thresholds()


def _block(m: np.ndarray, what: str, keys: Sequence[str] | None = None) -> Block:
    w = np.asarray(m, dtype=np.float32)[None, None]
    k = w.shape[-1]
    return Block(what, "", "cross", np.arange(1), np.arange(1), w,
                 key_tokens=list(keys) if keys is not None and len(keys) == k else None)


def normalised_entropy(m: np.ndarray) -> float:
    """Mean over rows of entropy / log(allowed keys), ``m`` ``(query, key)``."""
    w = np.asarray(m, dtype=np.float32)[None, None]
    return float(map_metrics(w, metrics=("norm_entropy",))["norm_entropy"][0, 0])


def edge_mass(m: np.ndarray) -> float:
    """Mean over rows of the mass on the first and the last key."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    return float((m[:, 0] + m[:, -1]).mean()) if m.shape[1] > 1 else 1.0


def diffuse(m: np.ndarray, what: str, t: Thresholds = THRESHOLDS) -> Finding:
    value, flagged, _ = (x[0, 0] for x in block_flags(_block(m, what), t=t)["diffuse"])
    w = np.asarray(m, dtype=np.float32)[None, None]
    keys = allowed_keys(w).sum(-1)[valid_rows(w)]
    rand = float(np.nanmean(random_norm_entropy(keys))) if (keys >= 4).any() else np.nan
    if np.isnan(value):
        return Finding("diffuse", what, flagged=False, value=float("nan"), threshold=t.diffuse,
                       message=f"{what}: too few keys per row to judge diffuseness")
    level = f"mean normalised entropy {value:.2f}; uniform 1.00, random rows ~{rand:.2f}"
    text = (f"diffuse {what}: {level}: closer to uniform than to random, not aligning, "
            "may hallucinate") if flagged else f"{what} is focused: {level}"
    return Finding("diffuse", what, value=float(value), flagged=bool(flagged), uniform=1.0,
                   threshold=t.diffuse, message=text)


def positional(m: np.ndarray, keys: Sequence[str], what: str,
               t: Thresholds = THRESHOLDS) -> Finding:
    n = np.asarray(m).shape[1]
    flags = block_flags(_block(m, what, keys), t=t)
    ends = f"{keys[0]!r}, {keys[-1]!r}" if len(keys) == n and n else "first, last"
    if "positional" not in flags:  # under 3 rows or keys: "whatever the query" can't be told
        return Finding("positional", what, flagged=False, value=edge_mass(m),
                       threshold=t.positional,
                       message=f"{what}: too few tokens to judge positional attention")
    value, flagged, uniform = (float(x[0, 0]) for x in flags["positional"])
    flagged = bool(flagged)
    hit = bool(flags["sink"][1][0, 0])
    share = f"{value:.0%} of {what} mass on the first/last tokens ({ends}); uniform {uniform:.0%}"
    if flagged:
        text = f"positional problem: {share}"
    elif hit:
        text = f"{what}: sink on special tokens, usually harmless: {share}"
    else:
        text = f"{what}: {share}"
    return Finding("positional", what, value=value, flagged=flagged, uniform=uniform,
                   threshold=t.positional, message=text)


def repetition(m: np.ndarray, inputs: Sequence[str], generated: Sequence[str],
               t: Thresholds = THRESHOLDS) -> Finding:
    """``m`` ``(target, target)`` decoder self-attention; ``inputs[j]`` is key ``j``'s
    token. Mass on keys whose token the output repeats, against the share uniform
    attention over the visible keys would give them."""
    words = [w for w in generated if not SPECIAL.match(w)]
    repeated = {w for w in words if words.count(w) > 1}
    w = np.asarray(m, dtype=np.float32)[None, None]
    k = w.shape[-1]
    on = np.array([x in repeated for x in list(inputs)[:k]] + [False] * (k - len(inputs)))
    if not repeated or not on.any():
        return Finding("repetition", "decoder self-attention", flagged=False, value=0.0,
                       threshold=t.repetition, message="no repeated tokens in the output")
    rows = valid_rows(w) & (np.arange(w.shape[2]) >= int(np.argmax(on)))
    z = np.where(rows[..., None], np.nan_to_num(w), 0.0)
    mass, uniform, up = (float(x[0, 0]) for x in mass_lift(z, on, allowed_keys(w), rows))
    flagged = bool(np.nan_to_num(up) >= t.repetition)
    shown = ", ".join(repr(x) for x in sorted(repeated))
    if flagged:
        text = (f"copying: repetition: the output repeats {shown} and decoder self-attention "
                f"puts {mass:.0%} of its mass on the repeated tokens ({uniform:.0%} if "
                "uniform)")
    else:
        text = (f"the output repeats {shown}; decoder self-attention puts {mass:.0%} of its "
                f"mass on them ({uniform:.0%} if uniform): not copying")
    return Finding("repetition", "decoder self-attention", value=mass, flagged=flagged,
                   uniform=uniform, threshold=t.repetition, message=text)


def diagnose(cross: np.ndarray | None, decoder_self: np.ndarray | None,
             encoder_self: np.ndarray | None, source: Sequence[str],
             inputs: Sequence[str] = (), generated: Sequence[str] = (),
             layer: int | None = None) -> list[Finding]:
    """The findings for one example from head-mean maps of one layer: cross and decoder
    self-attention of a seq2seq model, or the self-attention of an encoder-only one."""
    at = "" if layer is None else f" (layer {layer})"
    found = []
    if cross is not None:
        found.append(diffuse(cross, "cross-attention" + at))
        found.append(positional(cross, source, "cross-attention" + at))
    elif encoder_self is not None:
        found.append(diffuse(encoder_self, "self-attention" + at))
        found.append(positional(encoder_self, source, "self-attention" + at))
    if decoder_self is not None:
        found.append(repetition(decoder_self, inputs, generated))
    return found
