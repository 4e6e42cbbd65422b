"""``capture_dataset``: a model over a loader into a store, through the batch protocol."""

from __future__ import annotations

import numpy as np
import torch

import attnscope
from attnscope.capturing.dataset import capture_dataset
from tests.evaluate import fixtures


def test_capture_dataset_restores_train_mode(tmp_path):
    model = fixtures.make_regressor().train()
    loader = torch.utils.data.DataLoader(fixtures.make_regression_data(), batch_size=8)
    done = capture_dataset(model, loader, tmp_path / "s", step="x", limit=5)
    assert done == 5 and model.training
    assert attnscope.open_store(tmp_path / "s").read(
        attnscope.open_store(tmp_path / "s").modules[0], step="x").shape[0] == 5


def test_dict_batches_and_a_limit_inside_a_batch(tmp_path):
    """Hugging Face style dict batches: the target key is not passed to the model, and a
    limit that ends inside a batch runs only the rows kept."""
    model = fixtures.make_regressor().eval()
    data = fixtures.make_regression_data()
    x = torch.stack([data[i][0] for i in range(6)])

    class Keywords(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *, inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(inputs)

    batches = [{"inputs": x[:4], "labels": torch.zeros(4)},
               {"inputs": x[4:], "labels": torch.zeros(2)}]
    done = capture_dataset(Keywords(), batches, tmp_path / "s", step="x", limit=5,
                           dtype="float32")
    store = attnscope.open_store(tmp_path / "s")
    got = store.read(store.modules[0], step="x")
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x[:5])
    assert done == 5 and got.shape[0] == 5
    np.testing.assert_allclose(got, rec.maps[0].weights.numpy(), atol=1e-6)
