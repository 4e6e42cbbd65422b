"""``attnscope.evaluate.evaluate`` end to end on the tiny fixture models."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from attnscope import open_store
from attnscope.evaluate import EvaluationError, evaluate
from attnscope.evaluate.attention import export_attention
from tests.evaluate import fixtures

REGRESSION_FILES = {"predictions.csv", "results.json", "predicted_vs_actual.png",
                    "residuals.png", "timeline.png", "error_distribution.png",
                    "attention_test.npy", "attention_test.png"}


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reg")
    model, data = fixtures.make_regressor(), fixtures.make_regression_data()
    return model, data, out, evaluate(model, data, out, batch_size=16, dpi=40)


def test_regression_writes_every_file(regression_run):
    _, _, out, result = regression_run
    assert {p.name for p in out.iterdir()} >= REGRESSION_FILES
    assert all(p.is_file() and p.stat().st_size > 0 for p in result.files.values())
    assert result.task == "regression" and result.n_samples == 40 and result.notes == []


def test_regression_csv_matches_a_manual_forward(regression_run):
    model, data, out, _ = regression_run
    x, y = data.tensors
    with torch.no_grad():
        expected = model(x)[0].squeeze(-1).double().numpy()
    rows = list(csv.DictReader((out / "predictions.csv").read_text().splitlines()))
    assert list(rows[0]) == ["sample_idx", "prediction", "target", "error", "abs_error"]
    got = np.array([[float(r[k]) for k in ("prediction", "target", "error", "abs_error")]
                    for r in rows])
    assert [int(r["sample_idx"]) for r in rows] == list(range(40))
    assert got[:, 0] == pytest.approx(expected, abs=1e-6)
    assert got[:, 1] == pytest.approx(y.double().numpy(), abs=1e-6)
    assert got[:, 2] == pytest.approx(expected - y.double().numpy(), abs=1e-6)
    assert got[:, 3] == pytest.approx(np.abs(got[:, 2]), abs=1e-6)


def test_regression_metrics_json(regression_run):
    model, data, out, result = regression_run
    doc = json.loads((out / "results.json").read_text())
    x, y = data.tensors
    with torch.no_grad():
        err = model(x)[0].squeeze(-1).double() - y.double()
    assert doc["task"] == "regression" and doc["n_samples"] == 40
    assert doc["metrics"]["mae"] == pytest.approx(err.abs().mean().item())
    assert doc["metrics"]["rmse"] == pytest.approx(err.pow(2).mean().sqrt().item())
    ss_tot = (y.double() - y.double().mean()).pow(2).sum().item()
    assert doc["metrics"]["r2"] == pytest.approx(1 - err.pow(2).sum().item() / ss_tot)
    assert doc["attention"]["module"] == "attention" and doc["attention"]["shape"] == [40, 12]
    assert doc["files"]["attention_npy"].endswith("attention_test.npy")


def test_one_d_attention_npy_and_store(regression_run):
    model, data, out, _ = regression_run
    weights = np.load(out / "attention_test.npy")
    assert weights.shape == (40, 12)  # (sample, key)
    assert weights.sum(axis=1) == pytest.approx(np.ones(40), abs=1e-2)  # float16 store
    x, _ = data.tensors
    with torch.no_grad():
        direct = model(x[:3])[1].squeeze(-1).numpy()
    assert weights[:3] == pytest.approx(direct, abs=2e-3)
    store = open_store(out / "attention")
    assert store.steps == ["test"] and store.num_samples("attention", "test") == 40


def test_rerun_replaces_the_test_step(regression_run, tmp_path):
    model, data, out, _ = regression_run
    evaluate(model, data, out, attention_plot=False, save_predictions=False, dpi=30)
    assert open_store(out / "attention").num_samples("attention", "test") == 40


def test_classification_run(tmp_path):
    model, data = fixtures.make_classifier(), fixtures.make_classification_data()
    result = evaluate(model, data, tmp_path, batch_size=8, dpi=40,
                      attention_module="encoder.layers.0.self_attn", attention_sample=2)
    assert result.task == "classification"
    assert {"confusion_matrix.png", "timeline.png", "attention_test.png"} <= {
        p.name for p in tmp_path.iterdir()}
    assert not (tmp_path / "residuals.png").exists()
    with torch.no_grad():
        probs = torch.softmax(model(data.x), dim=1).double().numpy()
    rows = list(csv.DictReader((tmp_path / "predictions.csv").read_text().splitlines()))
    assert list(rows[0]) == ["sample_idx", "prediction", "target", "correct", "prob_0",
                             "prob_1", "prob_2"]
    got = np.array([[float(r[f"prob_{c}"]) for c in range(3)] for r in rows])
    assert got == pytest.approx(probs, abs=1e-6)
    assert [int(r["prediction"]) for r in rows] == probs.argmax(1).tolist()
    correct = probs.argmax(1) == data.y.numpy()
    assert [int(r["correct"]) for r in rows] == correct.astype(int).tolist()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["metrics"]["accuracy"] == pytest.approx(correct.mean())
    assert doc["metrics"]["classes"] == ["low", "mid", "high"]
    assert np.array(doc["metrics"]["confusion_matrix"]).sum() == 30
    assert doc["attention"]["module"] == "encoder.layers.0.self_attn"
    assert doc["attention"]["figure"] == "test sample 2"
    weights = np.load(tmp_path / "attention_test.npy")
    assert weights.shape == (30, 2, 6, 6)  # (sample, head, query, key)
    assert weights.sum(axis=-1) == pytest.approx(np.ones((30, 2, 6)), abs=1e-2)
    assert any("also captured: encoder.layers.1.self_attn" in n for n in result.notes)


def test_model_without_attention_still_evaluates(tmp_path):
    result = evaluate(fixtures.make_mlp(), fixtures.make_regression_data(), tmp_path, dpi=30)
    assert result.attention is None and "no attention" in result.notes[0]
    assert (tmp_path / "predictions.csv").exists() and not (tmp_path / "attention").exists()
    assert not (tmp_path / "attention_test.png").exists()


def test_shuffling_loader_is_reported_in_data_set_order(tmp_path):
    result = evaluate(fixtures.make_regressor(), fixtures.make_shuffled_loader(), tmp_path,
                      attention=False, dpi=30)
    _, y = fixtures.regression_tensors()
    assert result.predictions.target == pytest.approx(y.double().numpy())
    assert not (tmp_path / "attention").exists()


def test_forced_task_and_custom_output_path(tmp_path):
    out = tmp_path / "elsewhere" / "m.json"
    result = evaluate(fixtures.make_regressor(), fixtures.make_regression_data(), tmp_path,
                      task="regression", output=out, attention=False, dpi=30)
    assert json.loads(out.read_text())["task"] == "regression" == result.task


def test_unknown_attention_module_fails_before_running(tmp_path):
    with pytest.raises(EvaluationError, match="is not a module of LSTMAttentionRegressor"):
        evaluate(fixtures.make_regressor(), fixtures.make_regression_data(), tmp_path,
                 attention_module="decoder")


def test_export_streams_in_chunks(regression_run, tmp_path):
    """A tiny chunk budget (one sample at a time) gives the same file and mean."""
    _, _, out, _ = regression_run
    store = open_store(out / "attention")
    summary = export_attention(store, "attention", "test", tmp_path / "a.npy", chunk_bytes=1)
    full = np.load(out / "attention_test.npy")
    assert np.array_equal(np.load(tmp_path / "a.npy"), full)
    assert full.dtype == np.float16  # the store's dtype: what was captured
    assert summary.matrix[0, 0] == pytest.approx(full.astype(np.float64).mean(axis=0), abs=1e-6)
