"""One figure into any Lightning logger, each the way it takes images.

Lightning's loggers share ``log_metrics`` for scalars but have no common call for
figures: TensorBoard's ``SummaryWriter.add_figure``, MLflow's ``MlflowClient.log_figure``
(an artifact of the run), ``log_image`` on Weights & Biases / Neptune-style loggers, and
nothing at all on the CSV logger, which gets a PNG file in its log folder instead.
Left out on purpose: loggers with none of these (a figure is not worth an error there).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def log_figure_to(logger: Any, tag: str, figure: Any, step: str, global_step: int) -> str:
    """Send ``figure`` to ``logger`` under ``tag``; returns how (``"figure"``,
    ``"artifact"``, ``"image"``, ``"file"`` or ``"none"``)."""
    experiment = _experiment(logger)
    if hasattr(experiment, "add_figure"):  # TensorBoard SummaryWriter
        experiment.add_figure(tag, figure, global_step=global_step)
        return "figure"
    run_id = getattr(logger, "run_id", None)
    if run_id is not None and hasattr(experiment, "log_figure"):  # MLflow client
        experiment.log_figure(run_id, figure, f"{_safe(tag)}/{step}.png")
        return "artifact"
    if hasattr(logger, "log_image"):  # Weights & Biases, Neptune, Comet ...
        logger.log_image(key=tag, images=[figure], step=global_step)
        return "image"
    folder = getattr(logger, "log_dir", None)
    if folder:  # CSV logger (and any other that writes into a folder)
        from attnscope.plot import save_figure

        save_figure(figure, Path(folder) / "figures" / _safe(tag) / f"{step}.png")
        return "file"
    return "none"


def _experiment(logger: Any) -> Any:
    try:
        return logger.experiment
    except Exception:  # a logger whose backend cannot start has no experiment to use
        return None


def _safe(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9._\-/]+", "_", tag)
