"""The sleep demo: per-call entries of the hierarchy, and true->predicted labels per epoch."""

from __future__ import annotations

from attnscope import open_store
from attnscope.demos.families.sleep import CHANNELS, EPOCHS


def test_temporal_attention_finds_the_burst(demo_run):
    _, result = demo_run("sleep")
    assert result.details["burst_mass_informative"] > result.details["burst_mass_chance"]


def test_store_holds_hierarchy_and_labels(demo_run):
    out, _ = demo_run("sleep")
    store = open_store(out / "store")
    assert f"net.temporal_attn[{EPOCHS * len(CHANNELS) - 1}]" in store.modules
    assert f"net.channel_attn[{EPOCHS - 1}]" in store.modules
    assert store.read("net.epoch_attn", step="test").shape[-2:] == (EPOCHS, EPOCHS)
    labels = store.labels("test")
    assert labels["channels"] == CHANNELS
    epochs = labels["sample_epoch_labels"]
    assert len(epochs) == store.num_samples("net.epoch_attn", "test")
    assert len(epochs[0]) == EPOCHS and "->" in epochs[0][0]


def test_figures_include_the_dashboard(demo_run):
    out, result = demo_run("sleep")
    assert (out / "sleep_dashboard.png") in result.files
