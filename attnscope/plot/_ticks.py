"""Axis labels for attention matrices: tokens, time steps, channels, ``true->pred``.

Labels are drawn at every cell while they fit at a readable size (4.5 pt and up); beyond
that only every n-th label is drawn and the axis title says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MIN_FONT = 4.5
MAX_FONT = 9.0
LINE = 1.3  # label pitch as a multiple of the font size


def clean(label: Any, width: int = 18) -> str:
    """Printable label: mathtext ``$`` escaped, control characters shown, long ones cut."""
    text = str(label).replace("\n", "\\n").replace("\t", "\\t").replace("$", r"\$")
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def inches_needed(n: int) -> float:
    """Length of an axis that shows ``n`` labels at the smallest readable size."""
    return n * MIN_FONT * LINE / 72


def set_labels(ax: Any, axis: str, labels: Sequence[Any] | None, n: int, inches: float,
               title: str | None = None, colors: Sequence[str] | None = None) -> None:
    """Ticks of ``axis`` ("x" or "y") for ``n`` cells spanning ``inches`` of the figure."""
    from matplotlib.ticker import MaxNLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    if labels is None:
        target.set_major_locator(MaxNLocator(nbins=8, integer=True))
        if title:
            (ax.set_xlabel if axis == "x" else ax.set_ylabel)(title)
        return
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} {title or axis} labels for {n} cells")
    size = max(MIN_FONT, min(MAX_FONT, inches * 72 / max(n, 1) / LINE))
    every = max(1, math.ceil(inches_needed(n) / max(inches, 1e-3))) if size <= MIN_FONT else 1
    pos = list(range(0, n, every))
    text = [clean(labels[i]) for i in pos]
    target.set_ticks(pos)
    target.set_ticklabels(text, fontsize=size)
    if axis == "x":
        longest = max((len(t) for t in text), default=0)
        if longest > 2 or len(pos) > 24:
            angle = 90 if len(pos) > 24 else 45
            for t in ax.get_xticklabels():
                t.set_rotation(angle)
                t.set_ha("right" if angle == 45 else "center")
                t.set_rotation_mode("anchor" if angle == 45 else "default")
    if colors is not None:
        ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
        for t, i in zip(ticks, pos):
            t.set_color(colors[i])
    ax.tick_params(axis=axis, length=2, pad=1.5)
    if title:
        note = f" (every {_ordinal(every)} label)" if every > 1 else ""
        (ax.set_xlabel if axis == "x" else ax.set_ylabel)(title + note)


def epoch_labels(true: Sequence[Any], pred: Sequence[Any],
                 class_names: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``"W->N1"`` per epoch and a colour per label (mistakes in red).

    Example:
        >>> epoch_labels([0, 1], [0, 2], ["W", "N1", "N2"])
        (['W->W', 'N1->N2'], ['black', 'tab:red'])
    """
    if len(true) != len(pred):
        raise ValueError(f"got {len(true)} true labels and {len(pred)} predictions")

    def name(c: Any) -> str:
        if class_names is not None and not isinstance(c, str):
            return str(class_names[int(c)])
        return str(c)

    labels = [f"{name(t)}->{name(p)}" for t, p in zip(true, pred)]
    colors = ["black" if name(t) == name(p) else "tab:red" for t, p in zip(true, pred)]
    return labels, colors


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
