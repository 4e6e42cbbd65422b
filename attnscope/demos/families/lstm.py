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

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import register_family

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


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(x, y, marked): x ``(n, STEPS, 2)`` = value, indicator; y = value at the mark."""
    value = torch.randn(n, STEPS, generator=generator)
    marked = torch.randint(0, STEPS, (n,), generator=generator)
    indicator = nn.functional.one_hot(marked, STEPS).float()
    y = value[torch.arange(n), marked]
    return torch.stack([value, indicator], -1), y, marked


def mass_on_mark(weights, marked) -> float:
    """Mean weight on the marked step; weights ``(sample, 1, 1, time)``."""
    import numpy as np

    w = np.asarray(weights)[:, 0, 0]
    return float(w[np.arange(len(w)), np.asarray(marked)[: len(w)]].mean())


@register_family
class LSTMDemo(Demo):
    name = "lstm"
    description = "LSTM regressor with attention over time steps (Lightning)"
    expected = EXPECTED
    metric_name = "mean attention weight on the marked step (test set)"
    threshold = THRESHOLD
    entry = "model.attention"

    def train(self, run: Run) -> float:
        """Train, capturing 32 validation samples every epoch and the test set."""
        from attnscope.demos.training import DemoModule, make_loaders, train_and_capture

        # few steps per epoch, so the attention visibly forms across the epochs (with 4096
        # samples an epoch it was complete after the first, and the evolution figure flat)
        n_train, epochs = (1024, 8) if run.quick else (1024, 12)
        sets = [make_data(n, run.gen) for n in (n_train, 256, 128)]
        run.state.update(val=sets[1], test=sets[2])
        model = LSTMAttentionRegressor(attention=self.attention(run))
        loaders = make_loaders(sets, 64, run.gen, eval_batch=128)
        module = DemoModule(model, 1e-2, loss=nn.functional.mse_loss, attribute="model")
        return train_and_capture(module, loaders, run.out, epochs=epochs, trained=run.trained,
                                 samples=32, export=True)

    def score(self, run: Run, store) -> tuple[float, dict[str, float]]:
        from attnscope.demos.training import epoch_steps

        steps = epoch_steps(store)
        per_epoch = [mass_on_mark(store.read(self.entry, step=s), run.state["val"][2])
                     for s in steps]
        run.state.update(steps=steps, per_epoch=per_epoch)
        metric = mass_on_mark(store.read(self.entry, step="test"), run.state["test"][2])
        return metric, {"uniform share 1/T": 1 / STEPS, "first epoch metric": per_epoch[0],
                        "last epoch metric": per_epoch[-1], "epochs": float(len(steps))}

    def figures(self, run: Run, store) -> list[Path]:
        import numpy as np

        from attnscope.demos.report import plot_evolution
        from attnscope.plot import plot_bars

        x, y, marked = run.state["test"]
        files = []
        for i in range(3):
            path = run.out / f"attention_test_sample{i}.png"
            plot_bars(store, module=self.entry, step="test", sample=i, signal=x[i],
                      signal_labels=["value", "indicator"], top_k=2, path=path,
                      title=f"{self.attention(run)} attention, test sample {i}: marked step "
                            f"{int(marked[i])}, target {float(y[i]):.2f}")
            files.append(path)
        steps, mark0 = run.state["steps"], int(run.state["val"][2][0])
        rows = np.stack([store.read(self.entry, step=s, samples=[0])[0, 0, 0] for s in steps])
        files.append(plot_evolution(
            rows, run.state["per_epoch"], steps=steps, marked=[mark0],
            metric_name="mean weight on marked step", threshold=THRESHOLD,
            title=f"validation sample 0 across epochs (marked step {mark0})",
            path=run.out / "attention_evolution.png"))
        return files

    def task(self, run: Run) -> str:
        return (f"{STEPS} steps x (value, indicator); target = value at the indicated step; "
                f"{self.attention(run)} attention")

    def notes(self, run: Run) -> list[str]:
        return ["store: `store/` (steps epoch_000.. and test); exports `attention_*.npy`, "
                "`attention_all_epochs.npz`/`.csv`"]

    @staticmethod
    def attention(run: Run) -> str:
        return run.options.get("attention", "additive")

