"""The ``attention:`` section reads the names training scripts already use."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest

import attnscope
from attnscope.integrations.config import ConfigError, load_attention_config
from attnscope.integrations.lightning import AttentionCallback
from tests.integrations.lightning_models import Regressor, loaders


def _load(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_attention_config(path)


def test_researcher_keys_are_read(tmp_path):
    config = _load(tmp_path, "training: {epochs: 3}\nattention:\n  save_attention: true\n"
                   "  save_per_epoch: false\n  save_test: true\n  num_samples: 8\n"
                   "  save_every_n_epochs: 2\n  attention_dir: runs/a\n"
                   "  save_format: [npy, npz]\n  layers: encoder.*\n")
    assert (config.enabled, config.per_epoch, config.test, config.samples) == (
        True, False, True, 8)
    assert (config.every_n_epochs, config.dir, config.formats, config.modules) == (
        2, "runs/a", ("npy", "npz"), ("encoder.*",))
    callback = AttentionCallback.from_config(config)
    assert (callback.per_epoch, callback.formats, callback.samples) == (
        False, ("npy", "npz"), 8)


def test_unknown_twice_and_wrong_values_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="save_per_epoc"):
        _load(tmp_path, "attention:\n  save_per_epoc: true\n")
    with pytest.raises(ConfigError, match="'samples' twice"):
        _load(tmp_path, "attention:\n  samples: 3\n  num_samples: 4\n")
    with pytest.raises(ConfigError, match="per_epoch must be true or false"):
        _load(tmp_path, "attention:\n  save_per_epoch: 'yes please'\n")
    with pytest.raises(ConfigError, match="formats"):
        _load(tmp_path, "attention:\n  save_format: [parquet]\n")


def test_save_per_epoch_false_captures_only_the_test_set(tmp_path):
    config = _load(tmp_path, "attention:\n  save_per_epoch: false\n  save_format: npy\n")
    callback = AttentionCallback.from_config(config.with_overrides(attention_dir=tmp_path / "a"))
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[callback],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    train, val, test = loaders()
    model = Regressor()
    trainer.fit(model, train, val)
    trainer.test(model, test, verbose=False)
    assert attnscope.open_store(tmp_path / "a" / "store").steps == ["test"]
    assert sorted(p.name for p in (tmp_path / "a").glob("attention_*")) == [
        "attention_test.npy"]
