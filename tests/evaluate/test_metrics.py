"""Metrics against values computed by hand (and scikit-learn's conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.evaluate.metrics import (
    classification_metrics,
    confusion_matrix,
    regression_metrics,
)


def test_regression_by_hand():
    # errors 0, -1, 1, -1; target mean 2.75, SS_tot = 8.75, SS_res = 3
    m = regression_metrics(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 5]))
    assert m["mae"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(np.sqrt(0.75))
    assert m["r2"] == pytest.approx(1 - 3 / 8.75)
    assert m["mean_error"] == pytest.approx(-0.25)
    assert m["n_values"] == 4


def test_r2_of_constant_target_is_undefined():
    assert regression_metrics(np.array([1.0, 2.0]), np.array([3.0, 3.0]))["r2"] is None


def test_perfect_regression():
    m = regression_metrics(np.arange(5.0), np.arange(5.0))
    assert (m["mae"], m["rmse"], m["r2"]) == (0.0, 0.0, 1.0)


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_classification_by_hand():
    # per class: P = 1/2, 2/3, 1; R = 1/2, 1, 1/2; F1 = 1/2, 4/5, 2/3
    m = classification_metrics(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]), 3,
                               ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0,
                                                 "f1": 0.8, "support": 2})
    assert m["classes"] == ["a", "b", "c"]


def test_macro_f1_skips_classes_never_seen_nor_predicted():
    # class 2 never occurs: F1 over classes 0 and 1 only (scikit-learn's default labels)
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), 3)
    f1_0, f1_1 = 2 * 0.5 * 1 / 1.5, 2 * 1 * 0.5 / 1.5
    assert m["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)
    assert m["per_class"]["2"]["support"] == 0


def test_class_with_no_predictions_scores_zero():
    m = classification_metrics(np.array([0, 1]), np.array([0, 0]), 2)
    assert m["per_class"]["1"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 * 0.5 / 1.5 + 0) / 2)
