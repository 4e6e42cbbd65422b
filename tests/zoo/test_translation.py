"""The translation demo trains, captures during greedy decoding, and shows alignment."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")

from attnscope import open_store  # noqa: E402
from attnscope.zoo.registry import get_family  # noqa: E402
from attnscope.zoo.translation import TGT_LEN  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("translation")
    return out, get_family("translation").run(out, seed=0, quick=True)


def test_trained_cross_attention_aligns_words(trained):
    _, result = trained
    assert result.passed, result
    assert result.metric >= result.threshold


def test_untrained_control_fails(tmp_path):
    result = get_family("translation").run(tmp_path, seed=0, quick=True, trained=False)
    assert not result.passed, result


def test_store_has_epochs_test_and_token_labels(trained):
    out, _ = trained
    store = open_store(out / "store")
    assert store.steps[0] == "epoch_000" and store.steps[-1] == "test"
    assert all(s.startswith("epoch_") for s in store.steps[:-1])
    labels = store.labels("test")
    assert len(labels["sample_source_tokens"]) == store.num_samples("net.encoder.0.self_attn",
                                                                     "test")
    assert "ga" in labels["sample_source_tokens"][0]
    last = f"net.decoder.1.cross_attn[{TGT_LEN - 1}]"
    assert store.module_info(last)["kind"] == "cross"
    assert store.read(last, step="test").shape[2] == 1  # one row per generated token


def test_figures_and_summary(trained):
    out, result = trained
    assert result.files and all(p.exists() for p in result.files)
    assert any(p.suffix == ".png" for p in result.files)
    assert "threshold" in (out / "summary.md").read_text()
