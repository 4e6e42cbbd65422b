"""The translation demo: captured during greedy decoding, one entry per generated token."""

from __future__ import annotations

from attnscope import open_store
from attnscope.demos.families.translation import TGT_LEN


def test_store_has_epochs_test_and_token_labels(demo_run):
    out, _ = demo_run("translation")
    store = open_store(out / "store")
    assert all(s.startswith("epoch_") for s in store.steps[:-1])
    labels = store.labels("test")
    assert len(labels["sample_source_tokens"]) == store.num_samples("net.encoder.0.self_attn",
                                                                     "test")
    assert "ga" in labels["sample_source_tokens"][0]
    last = f"net.decoder.1.cross_attn[{TGT_LEN - 1}]"
    assert store.module_info(last)["kind"] == "cross"
    assert store.read(last, step="test").shape[2] == 1  # one row per generated token
