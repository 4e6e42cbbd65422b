"""Evaluate a model on its test set: predictions CSV, metrics JSON, evaluation figures,
and the attention the model paid over the test set.

Example:
    >>> from attnscope.evaluate import evaluate
    >>> result = evaluate(model, test_set, "runs/eval")      # Dataset or DataLoader
    >>> result.task, result.metrics["mae"]
    >>> result.files["attention_plot"]                       # runs/eval/attention_test.png

The command ``attnscope evaluate`` loads the model, checkpoint and data with
:mod:`attnscope.cli.loading` and calls :func:`evaluate`. Left out on purpose: training,
validation splits, GPUs (evaluation runs where the model's parameters are), and
per-position predictions of sequence models (outputs must be one row per sample).
"""

from __future__ import annotations

from attnscope.evaluate.attention import AttentionSummary, export_attention, plot_attention
from attnscope.evaluate.batches import EvaluationError
from attnscope.evaluate.class_figures import plot_class_timeline, plot_confusion_matrix
from attnscope.evaluate.figures import (
    plot_error_distribution,
    plot_predicted_vs_actual,
    plot_residuals,
    plot_timeline,
)
from attnscope.evaluate.metrics import (
    classification_metrics,
    confusion_matrix,
    regression_metrics,
)
from attnscope.evaluate.predictions import Predictions, build_predictions, write_predictions
from attnscope.evaluate.runner import EvaluationResult, evaluate

__all__ = [
    "AttentionSummary", "EvaluationError", "EvaluationResult", "Predictions",
    "build_predictions", "classification_metrics", "confusion_matrix", "evaluate",
    "export_attention", "plot_attention", "plot_class_timeline", "plot_confusion_matrix",
    "plot_error_distribution", "plot_predicted_vs_actual", "plot_residuals", "plot_timeline",
    "regression_metrics", "write_predictions",
]
