"""The lstm family end to end: trained attention peaks on the marked step, the untrained
control does not, and the store and figures are there."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")

import attnscope  # noqa: E402
from attnscope.zoo.lstm import STEPS, THRESHOLD, run  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("lstm")
    return out, run(out, quick=True)


def test_trained_attention_peaks_on_the_marked_step(trained):
    out, result = trained
    assert result.passed, result
    assert result.threshold == THRESHOLD
    assert result.train_seconds < 60


def test_store_has_every_epoch_and_the_test_set(trained):
    out, result = trained
    store = attnscope.open_store(out / "store")
    epochs = [s for s in store.steps if s.startswith("epoch_")]
    assert epochs == [f"epoch_{i:03d}" for i in range(len(epochs))] and len(epochs) >= 2
    assert "test" in store.steps
    assert store.modules == ["model.attention"]
    w = store.read("model.attention", step="test")
    assert w.shape == (128, 1, 1, STEPS)
    assert store.read("model.attention", step="epoch_000").shape[0] == 32


def test_figures_summary_and_exports_exist(trained):
    out, result = trained
    assert result.files and all(f.exists() and f.stat().st_size > 0 for f in result.files)
    assert (out / "summary.md").read_text().count("threshold") == 1
    assert (out / "attention_all_epochs.npz").exists() and (out / "attention_test.npy").exists()


@pytest.mark.parametrize("attention", ["simple", "dot"])
def test_other_score_functions_learn_the_pattern_too(tmp_path, attention):
    assert run(tmp_path, quick=True, attention=attention).passed


def test_untrained_control_fails_the_threshold(tmp_path):
    result = run(tmp_path, quick=True, trained=False)
    assert not result.passed
    assert result.metric < 2 / STEPS  # about uniform
    assert "test" in attnscope.open_store(tmp_path / "store").steps
