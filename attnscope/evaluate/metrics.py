"""Regression and classification metrics in plain NumPy, so evaluation needs no
scikit-learn. Definitions follow scikit-learn's defaults:

* ``r2`` = 1 - SS_res / SS_tot (``None`` when the targets are constant);
* ``macro_f1`` averages the F1 of every class that occurs in the targets or the
  predictions (a class with no true and no predicted sample is left out; a class with
  a zero precision or recall denominator scores 0);
* the confusion matrix has true classes as rows and predicted classes as columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def regression_metrics(prediction: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, R2 and the mean error (bias = prediction - target) over all values."""
    p = np.asarray(prediction, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    error = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum()) if t.size else 0.0
    ss_res = float((error**2).sum())
    return {
        "mae": float(np.abs(error).mean()) if t.size else None,
        "rmse": float(np.sqrt((error**2).mean())) if t.size else None,
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else None,
        "mean_error": float(error.mean()) if t.size else None,
        "n_values": int(t.size),
    }


def confusion_matrix(target: np.ndarray, prediction: np.ndarray, num_classes: int
                     ) -> np.ndarray:
    """``(num_classes, num_classes)`` counts: row = true class, column = predicted."""
    t = np.asarray(target, dtype=np.int64).ravel()
    p = np.asarray(prediction, dtype=np.int64).ravel()
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def classification_metrics(target: np.ndarray, prediction: np.ndarray, num_classes: int,
                           class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion matrix and per-class precision/recall/F1/support."""
    cm = confusion_matrix(target, prediction, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = (support + predicted) > 0
    names = list(class_names) if class_names is not None else [str(i) for i in
                                                                range(num_classes)]
    total = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "confusion_matrix": cm.tolist(),
        "classes": names,
        "per_class": {
            names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i])}
            for i in range(num_classes)
        },
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out
