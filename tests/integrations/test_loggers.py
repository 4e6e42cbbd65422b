"""The callback's figures and scalars reach every logger the trainer has, two at once."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest

from attnscope.integrations.lightning import AttentionCallback
from tests.integrations.lightning_models import Regressor, loaders


def _fit(tmp_path: Path, loggers: list) -> None:
    pl.seed_everything(0, verbose=False)
    callback = AttentionCallback(samples=4, dir=tmp_path / "attn", log_metrics=["peak"])
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, callbacks=[callback],
                         logger=loggers, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    train, val, test = loaders()
    trainer.fit(Regressor(), train, val)


def _csv_outputs(logger) -> tuple[list[str], list[Path]]:
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        columns = next(csv.reader(f))
    return columns, sorted((Path(logger.log_dir) / "figures").rglob("*.png"))


def test_tensorboard_and_csv_loggers_both_get_figures_and_scalars(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb, table = TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv")
    _fit(tmp_path, [tb, table])
    events = EventAccumulator(tb.log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert len(events.Images("attention/model.attention")) == 2
    scalar = "attention/model.attention/head0/peak"
    assert len(events.Scalars(scalar)) == 2
    columns, pngs = _csv_outputs(table)
    assert scalar in columns
    assert [p.name for p in pngs] == ["epoch_000.png", "epoch_001.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)


def test_mlflow_local_file_store_and_csv(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local folder, no server
    flow = MLFlowLogger(experiment_name="attn", tracking_uri=(tmp_path / "mlruns").as_uri())
    table = CSVLogger(tmp_path, name="csv")
    _fit(tmp_path, [flow, table])
    run = flow.experiment.get_run(flow.run_id)
    assert "attention/model.attention/head0/peak" in run.data.metrics
    history = flow.experiment.get_metric_history(flow.run_id,
                                                 "attention/model.attention/head0/peak")
    assert len(history) == 2
    artifacts = sorted((tmp_path / "mlruns").rglob("artifacts/attention/*/*.png"))
    assert [p.name for p in artifacts] == ["epoch_000.png", "epoch_001.png"]
    columns, pngs = _csv_outputs(table)
    assert "attention/model.attention/head0/peak" in columns and len(pngs) == 2
