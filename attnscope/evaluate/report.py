"""Writing what evaluation found: the figures for the task and the results JSON
(strict JSON: NaN from a diverged model becomes null; numeric lists on one line)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from torch import nn

from attnscope._files import write_text
from attnscope.evaluate import class_figures, figures
from attnscope.evaluate.predictions import Predictions

# with a prefix, files take the names researchers' own evaluation scripts give them
# (``MODEL_scatter.png``, ``MODEL_attention_heatmap.png``, ``MODEL_attention_weights.npy``)
PREFIXED = {"predicted_vs_actual": "scatter.png", "attention_plot": "attention_heatmap.png",
            "attention_npy": "attention_weights.npy", "attention_store": "attention"}


def file_name(key: str, default: str, prefix: str | None = None) -> str:
    """``default``, or ``<prefix>_<script name>`` when a prefix is given."""
    return f"{prefix}_{PREFIXED.get(key, default)}" if prefix else default


def write_figures(pred: Predictions, metrics: dict[str, Any], out: Path, dpi: float,
                  names: list[str] | None = None, prefix: str | None = None
                  ) -> dict[str, Path]:
    """Regression: predicted vs actual, residuals, error distribution; classification:
    confusion matrix; both: timeline. Returns ``{name: path}``."""
    files: dict[str, Path] = {}

    def path(key: str) -> Path:
        files[key] = out / file_name(key, f"{key}.png", prefix)
        return files[key]

    if pred.task == "regression":
        figures.plot_predicted_vs_actual(pred, metrics, path("predicted_vs_actual"), dpi)
        figures.plot_residuals(pred, path("residuals"), dpi)
        figures.plot_error_distribution(pred, metrics, path("error_distribution"), dpi)
    else:
        class_figures.plot_confusion_matrix(metrics, path("confusion_matrix"), dpi)
    figures.plot_timeline(pred, path("timeline"), dpi, names)
    return files


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(doc), indent=2, allow_nan=False, ensure_ascii=False)
    # one line per innermost list of numbers (confusion-matrix rows, shapes)
    text = re.sub(r"\[([-\d.eE,\s]+|null)\]",
                  lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    write_text(path, text + "\n")


def _finite(value: Any) -> Any:
    """NaN/inf (a diverged model) become null, so the file stays strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def class_names(data: Any, model: nn.Module, k: int) -> list[str] | None:
    """Class names from the data set (``classes``) or a Hugging Face ``id2label``."""
    dataset = getattr(data, "dataset", data)
    names = getattr(dataset, "classes", None)
    if names is None:
        labels = getattr(getattr(model, "config", None), "id2label", None)
        names = [labels[i] for i in sorted(labels)] if isinstance(labels, dict) else None
    return [str(n) for n in names] if names is not None and len(names) == k else None
