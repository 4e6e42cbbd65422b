"""The evolution figure says what its default leaves out: the test split is kept apart
from the training epochs, and thinned epochs are counted under the title."""

from __future__ import annotations

import torch
from torch import nn

import attnscope
from attnscope.plot import plot_evolution


class Pool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(3, 1)

    def forward(self, x):
        return torch.softmax(self.score(x).squeeze(-1), -1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool_attention = Pool()

    def forward(self, x):
        return self.pool_attention(x)


def test_test_split_apart_and_thinned_epochs_counted(tmp_path):
    net, x = Net(), torch.randn(3, 5, 3)
    for step in [f"epoch_{i:03d}" for i in range(7)] + ["test"]:
        with attnscope.capture(net, store=tmp_path, step=step):
            net(x)
    store = attnscope.open_store(tmp_path)
    fig = plot_evolution(store, "pool_attention")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "test" not in titles and len(titles) == 6
    assert titles[0] == "epoch_000" and titles[-1] == "epoch_006"
    note = fig._suptitle.get_text()
    assert "test not shown" in note and "6 of 7 epochs shown" in note
    fig = plot_evolution(store, "pool_attention", steps=["epoch_006", "test"])
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["epoch_006", "test"]
    assert "not shown" not in fig._suptitle.get_text()
