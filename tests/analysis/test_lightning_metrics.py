"""The Lightning callback logs per-head attention metrics each epoch as TensorBoard
scalars, equal to head_stats of the step it just captured."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytest.importorskip("tensorboard")

import lightning.pytorch as pl  # noqa: E402

import attnscope  # noqa: E402
from attnscope.analysis import head_stats  # noqa: E402
from attnscope.integrations.lightning import AttentionCallback  # noqa: E402
from tests.integrations.lightning_models import Regressor, loaders  # noqa: E402


def test_metrics_per_head_reach_tensorboard_every_epoch(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pl.seed_everything(0, verbose=False)
    logger = TensorBoardLogger(tmp_path, name="tb")
    callback = AttentionCallback(samples=4, log_images=False,
                                 log_metrics=["norm_entropy", "peak"])
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, callbacks=[callback],
                         logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, deterministic=True,
                         num_sanity_val_steps=0)
    train, val, _ = loaders()
    trainer.fit(Regressor(), train, val)
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    tag = "attention/model.attention/head0/peak"
    assert {tag, "attention/model.attention/head0/norm_entropy"} <= set(events.Tags()["scalars"])
    logged = [e.value for e in events.Scalars(tag)]
    assert len(logged) == 2  # one point per epoch
    store = attnscope.open_store(Path(logger.log_dir) / "attention" / "store")
    want = head_stats(store, steps=["epoch_001"]).value("model.attention", "peak",
                                                        "epoch_001", head=0)
    assert logged[-1] == pytest.approx(want, rel=1e-5)


def test_unknown_metric_names_are_refused_early():
    with pytest.raises(ValueError, match="unknown"):
        AttentionCallback(log_metrics=["entropyy"])
