"""``evaluate``: run a model over its test set once, capturing attention into a store on
the way, then write predictions, metrics, figures and the test-set attention."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnscope._files import ensure_dir
from attnscope.data import dataset_length, make_loader
from attnscope.entries import base_name
from attnscope.errors import NoAttentionFoundError
from attnscope.evaluate.attention import export_attention, pick_module, plot_attention
from attnscope.evaluate.batches import EvaluationError, run_batch
from attnscope.evaluate.metrics import classification_metrics, regression_metrics
from attnscope.evaluate.predictions import (
    Predictions,
    build_predictions,
    finite_predictions,
    write_predictions,
)
from attnscope.evaluate.report import class_names, file_name, write_figures, write_json

STEP = "test"
Progress = Callable[[int, "int | None"], None]


@dataclass
class EvaluationResult:
    """What :func:`evaluate` computed and wrote (``files``: name -> path)."""

    task: str
    n_samples: int
    metrics: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    attention: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    predictions: Predictions | None = field(default=None, repr=False)


def evaluate(model: nn.Module, data: Any, out: str | os.PathLike, *, task: str | None = None,
             batch_size: int = 32, output: str | os.PathLike | None = None,
             save_predictions: bool = True, attention: bool = True,
             attention_plot: bool = True, include: Sequence[str] | None = None,
             attention_module: str | None = None, attention_sample: int | None = None,
             dpi: float = 150, progress: Progress | None = None,
             info: dict[str, Any] | None = None, prefix: str | None = None,
             dtype: str = "float16") -> EvaluationResult:
    """Evaluate ``model`` on the test set ``data`` and write the results into ``out``.

    Example:
        >>> result = evaluate(model, test_set, "runs/eval")
        >>> result.metrics["rmse"], result.files["attention_npy"]

    Args:
        data: a Dataset (batched in order with ``batch_size``) or a DataLoader.
        task: ``"regression"`` or ``"classification"``; None decides from the outputs.
        output: metrics JSON path (default ``<out>/results.json``).
        attention: capture attention into ``<out>/attention`` (step ``"test"``) and write
            ``attention_test.npy``; a model without attention adds a note, not an error.
        attention_plot: draw ``attention_test.png``.
        include: module globs passed to :func:`attnscope.capture`.
        attention_module: which captured module to export (default: the last one).
        attention_sample: draw only this test sample (default: the first few samples and
            their mean over the test set, titled as a mean).
        dtype: how attention is captured and stored (``"float16"`` or ``"float32"``);
            ``attention_test.npy`` keeps it (float16 values are not widened to float32).
        progress: called with ``(samples done, total or None)`` after every batch.
        info: extra fields for the JSON (e.g. the model and data specs).
        prefix: name files ``<prefix>_...``: ``<prefix>_scatter.png``,
            ``<prefix>_attention_heatmap.png``, ``<prefix>_attention_weights.npy``,
            ``<prefix>_predictions.csv`` ... (several models side by side in one folder).
    """
    if prefix is not None and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", prefix)):
        raise EvaluationError(f"prefix {prefix!r} must be letters, digits, '.', '_' or '-' "
                              "(it starts every file name)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EvaluationError(f"output directory {str(out)!r} is a file; give a directory")
    ensure_dir(out)
    if attention_module is not None:
        _check_module(model, attention_module)
    loader = make_loader(data, batch_size)
    total = dataset_length(loader)
    was_training = model.training
    model.eval()
    notes: list[str] = []
    try:
        if attention:
            store = out / file_name("attention_store", "attention", prefix)
            outputs, targets, found = _run_capturing(model, loader, total, store, include,
                                                     notes, progress, dtype)
        else:
            (outputs, targets), found = _run(model, loader, total, progress), False
    finally:
        model.train(was_training)
    pred = build_predictions(outputs, targets, task=task)
    result = EvaluationResult(pred.task, len(pred), _metrics(pred, data, model), notes=notes,
                              predictions=pred)
    if save_predictions:
        result.files["predictions"] = out / file_name("predictions", "predictions.csv", prefix)
        write_predictions(pred, result.files["predictions"])
    drawn = finite_predictions(pred, notes)
    result.files.update(write_figures(drawn, result.metrics, out, dpi,
                                      class_names(data, model, pred.num_classes), prefix))
    if found:
        _write_attention(result, out, attention_module, attention_sample, attention_plot, dpi,
                         prefix)
    result.files["results"] = Path(output) if output is not None else \
        out / file_name("results", "results.json", prefix)
    write_json(result.files["results"], {
        "task": result.task, "n_samples": result.n_samples, "metrics": result.metrics,
        "attention": result.attention, "files": {k: str(v) for k, v in result.files.items()},
        "notes": result.notes, **(info or {})})
    return result


def _run(model: nn.Module, loader: Any, total: int | None, progress: Progress | None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    outputs, targets, done = [], [], 0
    with torch.no_grad():
        for batch in loader:
            prediction, target = run_batch(model, batch)
            outputs.append(prediction)
            targets.append(target)
            done += len(target)
            if progress is not None:
                progress(done, total)
    if not outputs:
        raise EvaluationError("the test set is empty")
    try:
        output, target = torch.cat(outputs), torch.cat(targets)
    except RuntimeError:
        shapes = sorted({tuple(o.shape[1:]) for o in outputs})
        raise EvaluationError(f"model outputs differ in shape between batches {shapes}; "
                              "evaluate needs one fixed output shape per sample") from None
    if output.is_floating_point() and not torch.isfinite(output).any():
        raise EvaluationError(f"the model's outputs are NaN/inf for all {len(output)} test "
                              f"samples{_broken_parameters(model)}: nothing to score or draw; "
                              "load an earlier checkpoint (or retrain with a lower learning "
                              "rate / gradient clipping)")
    return output, target


def _broken_parameters(model: nn.Module) -> str:
    """``" (its weights hold NaN/inf: a.weight, b.bias)"`` when they do."""
    bad = [name for name, p in model.named_parameters()
           if p.is_floating_point() and not torch.isfinite(p).all()]
    if not bad:
        return ""
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return f" (its weights hold NaN/inf: {shown})"


def _run_capturing(model: nn.Module, loader: Any, total: int | None, store: Path,
                   include: Sequence[str] | None, notes: list[str],
                   progress: Progress | None, dtype: str = "float16"
                   ) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``_run`` inside a capture that streams into ``store`` (step ``test``, replaced on
    a re-run); a model without attention leaves a note and no store behind."""
    from attnscope import capture
    from attnscope.store import open_writer

    existed = store.exists()
    writer = open_writer(store, step=STEP, model=model, expected_samples=total,
                         if_exists="overwrite", durable=False, dtype=dtype,
                         background=True)  # writing overlaps the next batch
    captured, found = None, True
    try:
        with capture(model, include=list(include) if include else None, store=writer,
                     dtype=dtype):
            captured = _run(model, loader, total, progress)
    except NoAttentionFoundError as err:  # raised on exit, after the whole test set ran
        notes.append(f"no attention figure: {err}")
        found = False
    except BaseException:
        writer.abort()
        if not existed:
            shutil.rmtree(store, ignore_errors=True)
        raise
    writer.close()
    if not found and not existed:
        shutil.rmtree(store, ignore_errors=True)
    assert captured is not None
    return (*captured, found)


def _metrics(pred: Predictions, data: Any, model: nn.Module) -> dict[str, Any]:
    if pred.task == "regression":
        return regression_metrics(pred.prediction, pred.target)
    return classification_metrics(pred.target, pred.prediction, pred.num_classes,
                                  class_names(data, model, pred.num_classes))


def _write_attention(result: EvaluationResult, out: Path, module: str | None,
                     sample: int | None, draw: bool, dpi: float, prefix: str | None) -> None:
    from attnscope.store import open_store

    where = out / file_name("attention_store", "attention", prefix)
    store = open_store(where)
    name = pick_module(store, STEP, module)
    result.files["attention_npy"] = out / file_name("attention_npy", "attention_test.npy",
                                                    prefix)
    summary = export_attention(store, name, STEP, result.files["attention_npy"], sample)
    result.attention = summary.describe()
    result.attention["store"] = str(where)
    others = [m for m in store.modules if m != name and store.segments(m, STEP)]
    if others:
        result.notes.append(f"attention of {name!r} exported; also captured: "
                            f"{', '.join(others[:6])}{' ...' if len(others) > 6 else ''} "
                            "(see --attention-module, or 'attnscope export')")
    if draw:
        result.files["attention_plot"] = out / file_name("attention_plot", "attention_test.png",
                                                         prefix)
        plot_attention(summary, result.files["attention_plot"], dpi)


def _check_module(model: nn.Module, wanted: str) -> None:
    names = {n for n, _ in model.named_modules()}
    if base_name(wanted) not in names:
        raise EvaluationError(f"--attention-module {wanted!r} is not a module of "
                              f"{type(model).__name__}")
