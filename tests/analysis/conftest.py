"""Small models and stores shared by the analysis tests."""

from __future__ import annotations

import pytest
import torch

import attnscope


def make_encoder(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()


@pytest.fixture(scope="module")
def encoder_store(tmp_path_factory):
    """Two steps of a 2-layer encoder; batches of different lengths in each step."""
    path = tmp_path_factory.mktemp("stats") / "store"
    model = make_encoder()
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(3, 7, 16, generator=gen), torch.randn(2, 9, 16, generator=gen)]
    for step in ("epoch_000", "epoch_001"):
        with torch.no_grad(), attnscope.capture(model, store=path, step=step,
                                                dtype="float32"):
            for x in inputs:
                model(x)
        with torch.no_grad():  # the model changes between the steps
            model.layers[1].self_attn.in_proj_weight.mul_(3.0)
    return path, inputs
