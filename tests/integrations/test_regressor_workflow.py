"""The Lightning regressor workflow on a forecaster that is not the zoo's: the callback's
exports and ``attnscope export`` write the same files with the same keys and contents;
``attnscope evaluate --prefix`` names files the way training scripts do."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from attnscope.cli import main
from attnscope.integrations.lightning import AttentionCallback
from tests.integrations.regressor_models import Forecaster, holdout, make_net, series

MODELS = "tests.integrations.regressor_models"


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = make_net()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        return nn.functional.mse_loss(self(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", nn.functional.mse_loss(self(batch[0]), batch[1]))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", nn.functional.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.02)


def focus_weights(net: Forecaster, x: torch.Tensor) -> np.ndarray:
    """``(sample, time)`` recomputed from the layers, without attnscope."""
    with torch.no_grad():
        return torch.softmax(net.temporal_focus.scores(net.rnn(x)[0]), -1)[:, 0].numpy()


def test_callback_export_and_evaluate_prefix_agree(tmp_path):
    pl.seed_everything(0, verbose=False)
    module = Module()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[AttentionCallback(dir=tmp_path / "cb")])
    trainer.fit(module, DataLoader(series(24, 0), batch_size=8),
                DataLoader(series(6, 1), batch_size=4))
    trainer.test(module, DataLoader(holdout(), batch_size=4), verbose=False)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    cb = tmp_path / "cb"
    for fmt in ("npz", "csv", "npy"):
        assert main(["export", str(cb / "store"), "--format", fmt, "--out",
                     str(tmp_path / "cli")]) == 0
    cli = tmp_path / "cli"
    assert sorted(p.name for p in cli.iterdir()) == sorted(
        p.name for p in cb.iterdir() if p.is_file())
    with np.load(cb / "attention_all_epochs.npz") as a, \
            np.load(cli / "attention_all_epochs.npz") as b:
        assert sorted(a.files) == sorted(b.files) == ["epoch_0", "epoch_1", "test", "time_steps"]
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_allclose(a["test"], focus_weights(module.model, holdout().tensors[0]),
                                   atol=1e-3)
    assert (cb / "attention_all_epochs.csv").read_text() == \
        (cli / "attention_all_epochs.csv").read_text()

    out = tmp_path / "eval"
    assert main(["evaluate", "--model", f"{MODELS}:make_net", "--data", f"{MODELS}:holdout",
                 "--checkpoint", str(tmp_path / "model.ckpt"), "--prefix", "GRU",
                 "--out", str(out), "--dpi", "50"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"GRU_scatter.png", "GRU_attention_heatmap.png", "GRU_attention_weights.npy",
            "GRU_predictions.csv", "GRU_results.json", "GRU_attention"} <= names
    assert not any(n.startswith(("attention_test", "predicted_vs_actual")) for n in names)
    weights = np.load(out / "GRU_attention_weights.npy")
    np.testing.assert_allclose(weights, focus_weights(module.model.eval(),
                                                      holdout().tensors[0]), atol=1e-3)
    assert main(["evaluate", "--model", f"{MODELS}:make_net", "--data", f"{MODELS}:holdout",
                 "--prefix", "../x", "--out", str(out)]) == 2
