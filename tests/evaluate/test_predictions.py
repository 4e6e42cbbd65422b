"""Task detection, probabilities and the predictions CSV."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from attnscope.evaluate import EvaluationError, build_predictions, write_predictions
from attnscope.evaluate.batches import find_prediction
from attnscope.evaluate.predictions import infer_task, to_probabilities


@pytest.mark.parametrize("output, target, task", [
    (torch.randn(4, 3), torch.tensor([0, 2, 1, 1]), "classification"),
    (torch.randn(4, 3), torch.tensor([0.0, 2.0, 1.0, 1.0]), "classification"),
    (torch.randn(4, 1), torch.tensor([0, 1, 1, 0]), "regression"),
    (torch.randn(4), torch.randn(4), "regression"),
    (torch.randn(4, 3), torch.randn(4, 3), "regression"),
    (torch.randn(4, 3), torch.tensor([0, 5, 1, 1]), "regression"),  # 5 is no class of 3
])
def test_infer_task(output, target, task):
    assert infer_task(output, target) == task


def test_probabilities_from_logits_probabilities_and_log_probabilities():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    expected = torch.softmax(logits, dim=1)
    for given in (logits, expected, expected.log()):
        assert torch.allclose(to_probabilities(given), expected, atol=1e-6)


def test_forced_binary_classification_from_one_logit():
    pred = build_predictions(torch.tensor([[-2.0], [3.0], [0.5]]), torch.tensor([0, 1, 0]),
                             task="classification")
    assert pred.prediction.tolist() == [0, 1, 1]
    assert pred.probabilities[:, 1] == pytest.approx(torch.sigmoid(
        torch.tensor([-2.0, 3.0, 0.5])).numpy())


def test_one_hot_targets():
    pred = build_predictions(torch.eye(3) * 5, torch.eye(3), task="classification")
    assert pred.target.tolist() == [0, 1, 2] and pred.prediction.tolist() == [0, 1, 2]


@pytest.mark.parametrize("output, target, task, message", [
    (torch.randn(4, 3), torch.randn(4), "regression", "class scores? pass task="),
    (torch.randn(4, 3), torch.tensor([0.5, 1, 2, 0]), "classification", "class indices in"),
    (torch.randn(4, 2, 3), torch.tensor([0, 1, 2, 0]), "classification", "(sample, class)"),
    (torch.randn(4), torch.randn(4), "ranking", "task 'ranking' is unknown"),
])
def test_bad_task_inputs(output, target, task, message):
    with pytest.raises(EvaluationError, match=re.escape(message)):
        build_predictions(output, target, task=task)


def test_regression_csv(tmp_path):
    pred = build_predictions(torch.tensor([[1.5], [2.0]]), torch.tensor([1.0, 3.0]))
    write_predictions(pred, tmp_path / "p.csv")
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows == [["sample_idx", "prediction", "target", "error", "abs_error"],
                    ["0", "1.5", "1", "0.5", "0.5"], ["1", "2", "3", "-1", "1"]]


def test_multi_output_regression_csv_has_an_output_column(tmp_path):
    pred = build_predictions(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 4.0]]))
    write_predictions(pred, tmp_path / "p.csv")
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows[0] == ["sample_idx", "output", "prediction", "target", "error", "abs_error"]
    assert rows[2] == ["0", "1", "2", "4", "-2", "2"]


def test_classification_csv(tmp_path):
    pred = build_predictions(torch.tensor([[0.2, 0.8], [0.9, 0.1]]), torch.tensor([1, 1]))
    write_predictions(pred, tmp_path / "p.csv")
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows[0] == ["sample_idx", "prediction", "target", "correct", "prob_0", "prob_1"]
    assert rows[1][:4] == ["0", "1", "1", "1"] and rows[2][:4] == ["1", "0", "1", "0"]
    assert np.array(rows[1][4:], dtype=float) == pytest.approx([0.2, 0.8])


def test_prediction_inside_outputs():
    t = torch.ones(2)

    class Out:
        logits = t

    assert find_prediction((t, torch.zeros(2, 5))) is t
    assert find_prediction(Out()) is t
    assert find_prediction({"prediction": t}) is t
    with pytest.raises(EvaluationError, match="cannot find the prediction"):
        find_prediction("nothing")
