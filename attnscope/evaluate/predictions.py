"""Turn raw model outputs and targets into predictions: decide the task, convert
classifier outputs into probabilities, and write ``predictions.csv``.

Task rule (``task=None``): outputs ``(sample, classes)`` with more than one class and
integer-valued targets in ``[0, classes)`` are a classification; everything else is a
regression. Classifier outputs that are already probabilities (non-negative rows that
sum to 1) or log-probabilities are kept as such; anything else goes through a softmax
(a single output column through a sigmoid, for binary classifiers).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
import torch

from attnscope._files import atomic_path
from attnscope.evaluate.batches import EvaluationError

TASKS = ("regression", "classification")


@dataclass
class Predictions:
    """Aligned per-sample results, in data-set order.

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        prediction: regression ``(sample,)`` or ``(sample, output)`` floats;
            classification ``(sample,)`` class indices.
        target: same shape and meaning as ``prediction``.
        probabilities: ``(sample, class)`` for classification, else ``None``.
    """

    task: str
    prediction: np.ndarray
    target: np.ndarray
    probabilities: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.target)

    @property
    def error(self) -> np.ndarray:
        """prediction - target (regression)."""
        return self.prediction - self.target

    @property
    def num_classes(self) -> int:
        return 0 if self.probabilities is None else int(self.probabilities.shape[1])


def infer_task(output: torch.Tensor, target: torch.Tensor) -> str:
    """``"classification"`` for class scores with integer targets, else ``"regression"``."""
    if output.dim() != 2 or output.shape[1] < 2:
        return "regression"
    t = target.reshape(len(target), -1)
    if t.shape[1] != 1 or t.numel() == 0:
        return "regression"
    t = t.ravel().double()
    whole = bool((t == t.round()).all()) and not target.is_complex()
    if whole and t.min() >= 0 and t.max() < output.shape[1]:
        return "classification"
    return "regression"


def build_predictions(output: torch.Tensor, target: torch.Tensor, task: str | None = None
                      ) -> Predictions:
    """Predictions for the whole test set from stacked outputs and targets."""
    if task is not None and task not in TASKS:
        raise EvaluationError(f"task {task!r} is unknown; use one of {', '.join(TASKS)}")
    task = task or infer_task(output, target)
    if task == "regression":
        return _regression(output, target)
    return _classification(output, target)


def _regression(output: torch.Tensor, target: torch.Tensor) -> Predictions:
    n = len(target)
    p = output.detach().double().reshape(n, -1).numpy()
    t = target.detach().double().reshape(n, -1).numpy()
    if p.shape != t.shape:
        hint = (" (class scores? pass task='classification')" if t.shape[1] == 1 else "")
        raise EvaluationError(f"regression needs one prediction per target value: model "
                              f"output {tuple(output.shape)}, target {tuple(target.shape)}"
                              + hint)
    if p.shape[1] == 1:
        p, t = p[:, 0], t[:, 0]
    return Predictions("regression", p, t)


def _classification(output: torch.Tensor, target: torch.Tensor) -> Predictions:
    n = len(target)
    scores = output.detach().double()
    if scores.dim() == 1 or (scores.dim() == 2 and scores.shape[1] == 1):
        p1 = scores.reshape(n)
        if p1.min() < 0 or p1.max() > 1:
            p1 = torch.sigmoid(p1)
        probs = torch.stack([1 - p1, p1], dim=1)
    elif scores.dim() == 2:
        probs = to_probabilities(scores)
    else:
        raise EvaluationError(f"classification needs outputs (sample, class); got "
                              f"{tuple(output.shape)}")
    classes = probs.shape[1]
    t = target.detach()
    if t.shape == output.shape and t.dim() == 2 and classes > 1:
        t = t.argmax(dim=1)  # one-hot or soft targets
    t = t.reshape(-1).double()
    if len(t) != n or not bool((t == t.round()).all()) or (n and (t.min() < 0
                                                                  or t.max() >= classes)):
        raise EvaluationError(f"classification targets must be class indices in "
                              f"[0, {classes}), one per sample; got {tuple(target.shape)} "
                              f"with values {_range(t)}")
    probs_np = probs.numpy()
    return Predictions("classification", probs_np.argmax(axis=1), t.long().numpy(), probs_np)


def to_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """Rows of class probabilities from probabilities, log-probabilities or logits."""
    sums = scores.sum(dim=1)
    if bool((scores >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return scores
    if bool((scores <= 0).all()):
        exp_sums = scores.exp().sum(dim=1)
        if torch.allclose(exp_sums, torch.ones_like(exp_sums), atol=1e-4):
            return scores.exp()
    return torch.softmax(scores, dim=1)


def write_predictions(pred: Predictions, path: str | os.PathLike) -> None:
    """``predictions.csv``: regression ``sample_idx,prediction,target,error,abs_error``
    (plus an ``output`` column for multi-output models); classification
    ``sample_idx,prediction,target,correct,prob_0,...`` (``correct`` is 1 or 0)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if pred.task == "classification":
            assert pred.probabilities is not None
            w.writerow(["sample_idx", "prediction", "target", "correct",
                        *[f"prob_{c}" for c in range(pred.num_classes)]])
            for i, (p, t, probs) in enumerate(zip(pred.prediction, pred.target,
                                                  pred.probabilities)):
                w.writerow([i, int(p), int(t), int(p == t), *[_num(v) for v in probs]])
            return
        multi = pred.prediction.ndim == 2
        w.writerow(["sample_idx", *(["output"] if multi else []), "prediction", "target",
                    "error", "abs_error"])
        p2 = pred.prediction.reshape(len(pred), -1)
        t2 = pred.target.reshape(len(pred), -1)
        for i in range(len(pred)):
            for j in range(p2.shape[1]):
                p, t = p2[i, j], t2[i, j]
                w.writerow([i, *([j] if multi else []), _num(p), _num(t), _num(p - t),
                            _num(abs(p - t))])


def _num(x: float) -> str:
    return f"{float(x):.9g}"


def _range(t: torch.Tensor) -> str:
    return f"{float(t.min()):g}..{float(t.max()):g}" if t.numel() else "none"


def finite_predictions(pred: Predictions, notes: list[str]) -> Predictions:
    """``pred`` without the samples whose prediction is NaN/inf (a note says how many),
    so figures draw the rest instead of failing on a NaN range."""
    values = pred.prediction if pred.probabilities is None else pred.probabilities
    ok = np.isfinite(values.reshape(len(pred), -1)).all(axis=1)
    if ok.all():
        return pred
    notes.append(f"{int((~ok).sum())} of {len(pred)} predictions are NaN/inf: left out of "
                 "the figures (kept in the CSV; metrics over them are null)")
    return Predictions(pred.task, pred.prediction[ok], pred.target[ok],
                       None if pred.probabilities is None else pred.probabilities[ok])
