"""The hierarchical dashboard of one stored sample: the epoch, channel and temporal
levels assembled from a store's entries (``attnscope plot --kind dashboard``).

A store written while a hierarchical model ran holds one entry per module call
(``temporal``, ``temporal[1]`` ...) with folded rows (epochs or channels in the batch
axis); the levels are told apart the way :func:`attnscope.hierarchy.collect` tells them
apart in a recording, from that call structure, or named with globs.
Left out on purpose: the input signal (a store holds attention, not inputs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attnscope.errors import SelectionError
from attnscope.hierarchy.levels import Level, find_levels, survey_store

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def store_levels(store: Any, step: str, globs: dict[str, str | None] | None = None
                 ) -> dict[str, Level]:
    """``{"epoch" | "channel" | "temporal": Level}`` of every stored sample of ``step``."""
    found, batch = survey_store(store, step)
    if not found:
        raise SelectionError(f"step {step!r} holds no dense attention to build a dashboard "
                             "from")
    try:
        return find_levels(store, batch, dict(globs or {}), found=found, step=step)
    except SelectionError as err:  # ``attnscope plot`` names the epoch level --module
        raise SelectionError(str(err).replace("--epoch-module", "--module")) from None


def plot_stored_dashboard(store: Any, step: str, sample: int = 0, *,
                          globs: dict[str, str | None] | None = None,
                          channel_names: Sequence[str] | None = None,
                          temporal_style: str = "auto", cmap: str = "viridis",
                          dpi: float = 150, path: str | os.PathLike | None = None
                          ) -> tuple[Figure, dict[str, Level]]:
    """Every level of one stored sample on one page, labelled ``true->pred`` when the
    step holds per-sample ``classes`` (or ``sample_epoch_labels``) labels."""
    from attnscope.plot import plot_dashboard
    from attnscope.sources import read_dense

    levels = store_levels(store, step, globs)
    epoch = levels["epoch"]
    n = epoch.weights.shape[0]
    if not -n <= sample < n:
        raise SelectionError(f"sample {sample} out of range: step {step!r} holds {n} samples")
    dense = read_dense(store, epoch.module, step, sample, [0])
    classes = dense.labels.get("classes")
    pairs = [str(c).split("->") for c in classes] if isinstance(classes, list) and \
        len(classes) == epoch.weights.shape[-1] else None
    names = channel_names or dense.labels.get("channels")
    chan, temp = levels.get("channel"), levels.get("temporal")
    fig = plot_dashboard(
        epoch.weights[sample], channel_attention=chan.weights[sample] if chan else None,
        temporal_attention=temp.weights[sample] if temp else None,
        true=[p[0] for p in pairs] if pairs else None,
        pred=[p[-1] for p in pairs] if pairs else None,
        channel_names=list(names) if isinstance(names, (list, tuple)) else None,
        temporal_style=temporal_style, cmap=cmap, dpi=dpi, path=path,
        title=f"{step} \u00b7 sample {sample % n}: " + ", ".join(
            f"{lv} {level.module!r}" for lv, level in levels.items()))
    return fig, levels
