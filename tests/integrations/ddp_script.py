"""Run by test_lightning.py: two CPU processes with strategy="ddp" (gloo). Lightning
re-runs this script for rank 1."""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from attnscope.integrations.lightning import AttentionCallback
from tests.integrations.lightning_models import Regressor, loaders

if __name__ == "__main__":
    out = Path(sys.argv[1])
    pl.seed_everything(0, verbose=False)
    model = Regressor()
    train, val, test = loaders(batch_size=2)  # 10 val samples over 2 ranks; test 7 (padded)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp",
                         callbacks=[AttentionCallback(samples=7, dir=out / "attn")],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=out)
    trainer.fit(model, train, val)
    trainer.test(model, test, verbose=False)
    if trainer.is_global_zero:
        torch.save(model, out / "model.pt")
