"""``attnscope capture`` over a dataset (``capture_dataset`` is tested in
tests/capturing/test_dataset.py)."""

from __future__ import annotations

import numpy as np
import torch

import attnscope
from attnscope.cli import main
from tests.evaluate import fixtures


def test_capture_a_dataset_into_a_store_matches_a_direct_capture(tmp_path, capsys):
    code = main(["capture", "--model", "tests.evaluate.fixtures:make_regressor",
                 "--data", "tests.evaluate.fixtures:make_regression_data",
                 "--store", str(tmp_path / "s"), "--step", "val", "--limit", "10",
                 "--batch-size", "4", "--dtype", "float32"])
    assert code == 0, capsys.readouterr().err
    store = attnscope.open_store(tmp_path / "s")
    module = store.modules[0]
    got = store.read(module, step="val")
    assert store.steps == ["val"] and got.shape[0] == 10  # 4 + 4 + 2 of the last batch
    model = fixtures.make_regressor().eval()
    x = torch.stack([fixtures.make_regression_data()[i][0] for i in range(10)])
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
    np.testing.assert_allclose(got, rec.maps[0].weights.numpy(), atol=1e-6)


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    base = ["--data", "tests.evaluate.fixtures:make_regression_data",
            "--store", str(tmp_path / "s")]
    assert main(["capture", "--model", "tests.evaluate.fixtures:nope", *base]) == 2
    assert main(["capture", "--model", "tests.evaluate.fixtures:make_mlp", *base]) == 2
    assert main(["capture", "--model", "tests.evaluate.fixtures:make_regressor", *base,
                 "--heads", "a,b"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 3 and all(line.startswith("error:") for line in err)
    assert "no attention" in err[1] and "include=" in err[1]
