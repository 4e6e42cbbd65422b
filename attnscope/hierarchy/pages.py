"""``attnscope dashboard``: run a hierarchical (EEG / sleep-staging) model over the first
samples of its data, find its epoch / channel / temporal attention, and write one
dashboard and one figure per level for every sample."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from attnscope._files import write_text
from attnscope.errors import SelectionError
from attnscope.hierarchy.gather import collect
from attnscope.hierarchy.levels import Level


@dataclass
class DashboardResult:
    """What :func:`dashboard` found and wrote (``files`` in writing order)."""

    levels: dict[str, Level]
    samples: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def explain(self) -> list[str]:
        lines = [lv.describe() for lv in self.levels.values()]
        missing = [n for n in ("channel", "temporal") if n not in self.levels]
        if missing:
            lines.append(f"not found: {', '.join(missing)} level (name it with "
                         f"--{missing[0]}-module)")
        return lines


def dashboard(model: nn.Module, data: Any, out: str | os.PathLike, *, num_samples: int = 4,
              channel_names: Sequence[str] | None = None,
              class_names: Sequence[str] | None = None, epochs: Sequence[int] | None = None,
              epoch_module: str | None = None, channel_module: str | None = None,
              temporal_module: str | None = None, epoch_seconds: float = 30.0,
              batch_size: int = 16, dpi: float = 150, temporal_style: str = "auto"
              ) -> DashboardResult:
    """Dashboards of the first ``num_samples`` samples of ``data`` into ``out``.

    Example:
        >>> res = dashboard(model, test_set, "figs", num_samples=2,
        ...                 channel_names=["Fpz-Cz", "Pz-Oz", "EOG"], epochs=[3, 7])
        >>> print("\\n".join(res.explain()))

    Args:
        data: a Dataset or DataLoader of ``(x, y)``; ``x`` ideally ``(epoch, channel,
            time)`` per sample (then the signal is drawn), ``y`` the stage per epoch.
        epochs: epochs to detail; default per sample: the misclassified ones (up to 3)
            and the most attended one.
        epoch_module, channel_module, temporal_module: globs naming each level; levels
            left out are found from the call structure.
        epoch_seconds: length of one epoch, for the time axis.
        temporal_style: ``"heatmap"`` (query x key per epoch and channel), ``"bars"``
            (what each time step receives) or ``"auto"`` (heatmap when the temporal
            attention has several queries); the signal gets its own axis either way.
    """
    from attnscope.plot.hierarchy import pick_style

    pick_style(temporal_style, 2)  # a bad style is refused before the model runs
    found = collect(model, data, num_samples=num_samples, epoch_module=epoch_module,
                    channel_module=channel_module, temporal_module=temporal_module,
                    channel_names=channel_names, batch_size=batch_size)
    levels = found.levels
    if epochs is not None:  # checked before anything is written
        _chosen(epochs, levels["epoch"].weights.shape[-1], [], levels["epoch"].weights[0])
    result = DashboardResult(levels, [], notes=list(found.notes))
    names = _checked_names(class_names, found.num_classes)  # before anything is written
    if names is None and not class_names:
        names = _class_names(data, model)
        if names is not None and found.num_classes and len(names) < found.num_classes:
            result.notes.append(f"the data names {len(names)} classes but the model has "
                                f"{found.num_classes}: labelled by class index")
            names = None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(len(levels["epoch"].weights)):
        result.samples.append(_sample(result, out, i, found.true, found.pred, names,
                                      channel_names, epochs, found.signal, epoch_seconds, dpi,
                                      temporal_style))
    summary = out / "dashboard.json"
    write_text(summary, json.dumps({"levels": {k: {"module": v.module, "found": v.describe()}
                                               for k, v in levels.items()},
                                    "samples": result.samples, "notes": result.notes},
                                   indent=1, ensure_ascii=False) + "\n")
    result.files.append(summary)
    return result


def _checked_names(names: Sequence[str] | None, classes: int | None) -> list[str] | None:
    if not names:
        return None
    if classes is not None and len(names) < classes:
        raise SelectionError(f"--class-names gives {len(names)} names ({', '.join(names)}) "
                             f"but the model predicts {classes} classes; give one name per "
                             "class, in class-index order")
    return list(names)


def _class_names(data: Any, model: nn.Module) -> list[str] | None:
    names = getattr(getattr(data, "dataset", data), "classes", None)
    if names is None:
        labels = getattr(getattr(model, "config", None), "id2label", None)
        names = [labels[k] for k in sorted(labels)] if isinstance(labels, dict) else None
    return [str(n) for n in names] if names is not None else None


def _chosen(epochs: Sequence[int] | None, n: int, wrong: list[int], inter: np.ndarray
            ) -> list[int]:
    if epochs is not None:
        bad = [e for e in epochs if not -n <= e < n]
        if bad:
            raise SelectionError(f"--epochs {bad[0]} out of range: samples have {n} epochs")
        return sorted({e % n for e in epochs})
    with np.errstate(invalid="ignore"):
        attended = int(np.nanargmax(np.nanmean(inter, axis=(0, 1))))  # most attention received
    return sorted(set(wrong[:3]) | {attended})


def _sample(res: DashboardResult, out: Path, i: int, true: Any, pred: Any, names: Any,
            channel_names: Any, epochs: Any, signal: Any, seconds: float, dpi: float,
            style: str = "auto") -> dict[str, Any]:
    from attnscope.plot import epoch_labels, plot_dashboard
    from attnscope.plot.hierarchy import plot_channels, plot_epochs, plot_temporal

    inter = res.levels["epoch"].weights[i]  # (head, epoch, epoch)
    n = inter.shape[-1]
    labels = colors = None
    wrong: list[int] = []
    if true is not None:
        labels, colors = epoch_labels(true[i].tolist(), pred[i].tolist(), names)
        wrong = [e for e in range(n) if true[i, e] != pred[i, e]]
    chosen = _chosen(epochs, n, wrong, inter)
    chan = res.levels.get("channel")
    temp = res.levels.get("temporal")
    sig = signal[i] if signal is not None else None
    files = [out / f"attention_dashboard_sample_{i}.png", out / f"epoch_attention_sample_{i}.png"]
    plot_dashboard(inter, channel_attention=chan.weights[i] if chan else None,
                   temporal_attention=temp.weights[i] if temp else None,
                   true=true[i].tolist() if labels else None,
                   pred=pred[i].tolist() if labels else None, class_names=names,
                   channel_names=channel_names, epochs=chosen, signal=sig,
                   channels=list(range(temp.weights.shape[2]))[:8] if temp else None,
                   epoch_seconds=seconds, temporal_style=style,
                   title=f"sample {i}: hierarchical attention",
                   dpi=dpi, path=files[0])
    plot_epochs(inter, labels=labels, colors=colors, dpi=dpi, path=files[1],
                title=f"sample {i}: attention across epochs ({res.levels['epoch'].module})")
    doc: dict[str, Any] = {"sample": i, "epochs": chosen, "labels": labels,
                           "misclassified": wrong}
    for e in chosen:
        tag = f" \u00b7 {labels[e]}" if labels else ""
        if chan is not None:
            files.append(out / f"channel_attention_sample_{i}_epoch_{e}.png")
            plot_channels(chan.weights[i, e], channel_names=channel_names, dpi=dpi,
                          path=files[-1], title=f"sample {i}, epoch {e}{tag}\nattention "
                          f"across channels ({chan.module})")
        if temp is None:
            continue
        for c in range(temp.weights.shape[2]):
            cname = channel_names[c] if channel_names else f"channel {c}"
            files.append(out / f"temporal_attention_sample_{i}_epoch_{e}_ch_{c}.png")
            plot_temporal(temp.weights[i, e, c], signal=None if sig is None else sig[e, c],
                          seconds=seconds, style=style, dpi=dpi, path=files[-1],
                          title=f"sample {i}, epoch {e}{tag}, {cname} ({temp.module})")
    res.files += files
    doc["files"] = [f.name for f in files]
    return doc
