"""capture(..., store=...) end to end: what is read back is what was captured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnscope
from attnscope.store import open_writer
from tests.capturing import models
from tests.capturing.cases import _decoder


def test_every_model_call_is_one_batch_and_reads_back(tmp_path):
    model, (tgt, memory, causal) = _decoder()
    recorded = []
    with torch.no_grad():
        for step in ("epoch_000", "epoch_001"):
            with attnscope.capture(model, store=tmp_path / "s", step=step, keep=True) as rec:
                for i in range(3):
                    model(tgt + i, memory, causal)
            recorded.append(rec)
    store = attnscope.open_store(tmp_path / "s")
    assert store.steps == ["epoch_000", "epoch_001"]
    assert store.modules == recorded[0].modules
    for step, rec in zip(store.steps, recorded):
        for module in rec.modules:
            expected = rec.stacked(module).numpy()
            got = store.read(module, step=step)
            assert got.shape == expected.shape == (6, 4, *expected.shape[2:])
            np.testing.assert_allclose(got, expected, atol=1e-3)  # float16 on disk


def test_a_forward_that_raises_keeps_the_batches_before_it(tmp_path):
    model, (tgt, memory, causal) = _decoder()
    with pytest.raises(RuntimeError, match="stop"), torch.no_grad():
        with attnscope.capture(model, store=tmp_path / "s", step="val"):
            model(tgt, memory, causal)
            model(tgt, memory, causal)
            raise RuntimeError("stop")
    store = attnscope.open_store(tmp_path / "s")
    assert store.read("layers.0.self_attn", step="val").shape[0] == 4


def test_the_effective_matrix_and_labels_reach_the_store(tmp_path):
    torch.manual_seed(0)
    model = models.ConvTranLike().eval()
    writer = open_writer(tmp_path / "s", step="test", model=model,
                         labels={"time_steps": list(range(12))})
    with torch.no_grad(), attnscope.capture(model, store=writer, keep=True) as rec:
        model(torch.randn(2, 3, 12))
    writer.close()
    store = attnscope.open_store(tmp_path / "s")
    assert store.modules == ["attention_layer", "attention_layer@effective"]
    np.testing.assert_allclose(store.read("attention_layer@effective", step="test"),
                               rec.maps[0].effective.numpy(), atol=2e-3)
    assert store.labels("test")["time_steps"] == list(range(12))


def test_head_selection_is_recorded_per_step(tmp_path):
    model, (tgt, memory, causal) = _decoder()
    with torch.no_grad():
        with attnscope.capture(model, store=tmp_path / "s", step="mean", reduce="mean"):
            model(tgt, memory, causal)
        with attnscope.capture(model, store=tmp_path / "s", step="some", heads=[3, 1]):
            model(tgt, memory, causal)
        with attnscope.capture(model, store=tmp_path / "s", step="all"):
            model(tgt, memory, causal)
    store = attnscope.open_store(tmp_path / "s")
    module = store.modules[0]
    info = {step: store.module_info(module, step=step) for step in store.steps}
    assert (info["mean"]["num_heads"], info["mean"]["reduced"]) == (1, "mean")
    assert (info["some"]["num_heads"], info["some"]["heads"]) == (2, [3, 1])
    assert (info["all"]["num_heads"], info["all"]["heads"], info["all"]["reduced"]) == (
        4, None, None)
    assert store.read(module, step="all").shape[1] == 4
