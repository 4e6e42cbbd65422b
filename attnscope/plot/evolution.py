"""How attention changes over training: one map at several steps side by side, and
per-head statistics (entropy, max weight ...) as lines across steps."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.plot import _figure, _matrix, _ticks
from attnscope.plot.heatmap import axis_labels, head_matrix
from attnscope.sources import is_store, read_dense

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _steps(source: Any, module: str, steps: Sequence[str] | None, limit: int) -> list[str]:
    if steps is not None:
        return list(steps)
    have = ([s for s in source.steps if source.segments(module, s)] if is_store(source)
            else list(source))
    if len(have) <= limit:
        return have
    pick = np.unique(np.linspace(0, len(have) - 1, limit).round().astype(int))
    return [have[i] for i in pick]


def _pick_steps(source: Any, module: str | None, steps: Sequence[str] | None, limit: int
                ) -> tuple[list[str], str]:
    """The steps to draw and a note saying what the default left out: a split such as
    ``test`` is not a training step, and more than ``limit`` steps are thinned."""
    if steps is not None:
        return list(steps), ""
    from attnscope.store.schema import epoch_of

    have = _steps(source, module, None, 10**9)
    trained = [s for s in have if epoch_of(s) is not None]
    notes = []
    if trained and len(trained) < len(have):
        apart = [s for s in have if epoch_of(s) is None]
        notes.append(f"{', '.join(apart)} not shown (not a training epoch; pass steps= to "
                     "add it)")
        have = trained
    if len(have) > limit:
        picked = _steps(have, module, None, limit)
        notes.append(f"{len(picked)} of {len(have)} epochs shown, evenly spaced "
                     "(max_steps= or steps= for others)")
        have = picked
    return have, "; ".join(notes)


def _read(source: Any, module: str | None, step: str, sample: int, heads: Any) -> Any:
    if is_store(source):
        return read_dense(source, module, step, sample, heads)
    if step not in source:
        raise KeyError(f"no step {step!r}; have {list(source)}")
    return read_dense(source[step], module, None, sample, heads)


def plot_evolution(source: Any, module: str | None = None, *,
                   steps: Sequence[str] | None = None, sample: int = 0, head: int | str = 0,
                   labels: Sequence[Any] | None = None, max_steps: int = 6,
                   cmap: Any = "viridis", norm: Any = "linear", mask: Any = "auto",
                   reduce: str = "mean", panel_size: float = 2.6, title: str | None = None,
                   dpi: float = 150, path: str | os.PathLike | None = None) -> Figure:
    """The same map (module, head, sample) at several training steps, one colour scale.

    Example:
        >>> store = attnscope.open_store("runs/attn")
        >>> fig = plot_evolution(store, "encoder.layers.0.self_attn", head="mean")

    Args:
        source: a store with steps such as ``epoch_000``, or ``{step: map or array}``.
        steps: which steps (default: the training epochs, up to ``max_steps`` evenly
            spaced, first and last included; what is left out, a ``test`` split or
            thinned epochs, is said under the title).
    """
    names, left_out = _pick_steps(source, module, steps, max_steps)
    sel = "mean" if head == "mean" else [head]
    dense = [_read(source, module, s, sample, sel) for s in names]
    mats = [head_matrix(d, head)[0] for d in dense]
    q, k = mats[0].shape
    qlab, klab = axis_labels(dense[0], both=labels)
    px = int(panel_size * dpi)
    which = "mean" if head == "mean" else 0
    ready = [_matrix.prepare(m, d.mask_for(which, mask), (px, px), reduce)
             for m, d in zip(mats, dense)]
    vmax = max(p.vmax for p in ready)
    fig = _figure.new_figure((panel_size * len(names) + 1.4, panel_size + 1.4), dpi)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for i, (ax, p) in enumerate(zip(axes, ready)):
        im = _matrix.draw_matrix(ax, p, cmap=cmap, norm=norm, vmax=vmax)
        ax.set_title(names[i], fontsize=9)
        small = max(q, k) <= 40
        _ticks.set_labels(ax, "x", klab if small else None, k, panel_size * 0.8)
        _ticks.set_labels(ax, "y", qlab if small else None, q, panel_size * 0.8)
        ax.tick_params(labelleft=i == 0)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="attention weight")
    what = head_matrix(dense[0], head)[1]
    note = _matrix.block_note(ready[0].block, (q, k), reduce)
    line = " \u00b7 ".join(x for x in (dense[0].module or module, f"sample {sample}", what) if x)
    notes = "\n".join(n for n in (note, left_out) if n)
    fig.suptitle((title or line) + (f"\n{notes}" if notes else ""), fontsize=10)
    return _figure.save(fig, path, dpi)


def plot_head_stats(source: Any, module: str | None = None, *,
                    steps: Sequence[str] | None = None, samples: Sequence[int] | None = None,
                    stats: Sequence[str] = ("entropy", "peak"), cmap: str | None = None,
                    title: str | None = None, dpi: float = 150,
                    path: str | os.PathLike | None = None) -> Figure:
    """Per-head statistics across training steps, one panel per statistic.

    Example:
        >>> fig = plot_head_stats(store, "encoder.layers.0.self_attn",
        ...                       stats=("entropy", "peak", "distance"))

    Statistics: any of ``attnscope.analysis.METRICS`` (``entropy`` in nats, ``peak``
    largest weight per query, ``diagonal``, ``distance`` ...), computed by
    :func:`attnscope.analysis.metric_curves` (the numbers ``attnscope stats`` reports),
    each the mean over queries and samples.
    """
    import matplotlib

    if isinstance(source, Mapping) and not source:
        raise ValueError("no steps to plot")
    from attnscope.analysis import metric_curves
    from attnscope.analysis.metrics import DESCRIBE

    names, values = metric_curves(source, module, stats, steps=steps, samples=samples)
    fig = _figure.new_figure((4.2 * len(stats) + 1.2, 3.4), dpi)
    axes = fig.subplots(1, len(stats), squeeze=False)[0]
    x = np.arange(len(names))
    nheads = values[stats[0]].shape[1]
    cmap = cmap or ("tab10" if nheads <= 10 else "viridis")  # distinct hues per head
    colors = matplotlib.colormaps[cmap].resampled(max(nheads, 2))
    for ax, s in zip(axes, stats):
        v = values[s]  # (step, head)
        for h in range(nheads):
            ax.plot(x, v[:, h], marker="o", ms=3, lw=1.2, color=colors(h), label=f"head {h}")
        ax.plot(x, np.nanmean(v, axis=1), color="black", ls="--", lw=1.4, label="mean")
        ax.set_title(DESCRIBE.get(s, s), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        every = max(1, int(np.ceil(len(names) / 8)))
        ax.set_xticks(x[::every], [_ticks.clean(n) for n in names[::every]], rotation=30,
                      ha="right", fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False)
    head = f"{module or ''} \u00b7 per-head statistics across steps".strip(" \u00b7")
    fig.suptitle(title or head, fontsize=10)
    return _figure.save(fig, path, dpi)
