"""``attnscope evaluate`` through ``attnscope.cli.main``: files, one-line errors, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attnscope.cli import main
from tests.evaluate import fixtures

REGRESSOR = "tests.evaluate.fixtures:make_regressor"
REGRESSION_DATA = "tests.evaluate.fixtures:make_regression_data"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def error_line(capsys, *args: str) -> str:
    code, _, err = run(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def lightning_checkpoint(tmp_path_factory) -> str:
    model = fixtures.make_regressor()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    path = tmp_path_factory.mktemp("ckpt") / "epoch=3.ckpt"
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.6.0",
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return str(path)


def test_regression_with_lightning_checkpoint(capsys, tmp_path, lightning_checkpoint):
    code, out, _ = run(capsys, "--model", REGRESSOR, "--checkpoint", lightning_checkpoint,
                       "--data", REGRESSION_DATA, "--out", tmp_path, "--dpi", "40",
                       "--batch-size", "8")
    assert code == 0 and "regression on 40 test samples: MAE" in out
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["checkpoint"] == lightning_checkpoint and doc["model"] == REGRESSOR
    model = fixtures.make_regressor()
    state = torch.load(lightning_checkpoint, weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    x, y = fixtures.regression_tensors()
    with torch.no_grad():
        err = model(x)[0].squeeze(-1).double() - y.double()
    assert doc["metrics"]["mae"] == pytest.approx(err.abs().mean().item())
    for name in ("predicted_vs_actual.png", "residuals.png", "timeline.png",
                 "error_distribution.png", "attention_test.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert np.load(tmp_path / "attention_test.npy").shape == (40, 12)


def test_flags_skip_outputs_and_force_the_task(capsys, tmp_path):
    code, _, _ = run(capsys, "--model", REGRESSOR, "--data", REGRESSION_DATA, "--out",
                     tmp_path, "--no-attention-plot", "--no-save-predictions", "--task",
                     "regression", "--output", tmp_path / "metrics.json", "--include",
                     "attention*", "--dpi", "30")
    assert code == 0
    assert not (tmp_path / "predictions.csv").exists()
    assert not (tmp_path / "attention_test.png").exists()
    assert (tmp_path / "attention_test.npy").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["task"] == "regression"


def test_classification_command(capsys, tmp_path):
    code, out, _ = run(capsys, "--model", "tests.evaluate.fixtures:make_classifier", "--data",
                       "tests.evaluate.fixtures:make_classification_data", "--out", tmp_path,
                       "--dpi", "30")
    assert code == 0 and "classification on 30 test samples: accuracy" in out
    assert (tmp_path / "confusion_matrix.png").exists()


def test_no_attention_prints_a_note(capsys, tmp_path):
    code, _, err = run(capsys, "--model", "tests.evaluate.fixtures:make_mlp", "--data",
                       REGRESSION_DATA, "--out", tmp_path, "--dpi", "30")
    assert code == 0 and err.startswith("note: no attention figure: no attention was captured")
    assert (tmp_path / "results.json").exists()


def test_pickled_checkpoint_is_refused_then_trusted(capsys, tmp_path):
    state = fixtures.make_regressor().state_dict()
    torch.save({"state_dict": state, "hparams": fixtures.PickledThing()}, tmp_path / "p.ckpt")
    args = ["--model", REGRESSOR, "--checkpoint", tmp_path / "p.ckpt", "--data",
            REGRESSION_DATA, "--out", tmp_path / "out", "--no-attention", "--dpi", "30"]
    line = error_line(capsys, *args)
    assert "--trust-checkpoint" in line and "PickledThing" in line
    assert not (tmp_path / "out").exists()
    code, _, _ = run(capsys, *args, "--trust-checkpoint")
    assert code == 0


def test_truncated_checkpoint(capsys, tmp_path):
    torch.save(fixtures.make_regressor().state_dict(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(data[: len(data) // 3])
    line = error_line(capsys, "--model", REGRESSOR, "--checkpoint", tmp_path / "bad.pt",
                      "--data", REGRESSION_DATA, "--out", tmp_path / "out")
    assert "truncated or not a PyTorch checkpoint" in line


def test_checkpoint_of_another_model(capsys, tmp_path):
    torch.save(fixtures.make_classifier().state_dict(), tmp_path / "other.pt")
    line = error_line(capsys, "--model", REGRESSOR, "--checkpoint", tmp_path / "other.pt",
                      "--data", REGRESSION_DATA, "--out", tmp_path / "out")
    assert "does not match LSTMAttentionRegressor" in line and "missing keys" in line


@pytest.mark.parametrize("flag, spec, message", [
    ("--model", "tests.evaluate.fixtures:make_regresor", "has no factory 'make_regresor'"),
    ("--model", "nosuchpkg.models:make", "cannot import 'nosuchpkg.models'"),
    ("--data", "tests.evaluate.fixtures:make_nothing", "has no factory 'make_nothing'"),
    ("--data", "tests.evaluate.fixtures:make_broken", "failed: ValueError"),
    ("--model", "tests.evaluate.fixtures:make_bracketed", "no entry [/data/run] in [bold]config"),
])
def test_bad_specs(capsys, tmp_path, flag, spec, message):
    args = {"--model": REGRESSOR, "--data": REGRESSION_DATA, flag: spec}
    line = error_line(capsys, *[a for kv in args.items() for a in kv], "--out", tmp_path)
    assert message in line


def test_unknown_task(capsys, tmp_path):
    line = error_line(capsys, "--model", REGRESSOR, "--data", REGRESSION_DATA, "--out",
                      tmp_path, "--task", "ranking")
    assert "--task 'ranking' is unknown" in line


def test_data_that_does_not_fit_the_task(capsys, tmp_path):
    line = error_line(capsys, "--model", REGRESSOR, "--data", REGRESSION_DATA, "--out",
                      tmp_path, "--task", "classification", "--no-attention")
    assert "classification targets must be class indices" in line


def test_hugging_face_directory(capsys, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     num_labels=3, max_position_embeddings=16)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    code, out, _ = run(capsys, "--model", tmp_path / "bert", "--data",
                       "tests.evaluate.fixtures:make_text_data", "--out", tmp_path / "out",
                       "--batch-size", "4", "--dpi", "30")
    assert code == 0 and "classification on 10 test samples" in out
    weights = np.load(tmp_path / "out" / "attention_test.npy")
    assert weights.shape == (10, 2, 8, 8)
    assert np.all(weights[1, :, :, 7] == 0)  # item 1 masks its last token
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["attention"]["module"] == "bert.encoder.layer.0.attention.self"
    assert doc["metrics"]["classes"] == ["LABEL_0", "LABEL_1", "LABEL_2"]
