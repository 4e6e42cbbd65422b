"""The text family: the real pretrained MiniLM-L6 has a previous-token head; one store
step per sentence with its tokens."""

from __future__ import annotations

import attnscope


def test_pretrained_model_has_a_strong_previous_token_head(demo_run):
    _, result = demo_run("text")
    assert result.metric > 0.9
    assert result.details["mean [CLS]+[SEP] mass, all heads"] > 0.35


def test_store_holds_6_layers_x_12_heads_with_token_labels(demo_run):
    out, _ = demo_run("text")
    store = attnscope.open_store(out / "store")
    assert store.steps == ["sentence_0", "sentence_1"]
    assert len(store.modules) == 6
    tokens = store.labels("sentence_0")["tokens"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    w = store.read(store.modules[0], step="sentence_0")
    assert w.shape == (1, 12, len(tokens), len(tokens))


def test_figures_cover_overview_and_best_heads(demo_run):
    _, result = demo_run("text")
    assert len(result.files) >= 4
