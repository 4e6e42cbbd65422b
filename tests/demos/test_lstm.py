"""The lstm family: its store holds 32 validation samples per epoch and the whole test
set; the exports scripts read are there; every score function learns the pattern."""

from __future__ import annotations

import pytest

import attnscope
from attnscope.demos import get_family
from attnscope.demos.families.lstm import STEPS
from tests.demos.conftest import require


def test_store_has_every_epoch_and_the_test_set(demo_run):
    out, _ = demo_run("lstm")
    store = attnscope.open_store(out / "store")
    assert store.modules == ["model.attention"]
    w = store.read("model.attention", step="test")
    assert w.shape == (128, 1, 1, STEPS)
    assert store.read("model.attention", step="epoch_000").shape[0] == 32


def test_the_evolution_shows_attention_forming(demo_run):
    """The first epoch is still near uniform and the last on the mark: the evolution
    figure has something to show (a few training steps per epoch)."""
    _, result = demo_run("lstm")
    assert result.details["first epoch metric"] < 0.5 <= result.details["last epoch metric"]


def test_exports_exist(demo_run):
    out, _ = demo_run("lstm")
    assert (out / "attention_all_epochs.npz").exists() and (out / "attention_test.npy").exists()


@pytest.mark.parametrize("attention", ["simple", "dot"])
def test_other_score_functions_learn_the_pattern_too(tmp_path, attention):
    require("lstm")
    assert get_family("lstm").run(tmp_path, quick=True, attention=attention).passed
