"""What every demo family must do: the trained model shows the known pattern, the same
model untrained does not, and the run leaves its store, figures and summary behind."""

from __future__ import annotations

import pytest

import attnscope
from attnscope.demos import get_family
from tests.demos.conftest import NAMES, require

# where the family's own metric must stay for an untrained model (about uniform)
CONTROL_BELOW = {"lstm": 2 / 24, "convtran": 1.5 * 40 / 1000, "text": 0.2, "induction": 0.1}


def test_every_family_is_listed():
    assert NAMES == ["lstm", "translation", "sleep", "convtran", "graph", "text", "induction"]


@pytest.mark.parametrize("name", NAMES)
def test_trained_model_shows_the_pattern(demo_run, name):
    _, result = demo_run(name)
    assert result.family == name
    assert result.passed, result


@pytest.mark.parametrize("name", NAMES)
def test_untrained_control_does_not(tmp_path, name):
    require(name)
    result = get_family(name).run(tmp_path, seed=0, quick=True, trained=False)
    assert not result.passed, result
    assert result.metric < CONTROL_BELOW.get(name, result.threshold)
    assert attnscope.open_store(tmp_path / "store").steps  # same layout as a trained run


@pytest.mark.parametrize("name", NAMES)
def test_figures_and_summary_are_written(demo_run, name):
    out, result = demo_run(name)
    assert result.files and all(f.exists() and f.stat().st_size > 0 for f in result.files)
    assert any(f.suffix == ".png" for f in result.files)
    summary = out / "summary.md"
    assert summary in result.files
    assert summary.read_text().count("threshold") == 1


@pytest.mark.parametrize("name", [n for n in NAMES if n != "text"])
def test_store_holds_every_epoch_then_the_test_set(demo_run, name):
    out, _ = demo_run(name)
    store = attnscope.open_store(out / "store")
    epochs = [s for s in store.steps if s.startswith("epoch_")]
    assert epochs == [f"epoch_{i:03d}" for i in range(len(epochs))] and len(epochs) >= 2
    assert store.steps[0] == "epoch_000" and store.steps[-1] == "test"


def test_a_run_puts_the_process_back_as_it_found_it():
    import logging
    import os
    import random

    import torch

    from attnscope.demos.demo import process_state

    logger = logging.getLogger("lightning.pytorch")
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              logger.level, os.environ.get("HF_HUB_OFFLINE"), torch.random.get_rng_state(),
              random.getstate())
    with process_state():
        assert logger.level == logging.WARNING
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        os.environ["HF_HUB_OFFLINE"] = "1"
        torch.manual_seed(123)
        random.seed(123)
    after = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             logger.level, os.environ.get("HF_HUB_OFFLINE"), torch.random.get_rng_state(),
             random.getstate())
    assert after[:4] == before[:4]
    assert torch.equal(after[4], before[4]) and after[5] == before[5]
