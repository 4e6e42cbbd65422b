from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from attnscope.cli.store_commands import export as export_cmd
from attnscope.cli.store_commands import store_app
from attnscope.maps import AttentionMap
from attnscope.store import ExportTooLargeError, StoreError, export, open_store, open_writer

from .conftest import dense


@pytest.fixture
def lstm_store(tmp_path):
    """Three epochs of 1-D attention over 6 time steps, like an LSTM regressor."""
    path = tmp_path / "s"
    for e in range(3):
        w = open_writer(path, step=f"epoch_{e:03d}", labels={"time_steps": list(range(10, 16))})
        w.write(AttentionMap("attn", "self", torch.softmax(torch.randn(5, 1, 1, 6), -1)))
        w.close()
    return open_store(path)


def test_npy_and_npz(lstm_store, tmp_path):
    files = export(lstm_store, tmp_path / "out", "npy")
    assert [f.name for f in files] == [f"attention_epoch_00{e}.npy" for e in range(3)]
    a = np.load(files[1])
    assert a.shape == (5, 6)  # squeezed 1-D attention
    np.testing.assert_allclose(a, lstm_store.read("attn", "epoch_001")[:, 0, 0])
    (npz,) = export(lstm_store, tmp_path / "out", "npz")
    z = np.load(npz)
    assert sorted(z.files) == ["epoch_0", "epoch_1", "epoch_2", "time_steps"]
    assert z["time_steps"].tolist() == list(range(10, 16))


def test_csv_contents_and_guard(tmp_path):
    w = open_writer(tmp_path / "s", step="test")
    m = dense(batch=2, heads=2, q=3, k=4)
    w.write(m)
    w.close()
    store = open_store(tmp_path / "s")
    (path,) = export(store, tmp_path / "out", "csv")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert len(rows) == 2 * 2 * 3 * 4
    r = rows[-1]
    assert (r["step"], r["sample"], r["module"], r["head"], r["query"], r["key"]) == (
        "test", "1", "enc.attn", "1", "2", "3")
    assert float(r["weight"]) == pytest.approx(float(m.weights[1, 1, 2, 3]), rel=1e-3)
    with pytest.raises(ExportTooLargeError, match="--samples") as e:
        export(store, tmp_path / "out", "csv", max_rows=10)
    assert "\n" not in str(e.value)
    (path,) = export(store, tmp_path / "o2", "csv", samples=[1], heads=[0], max_rows=12)
    assert len(path.read_text().splitlines()) == 13


def test_multi_module_export_goes_to_subdirs(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    w.write(dense())
    w.write(dense(module="dec.cross", kind="cross"))
    w.close()
    files = export(open_store(tmp_path / "s"), tmp_path / "out", "npy")
    assert {f.parent.name for f in files} == {"enc.attn", "dec.cross"}
    with pytest.raises(StoreError, match="format"):
        export(open_store(tmp_path / "s"), tmp_path / "out", "parquet")


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(store_app, name="store")
    app.command("export")(export_cmd)
    return app


def test_cli(lstm_store, tmp_path):
    runner = CliRunner()
    res = runner.invoke(_app(), ["store", "info", str(lstm_store.root)])
    assert res.exit_code == 0, res.output
    assert "epoch_002" in res.output and "1x1x6" in res.output
    res = runner.invoke(_app(), ["export", str(lstm_store.root), "--format", "npz", "--out",
                                 str(tmp_path / "o"), "--step", "epoch_000"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "attention_all_epochs.npz").exists()


@pytest.mark.parametrize("args", [
    ["store", "info", "{missing}"],
    ["export", "{store}", "--format", "xls", "--out", "{out}"],
    ["export", "{store}", "--out", "{out}", "--module", "nope"],
    ["export", "{store}", "--out", "{out}", "--samples", "a:b"],
    ["export", "{store}", "--out", "{out}", "--format", "csv", "--max-rows", "3"],
])
def test_cli_bad_input_exits_2_with_one_line(lstm_store, tmp_path, args):
    args = [a.format(missing=tmp_path / "nope", store=lstm_store.root, out=tmp_path / "o")
            for a in args]
    res = CliRunner().invoke(_app(), args)
    assert res.exit_code == 2
    assert res.exception is None or isinstance(res.exception, SystemExit)
    err = res.stderr.strip()
    assert err.startswith("error:") and "\n" not in err
