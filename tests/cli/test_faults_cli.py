"""Fault cases on the command line: one ``error:`` line, exit code 2, no traceback, and
nothing that was there before lost."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch

from attnscope.cli import main
from attnscope.store import open_store
from tests.store.conftest import fail_shard_writes

REGRESSOR = "tests.evaluate.fixtures:make_regressor"
DATA = "tests.evaluate.fixtures:make_regression_data"
FAULTS = "tests.store.fault_fixtures"


def one_error(capsys, argv: list[str]) -> str:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), out.err
    return lines[0]


def capture_args(store, data: str = DATA, *extra) -> list:
    return ["capture", "--model", REGRESSOR, "--data", data, "--store", store, "--step",
            "val", "--batch-size", "4", *extra]


@pytest.fixture
def captured(tmp_path, capsys):
    assert main([str(a) for a in capture_args(tmp_path / "s")]) == 0
    capsys.readouterr()
    return tmp_path / "s", _read(tmp_path / "s")


def _read(path):
    store = open_store(path)
    return store.read(store.modules[0], "val")


def test_failed_capture_rerun_keeps_the_old_step(captured, capsys):
    path, old = captured
    line = one_error(capsys, capture_args(path, f"{FAULTS}:make_wide_later"))
    assert "samples 8..11" in line
    np.testing.assert_array_equal(_read(path), old)


@pytest.mark.parametrize("data, words", [
    (f"{FAULTS}:make_wide_from_start", "shape"),
    (f"{FAULTS}:make_wrong_dtype", "dtype"),
    (f"{FAULTS}:make_strings", "expects"),
])
def test_data_of_the_wrong_width_or_type(tmp_path, capsys, data, words):
    line = one_error(capsys, capture_args(tmp_path / "s", data))
    assert words in line


def test_disk_full_during_capture_names_the_last_batch(tmp_path, capsys, monkeypatch):
    fail_shard_writes(monkeypatch, 2, OSError(errno.ENOSPC, "No space left on device"))
    line = one_error(capsys, capture_args(tmp_path / "s", DATA, "--dtype", "float32"))
    assert "No space left" in line and "last complete batch: 1" in line
    assert _read(tmp_path / "s").shape[0] == 8  # the two committed batches read back


@pytest.mark.parametrize("make", ["store_is_file", "lock_is_dir"])
def test_unusable_store_paths(tmp_path, capsys, make):
    target = tmp_path / "s"
    if make == "store_is_file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / ".lock").mkdir()
    one_error(capsys, capture_args(target))


def test_failed_evaluate_rerun_keeps_the_old_results(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", REGRESSOR, "--data", DATA, "--out", str(out),
                 "--dpi", "40", "--batch-size", "4"]) == 0
    capsys.readouterr()
    old = open_store(out / "attention").read(open_store(out / "attention").modules[0], "test")
    old_npy = np.load(out / "attention_test.npy")
    one_error(capsys, ["evaluate", "--model", REGRESSOR, "--data", f"{FAULTS}:make_wide_later",
                       "--out", out, "--dpi", "40", "--batch-size", "4"])
    store = open_store(out / "attention")
    np.testing.assert_array_equal(store.read(store.modules[0], "test"), old)
    np.testing.assert_array_equal(np.load(out / "attention_test.npy"), old_npy)


def test_evaluate_out_unwritable(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    one_error(capsys, ["evaluate", "--model", REGRESSOR, "--data", DATA, "--out",
                       tmp_path / "f" / "sub"])


@pytest.mark.parametrize("samples", ["0:10:0", "a:b", "1:2:3:4"])
def test_export_bad_slices(captured, tmp_path, capsys, samples):
    path, _ = captured
    line = one_error(capsys, ["export", path, "--format", "npy", "--out", tmp_path / "o",
                              "--samples", samples])
    assert "--samples" in line


def test_export_out_is_a_file(captured, tmp_path, capsys):
    path, _ = captured
    (tmp_path / "o").write_text("x")
    assert "is a file" in one_error(capsys, ["export", path, "--out", tmp_path / "o"])


@pytest.mark.parametrize("dpi", ["0", "100000", "-5"])
def test_plot_dpi_out_of_range(captured, tmp_path, capsys, dpi):
    path, _ = captured
    line = one_error(capsys, ["plot", path, "--out", tmp_path / "figs", "--dpi", dpi])
    assert "--dpi" in line
    assert not (tmp_path / "figs").exists() or not any((tmp_path / "figs").iterdir())


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("save", ["torch", "pickle4", "pickle2"])
def test_pickle_that_would_run_code_asks_for_trust(tmp_path, capsys, save):
    import pickle

    evil = tmp_path / "evil.pt"
    if save == "torch":
        torch.save({"state_dict": RunsCode()}, evil)
    else:
        evil.write_bytes(pickle.dumps({"w": RunsCode()}, protocol=int(save[-1])))
    line = one_error(capsys, capture_args(tmp_path / "s", DATA, "--checkpoint", evil))
    assert "--trust-checkpoint" in line and "truncated" not in line and "system" in line
    cut = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(64)}, cut)
    cut.write_bytes(cut.read_bytes()[:100])
    assert "truncated" in one_error(capsys, capture_args(tmp_path / "s", DATA,
                                                         "--checkpoint", cut))
