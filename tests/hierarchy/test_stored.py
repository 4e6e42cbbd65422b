"""``attnscope plot --kind dashboard`` on a store: all three levels assembled from the
store's per-call entries, equal to what the dashboard finds in a live recording."""

from __future__ import annotations

import numpy as np
import torch

import attnscope
from attnscope.cli import main
from attnscope.hierarchy import collect, store_levels
from tests.hierarchy.models import make_nights, make_stager


def _store(path):
    model, (x, _) = make_stager(), make_nights()
    with torch.no_grad(), attnscope.capture(model, store=path, step="test", include=["*"],
                                            dtype="float32"):
        model(x[:2])   # two batches: rows of each are sample-major, batches in order
        model(x[2:4])
    return attnscope.open_store(path)


def test_store_levels_equal_the_live_ones(tmp_path):
    store = _store(tmp_path / "s")
    stored = store_levels(store, "test")
    live = collect(make_stager(), make_nights(), num_samples=4, batch_size=2).levels
    assert list(stored) == ["epoch", "channel", "temporal"]
    for level, found in live.items():
        assert stored[level].module == found.module
        np.testing.assert_allclose(stored[level].weights, found.weights, atol=1e-5)


def test_plot_kind_dashboard_draws_every_level(tmp_path, capsys):
    store = _store(tmp_path / "s")
    assert len(store.modules) > 3  # several modules: no --module needed
    code = main(["plot", str(tmp_path / "s"), "--kind", "dashboard", "--sample", "3",
                 "--out", str(tmp_path / "f"), "--dpi", "40"])
    assert code == 0, capsys.readouterr().err
    (png,) = (tmp_path / "f").glob("*.png")
    assert png.name == "dashboard_test_s3.png"
    from matplotlib.image import imread

    img = imread(png)
    # epoch matrix, channel strip and temporal rows: the lower half is drawn, not blank
    lower = img[img.shape[0] // 2:, :, :3]
    assert (lower.std(axis=(0, 1)) > 0.05).all()


def test_a_store_without_a_hierarchy_is_one_line(tmp_path, capsys):
    from torch import nn

    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad(), attnscope.capture(mha, store=tmp_path / "s", step="test"):
        mha(x, x[:, :3], x[:, :3])  # 5 queries, 3 keys: no square map across epochs
    code = main(["plot", str(tmp_path / "s"), "--kind", "dashboard", "--out",
                 str(tmp_path / "f")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "found no attention across epochs" in err and "--module" in err
    assert "--epoch-module" not in err and "Traceback" not in err
