"""Figures and scalars into any Lightning logger, each the way it takes them.

Lightning's loggers share ``log_metrics`` for scalars but have no common call for
figures: TensorBoard's ``SummaryWriter.add_figure``, MLflow's ``MlflowClient.log_figure``
(an artifact of the run), ``log_image`` on Weights & Biases / Neptune-style loggers, and
nothing at all on the CSV logger, which gets a PNG file in its log folder instead.
Left out on purpose: loggers with none of these (a figure is not worth an error there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


def log_step_figure(loggers: Any, store_path: Path, step: str, global_step: int) -> None:
    """The first sample of ``step``'s first entry (head mean; bars for 1-D attention),
    into every logger."""
    from attnscope.maps import is_one_d
    from attnscope.plot import plot_bars, plot_heatmap
    from attnscope.store import open_store
    from attnscope.store.schema import TEST_STEP

    store = open_store(store_path)
    module = store.modules[0]
    one_d = is_one_d(store.read(module, step=step, samples=[0]).shape)
    draw = plot_bars if one_d else plot_heatmap
    what = "test sample 0" if step == TEST_STEP else f"validation sample 0, {step}"
    figure = draw(store, module=module, step=step, sample=0, head=0 if one_d else "mean",
                  title=f"{module} \u00b7 {what}")
    for logger in loggers:
        log_figure_to(logger, f"attention/{module}", figure, step, global_step)


def log_step_scalars(loggers: Any, store_path: Path, step: str,
                     metrics: bool | Sequence[str], global_step: int) -> None:
    """Per-head metrics of ``step`` (mean over its samples; ``True``: the default set)
    as scalars, into every logger."""
    from attnscope.analysis.stats import LOGGED, step_scalars
    from attnscope.store.schema import TEST_STEP

    names = LOGGED if metrics is True else tuple(metrics)
    scalars = step_scalars(store_path, step, names,
                           prefix="attention" if step != TEST_STEP else "attention_test")
    for logger in loggers:
        logger.log_metrics(scalars, step=global_step)


def _experiment(logger: Any) -> Any:
    try:
        return logger.experiment
    except Exception:  # a logger whose backend cannot start has no experiment to use
        return None


def _safe(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9._\-/]+", "_", tag)
