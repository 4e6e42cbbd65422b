"""The sleep demo learns to attend to the one channel that carries the stage."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")

from attnscope import open_store  # noqa: E402
from attnscope.zoo.registry import get_family  # noqa: E402
from attnscope.zoo.sleep import CHANNELS, EPOCHS  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("sleep")
    return out, get_family("sleep").run(out, seed=0, quick=True)


def test_channel_attention_favours_informative_channel(trained):
    _, result = trained
    assert result.passed, result
    assert result.details["burst_mass_informative"] > result.details["burst_mass_chance"]


def test_untrained_control_fails(tmp_path):
    result = get_family("sleep").run(tmp_path, seed=0, quick=True, trained=False)
    assert not result.passed, result


def test_store_holds_hierarchy_and_labels(trained):
    out, _ = trained
    store = open_store(out / "store")
    assert store.steps[0] == "epoch_000" and store.steps[-1] == "test"
    assert f"net.temporal_attn[{EPOCHS * len(CHANNELS) - 1}]" in store.modules
    assert f"net.channel_attn[{EPOCHS - 1}]" in store.modules
    assert store.read("net.epoch_attn", step="test").shape[-2:] == (EPOCHS, EPOCHS)
    labels = store.labels("test")
    assert labels["channels"] == CHANNELS
    epochs = labels["sample_epoch_labels"]
    assert len(epochs) == store.num_samples("net.epoch_attn", "test")
    assert len(epochs[0]) == EPOCHS and "->" in epochs[0][0]


def test_figures_and_summary(trained):
    out, result = trained
    assert all(p.exists() for p in result.files)
    assert (out / "sleep_dashboard.png") in result.files
