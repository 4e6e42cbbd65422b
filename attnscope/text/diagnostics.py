"""Three warning signs in one example's attention, each a number, a threshold and a
sentence:

* **diffuse** cross-attention: the mean normalised entropy of the target rows (1 =
  uniform over the source). A decoder that does not look at any source word in
  particular is not aligning and may hallucinate;
* **repetition**: the generated text repeats a token and the decoder self-attention
  puts most of its mass on the repeated tokens (at least half, and 1.25 times what
  uniform attention would give them): the model is copying itself;
* **positional**: most attention mass lands on the first/last key (often ``<s>`` or
  ``</s>``): attention parked on a position, not on content.

Computed on the head mean of one layer; NaN cells (keys a step did not have) are
ignored. Left out on purpose: model-specific calibration; the thresholds are arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DIFFUSE, REPEATED, EDGES = 0.85, 0.5, 0.5
SPECIAL = ("<s>", "</s>", "<pad>", "<bos>", "<eos>", "[CLS]", "[SEP]", "[PAD]", "<unk>")


@dataclass
class Finding:
    """One diagnostic: ``flagged`` when ``value`` crossed ``threshold``."""

    check: str
    flagged: bool
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalised_entropy(m: np.ndarray) -> float:
    """Mean over rows of entropy / log(keys in that row), ``m`` ``(query, key)``."""
    vals = []
    for row in np.asarray(m, dtype=np.float64):
        p = row[np.isfinite(row)]
        if p.size < 2 or p.sum() <= 0:
            continue
        p = p / p.sum()
        nz = p[p > 0]
        vals.append(float(-(nz * np.log(nz)).sum() / np.log(p.size)))
    return float(np.mean(vals)) if vals else float("nan")


def edge_mass(m: np.ndarray) -> float:
    """Mean over rows of the mass on the first and the last key."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    return float((m[:, 0] + m[:, -1]).mean()) if m.shape[1] > 1 else 1.0


def diffuse(m: np.ndarray, what: str, threshold: float = DIFFUSE) -> Finding:
    v = normalised_entropy(m)
    if v >= threshold:
        text = (f"diffuse {what}: mean normalised entropy {v:.2f} >= {threshold:.2f}: not "
                "aligning, may hallucinate")
    else:
        text = f"{what} is focused: mean normalised entropy {v:.2f} < {threshold:.2f}"
    return Finding("diffuse", bool(v >= threshold), v, threshold, text)


def positional(m: np.ndarray, keys: Sequence[str], what: str,
               threshold: float = EDGES) -> Finding:
    n = np.asarray(m).shape[1]
    v = edge_mass(m)
    ends = f"{keys[0]!r}, {keys[-1]!r}" if len(keys) == n and n else "first, last"
    # with 3 keys or fewer the two ends are most of the keys: no signal
    flagged = n > 3 and v >= threshold
    if flagged:
        text = (f"positional problem: {v:.0%} of {what} mass on the first/last tokens "
                f"({ends}) >= {threshold:.0%}")
    else:
        text = f"{what}: {v:.0%} of its mass on the first/last tokens ({ends})"
    return Finding("positional", bool(flagged), v, threshold, text)


def repetition(m: np.ndarray, inputs: Sequence[str], generated: Sequence[str],
               threshold: float = REPEATED) -> Finding:
    """``m`` ``(target, target)`` decoder self-attention; ``inputs[j]`` is key ``j``'s
    token. Mass on keys whose token occurs more than once among the inputs, over the
    rows that can see such a key."""
    words = [w for w in generated if w not in SPECIAL]
    repeated = {w for w in words if words.count(w) > 1}
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    on_rep = np.array([w in repeated for w in inputs[: m.shape[1]]], dtype=bool)
    if not repeated or not on_rep.any():
        return Finding("repetition", False, 0.0, threshold,
                       "no repeated tokens in the output")
    first = int(np.argmax(on_rep))
    rows = m[first:]  # rows that see at least one repeated token
    v = float(rows[:, on_rep].sum(axis=1).mean()) if len(rows) else 0.0
    # what uniform attention over the visible keys would give: the bar to clear
    seen = np.arange(first, m.shape[0])
    share = float(np.mean([on_rep[: min(t + 1, len(on_rep))].mean() for t in seen]))
    flagged = v >= threshold and v >= 1.25 * share
    shown = ", ".join(repr(w) for w in sorted(repeated))
    if flagged:
        text = (f"copying: repetition: the output repeats {shown} and decoder self-attention "
                f"puts {v:.0%} of its mass on the repeated tokens (>= {threshold:.0%}; "
                f"{share:.0%} if uniform)")
    else:
        text = (f"the output repeats {shown}; decoder self-attention puts {v:.0%} of its "
                f"mass on them ({share:.0%} if uniform): not copying")
    return Finding("repetition", bool(flagged), v, threshold, text)


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
