"""``lstm``: an LSTM regressor with attention over time steps, trained with Lightning.

Task: each sample is ``T`` steps of two channels, a Gaussian value and an indicator that
is 1 at exactly one random step ``m``; the target is ``value[m]``. Everything the model
needs sits at step ``m``, so a working attention puts its mass there, and the metric is
the mean test-set weight on the marked step (uniform attention gives ``1/T``).

Three score functions, as users write them: ``"additive"`` (Bahdanau,
``v . tanh(W h_t)``), ``"simple"`` (a linear score per step) and ``"dot"`` (scaled
dot product of a query from the last state with keys from every state).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from attnscope.zoo import _common_a as common
from attnscope.zoo.registry import DemoResult, register_family

ATTENTIONS = ("additive", "simple", "dot")
STEPS = 24
THRESHOLD = 0.5  # 12x the uniform share 1/24
EXPECTED = "attention peaks on the marked time step (mean weight there >= 0.5; uniform 1/24)"


class TemporalAttention(nn.Module):
    """Attention over time steps; returns ``(context, weights)`` with weights
    ``(batch, time)`` from a softmax over time (what attnscope captures)."""

    def __init__(self, hidden: int, attention: str = "additive") -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {attention!r}")
        self.kind = attention
        if attention == "additive":
            self.proj = nn.Linear(hidden, hidden)
            self.score = nn.Linear(hidden, 1, bias=False)
        elif attention == "simple":
            self.score = nn.Linear(hidden, 1)
        else:
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # states: (batch, time, hidden)
        if self.kind == "additive":
            scores = self.score(torch.tanh(self.proj(states))).squeeze(-1)
        elif self.kind == "simple":
            scores = self.score(states).squeeze(-1)
        else:
            q = self.query(states[:, -1:])  # (batch, 1, hidden)
            k = self.key(states)  # (batch, time, hidden)
            scores = (q @ k.transpose(1, 2)).squeeze(1) / math.sqrt(k.shape[-1])
        weights = torch.softmax(scores, dim=1)  # (batch, time)
        context = (weights.unsqueeze(-1) * states).sum(1)
        return context, weights


class LSTMAttentionRegressor(nn.Module):
    def __init__(self, features: int = 2, hidden: int = 32, attention: str = "additive"):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.attention = TemporalAttention(hidden, attention)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(x)
        context, _ = self.attention(states)
        return self.head(context).squeeze(-1)


def make_data(n: int, generator: torch.Generator) -> TensorDataset:
    """(x, y, marked): x ``(n, STEPS, 2)`` = value, indicator; y = value at the mark."""
    value = torch.randn(n, STEPS, generator=generator)
    marked = torch.randint(0, STEPS, (n,), generator=generator)
    indicator = nn.functional.one_hot(marked, STEPS).float()
    y = value[torch.arange(n), marked]
    return TensorDataset(torch.stack([value, indicator], -1), y, marked)


def mass_on_mark(weights, marked) -> float:
    """Mean weight on the marked step; weights ``(sample, 1, 1, time)``."""
    import numpy as np

    w = np.asarray(weights)[:, 0, 0]
    return float(w[np.arange(len(w)), np.asarray(marked)[: len(w)]].mean())


@register_family("lstm", "LSTM regressor with attention over time steps (Lightning)",
                 expected=EXPECTED)
def run(out: Path, *, seed: int = 0, quick: bool = False, trained: bool = True,
        attention: str = "additive") -> DemoResult:
    """Train, capture every validation epoch and the test set, draw, score."""
    import numpy as np

    from attnscope.plot import plot_bars
    from attnscope.store import open_store

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = common.seed_all(seed)
    n_train, epochs = (1024, 8) if quick else (4096, 15)
    train, val, test = make_data(n_train, g), make_data(256, g), make_data(128, g)
    model = LSTMAttentionRegressor(attention=attention)
    loaders = (DataLoader(train, batch_size=64, shuffle=True, generator=g),
               DataLoader(val, batch_size=128), DataLoader(test, batch_size=128))
    module = common.lightning_module(model, nn.functional.mse_loss, 1e-2)
    seconds = common.train_and_capture(module, loaders, out, epochs=epochs, trained=trained,
                                       samples=32)

    store = open_store(out / "store")
    name = "model.attention"
    metric = mass_on_mark(store.read(name, step="test"), test.tensors[2])
    steps = common.epoch_steps(store)
    per_epoch = [mass_on_mark(store.read(name, step=s), val.tensors[2]) for s in steps]
    files = []
    for i in range(3):
        path = out / f"attention_test_sample{i}.png"
        plot_bars(store, module=name, step="test", sample=i, signal=test.tensors[0][i],
                  signal_labels=["value", "indicator"], top_k=2, path=path,
                  title=f"{attention} attention, test sample {i}: marked step "
                        f"{int(test.tensors[2][i])}, target {float(test.tensors[1][i]):.2f}")
        files.append(path)
    rows = np.stack([store.read(name, step=s, samples=[0])[0, 0, 0] for s in steps])
    files.append(common.plot_evolution(
        rows, per_epoch, steps=steps, marked=[int(val.tensors[2][0])],
        metric_name="mean weight on marked step", threshold=THRESHOLD,
        title=f"validation sample 0 across epochs (marked step {int(val.tensors[2][0])})",
        path=out / "attention_evolution.png"))
    result = DemoResult("lstm", "mean attention weight on the marked step (test set)", metric,
                        THRESHOLD, seconds, files,
                        {"uniform share 1/T": 1 / STEPS, "first epoch metric": per_epoch[0],
                         "last epoch metric": per_epoch[-1], "epochs": float(len(steps))})
    common.write_summary(out, result, expected=EXPECTED, trained=trained,
                         task=f"{STEPS} steps x (value, indicator); target = value at the "
                              f"indicated step; {attention} attention",
                         notes=["store: `store/` (steps epoch_000.. and test); exports "
                                "`attention_*.npy`, `attention_all_epochs.npz`/`.csv`"])
    result.files.append(out / "summary.md")
    return result
