"""The Lightning callback on a real Trainer: steps, fixed sample subset, exports,
logger images, no effect on training, config switches, DDP on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

import attnscope
from attnscope.integrations.config import ConfigError, load_attention_config
from attnscope.integrations.lightning import AttentionCallback
from tests.integrations.lightning_models import Regressor, dataset, loaders

ROOT = Path(__file__).resolve().parents[2]


def _trainer(tmp_path, callbacks, epochs=2, logger=False, **kwargs):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks,
                      logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path,
                      deterministic=True, **kwargs)


def _fit(tmp_path, callbacks, epochs=2, test=True, **kwargs):
    pl.seed_everything(0, verbose=False)
    model = Regressor()
    train, val, test_loader = loaders()
    trainer = _trainer(tmp_path, callbacks, epochs, **kwargs)
    trainer.fit(model, train, val)
    if test:
        trainer.test(model, test_loader, verbose=False)
    return model, trainer


def _direct(model, data):
    model.eval()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(data.tensors[0])
    return rec.maps[0].weights.numpy()


def test_validation_subset_every_epoch_and_the_test_set(tmp_path):
    callback = AttentionCallback(samples=6, dir=tmp_path / "attn")
    model, _ = _fit(tmp_path, [callback])
    store = attnscope.open_store(tmp_path / "attn" / "store")
    assert store.steps == ["epoch_000", "epoch_001", "test"]
    assert store.modules == ["model.attention"]
    epoch1 = store.read("model.attention", step="epoch_001")
    assert epoch1.shape == (6, 1, 1, 12)
    np.testing.assert_allclose(epoch1, _direct(model, dataset(10, 1))[:6], atol=1e-3)
    np.testing.assert_allclose(store.read("model.attention", step="test"),
                               _direct(model, dataset(7, 2)), atol=1e-3)
    assert store.labels("epoch_000")["sample_ids"] == list(range(6))
    # batches 0 and 1 hold samples 0..7; batch 2 (samples 8, 9) runs with nothing attached
    assert [a for _, a in model.mode_active[-3:]] == [True, True, False]


def test_exports_in_the_layout_scripts_read(tmp_path):
    _fit(tmp_path, [AttentionCallback(samples=6, dir=tmp_path / "attn")])
    out = tmp_path / "attn"
    assert np.load(out / "attention_epoch_000.npy").shape == (6, 12)
    assert np.load(out / "attention_test.npy").shape == (7, 12)
    with np.load(out / "attention_all_epochs.npz") as npz:
        assert sorted(npz.files) == ["epoch_0", "epoch_1", "test", "time_steps"]
        assert npz["time_steps"].tolist() == list(range(12))
        np.testing.assert_allclose(npz["epoch_1"].sum(-1), 1.0, atol=1e-2)
    header, *rows = (out / "attention_all_epochs.csv").read_text().splitlines()
    assert header == "step,sample,module,head,query,key,weight"
    assert len(rows) == (6 + 6 + 7) * 12


def test_the_callback_does_not_change_training(tmp_path):
    plain, _ = _fit(tmp_path / "a", [], test=False)
    watched, _ = _fit(tmp_path / "b", [AttentionCallback(samples=6, dir=tmp_path / "attn")],
                      test=False)
    assert plain.losses == watched.losses
    for p, w in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(p, w)


def test_every_n_epochs(tmp_path):
    _fit(tmp_path, [AttentionCallback(every_n_epochs=2, dir=tmp_path / "attn")], epochs=3,
         test=False)
    assert attnscope.open_store(tmp_path / "attn" / "store").steps == ["epoch_001"]


def test_a_heatmap_per_epoch_reaches_tensorboard(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    _fit(tmp_path, [AttentionCallback(samples=4)], logger=logger, test=False)
    out = Path(logger.log_dir) / "attention"
    assert (out / "store").is_dir() and (out / "attention_all_epochs.npz").is_file()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["attention/model.attention"]
    assert len(events.Images("attention/model.attention")) == 2


def test_config_section_and_command_line_overrides(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("model: {}\nattention:\n  enabled: true\n  every_n_epochs: 2\n"
                      "  samples: 5\n  modules: model.attention\n  dtype: float32\n")
    loaded = load_attention_config(config)
    assert (loaded.every_n_epochs, loaded.samples, loaded.modules, loaded.dtype) == (
        2, 5, ("model.attention",), "float32")
    off = load_attention_config(config, save_attention=False, attention_dir=tmp_path / "x")
    assert not off.enabled and off.dir == str(tmp_path / "x")
    assert AttentionCallback.from_config(off) is None
    callback = AttentionCallback.from_config(loaded.with_overrides(attention_dir=tmp_path / "d"))
    assert callback.every_n_epochs == 2 and callback.dir == tmp_path / "d"
    assert load_attention_config(None).enabled
    config.write_text("attention:\n  every_n_epoch: 2\n")
    with pytest.raises(ConfigError, match="every_n_epoch"):
        load_attention_config(config)
    config.write_text("attention:\n  samples: -3\n")
    with pytest.raises(ConfigError, match="samples"):
        load_attention_config(config)


def test_ddp_on_cpu_each_sample_exactly_once(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, str(ROOT / "tests/integrations/ddp_script.py"),
                          str(tmp_path)], cwd=tmp_path, env=env, timeout=300,
                         capture_output=True, text=True)
    (tmp_path / "stderr.txt").write_text(run.stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    store = attnscope.open_store(tmp_path / "attn" / "store")
    assert store.steps == ["epoch_000", "test"]  # the per-rank parts were merged away
    assert store.labels("epoch_000")["sample_ids"] == list(range(7))
    assert store.labels("test")["sample_ids"] == list(range(7))
    model = torch.load(tmp_path / "model.pt", weights_only=False)
    np.testing.assert_allclose(store.read("model.attention", step="test"),
                               _direct(model, dataset(7, 2)), atol=1e-3)
    np.testing.assert_allclose(store.read("model.attention", step="epoch_000"),
                               _direct(model, dataset(10, 1))[:7], atol=1e-3)


def test_argparse_switches_win_over_the_file(tmp_path):
    import argparse

    from attnscope.integrations.config import add_attention_arguments, attention_overrides

    config = tmp_path / "config.yaml"
    config.write_text("attention:\n  enabled: true\n  dir: from_file\n")
    parser = add_attention_arguments(argparse.ArgumentParser())
    plain = load_attention_config(config, **attention_overrides(parser.parse_args([])))
    assert plain.enabled and plain.dir == "from_file"
    off = load_attention_config(config, **attention_overrides(
        parser.parse_args(["--no-save-attention", "--attention-dir", "cli"])))
    assert not off.enabled and off.dir == "cli"
    config.write_text("attention:\n  enabled: false\n")
    assert load_attention_config(config, **attention_overrides(
        parser.parse_args(["--save-attention"]))).enabled
    with pytest.raises(SystemExit):
        parser.parse_args(["--save-attention", "--no-save-attention"])
