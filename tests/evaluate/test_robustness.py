"""What evaluate says about broken models and how it keeps what was captured: a NaN
checkpoint is one line with nothing half-written, a few NaN predictions are a note, and
the attention ``.npy`` keeps the captured dtype (``--dtype``)."""

from __future__ import annotations

import numpy as np
import torch

from attnscope.cli import main
from attnscope.evaluate import evaluate
from tests.evaluate import fixtures

REGRESSOR = "tests.evaluate.fixtures:make_regressor"
REGRESSION_DATA = "tests.evaluate.fixtures:make_regression_data"


def test_nan_checkpoint_is_one_line_and_leaves_nothing(capsys, tmp_path):
    model = fixtures.make_regressor()
    state = {k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "nan.pt")
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", REGRESSOR, "--checkpoint", str(tmp_path / "nan.pt"),
                 "--data", REGRESSION_DATA, "--out", str(out), "--batch-size", "8"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "NaN/inf for all 40 test samples" in lines[0] and "weights hold NaN" in lines[0]
    assert list(out.iterdir()) == []  # no store, no predictions, no half-drawn figure


def test_some_nan_predictions_are_a_note_and_the_rest_is_drawn(tmp_path):
    x, y = fixtures.regression_tensors()
    x[3] = float("nan")  # one sample whose input (so prediction) is NaN
    result = evaluate(fixtures.make_regressor(), torch.utils.data.TensorDataset(x, y),
                      tmp_path, batch_size=8, dpi=30)
    assert any("1 of 40 predictions are NaN/inf" in n for n in result.notes)
    assert result.files["residuals"].stat().st_size > 0


def test_attention_npy_keeps_the_capture_dtype(capsys, tmp_path):
    for dtype in ("float16", "float32"):
        out = tmp_path / dtype
        code = main(["evaluate", "--model", REGRESSOR, "--data", REGRESSION_DATA, "--out",
                     str(out), "--batch-size", "8", "--dpi", "30", "--dtype", dtype])
        assert code == 0, capsys.readouterr().err
        weights = np.load(out / "attention_test.npy")
        assert weights.dtype == np.dtype(dtype) and weights.shape == (40, 12)
    x, _ = fixtures.regression_tensors()
    with torch.no_grad():
        direct = fixtures.make_regressor()(x[:4])[1].squeeze(-1).numpy()
    exact = np.load(tmp_path / "float32" / "attention_test.npy")[:4]
    assert np.abs(exact - direct).max() < 1e-6  # float32 capture is not rounded
    code = main(["evaluate", "--model", REGRESSOR, "--data", REGRESSION_DATA, "--out",
                 str(tmp_path / "bad"), "--dtype", "bfloat16"])
    assert code == 2 and "bfloat16" in capsys.readouterr().err


def test_json_outputs_are_utf8_not_escapes(tmp_path):
    import attnscope

    evaluate(fixtures.make_regressor(), fixtures.make_regression_data(), tmp_path,
             batch_size=20, dpi=30, attention_plot=False, info={"model": "한국어 모델"})
    assert "한국어 모델" in (tmp_path / "results.json").read_text(encoding="utf-8")
    net, x = fixtures.make_regressor(), fixtures.regression_tensors(4)[0]
    writer = attnscope.open_writer(tmp_path / "s", step="test",
                                   labels={"tokens": ["안녕", "세계"]})
    with torch.no_grad(), attnscope.capture(net, store=writer):
        net(x)
    writer.close()
    assert "안녕" in (tmp_path / "s" / "attnscope.json").read_text(encoding="utf-8")
    assert attnscope.open_store(tmp_path / "s").labels("test")["tokens"] == ["안녕", "세계"]
