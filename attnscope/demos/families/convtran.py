"""``convtran``: a ConvTranPlus-style conv-transformer on a long series (500 steps) whose
class is decided by a motif at a random position.

The model follows tsai's ConvTranPlus (Foumani et al. 2023): a two-stage convolutional
embedding, tAPE absolute position encoding, and eRPE attention in the way of tsai's
``Attention_Rel_Scl`` -- softmax first, then a learned relative position bias added to
the probabilities -- with 8 heads, one encoder block, global average pooling, a linear
head. Written here so the demo needs no tsai (it can be installed, see the tests).

Task: noise everywhere, and one window of ``WINDOW`` steps at a random place holding a
smooth bump, up (class 1) or down (class 0) and buried in the same noise. Attention is
the cheap way to move the bump's sign to every position before the pooling, so a
trained model's attention mass concentrates in the window. The metric is the mean mass
(over queries, heads and test samples) of the softmax output inside the window; the
uniform share is ``WINDOW / LENGTH``. Captured with the heads averaged (the metric is
linear in heads, so nothing is lost for it) in float16: at L=500 one sample is 2M
weights per head set; a single test sample with every head is kept for the head grid.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import register_family
from attnscope.entries import entry_name

# L=500 (was 1000): the attention work is a quarter, so the demo stays within a minute
# on an idle 2-core machine; the motif keeps its share of the series (4%)
LENGTH = 500
WINDOW = 20
HEADS = 8
SHARE = WINDOW / LENGTH
THRESHOLD = 4 * SHARE
EXPECTED = (f"attention concentrates on the motif window: mean softmax mass in the "
            f"{WINDOW}-step window >= {THRESHOLD:.2f} (4x its uniform share {SHARE:.2f})")


class TAPE(nn.Module):
    """tAPE: sinusoidal encoding whose frequencies are scaled by d_model/seq_len, so long
    series do not get nearly identical codes for neighbouring steps."""

    def __init__(self, d_model: int, seq_len: int) -> None:
        super().__init__()
        position = torch.arange(seq_len, dtype=torch.float).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(seq_len, d_model)
        pe[:, 0::2] = torch.sin(position * div * d_model / seq_len)
        pe[:, 1::2] = torch.cos(position * div * d_model / seq_len)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe


class RelativeScaledAttention(nn.Module):
    """eRPE attention as tsai's ``Attention_Rel_Scl`` computes it: the learned bias per
    (head, relative distance) is added *after* the softmax, so the matrix that multiplies
    V is not a distribution. attnscope records the softmax output as ``weights`` and the
    sum as ``effective``."""

    def __init__(self, d_model: int, seq_len: int, heads: int = HEADS) -> None:
        super().__init__()
        self.heads, self.scale = heads, d_model ** -0.5
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.relative_bias_table = nn.Parameter(torch.zeros(2 * seq_len - 1, heads))
        pos = torch.arange(seq_len)
        self.register_buffer("relative_index", pos[:, None] - pos[None, :] + seq_len - 1)
        self.to_out = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # (batch, query, d_model)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, -1).transpose(1, 2)  # (batch, head, n, d)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        bias = self.relative_bias_table[self.relative_index]  # (query, key, head)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class ConvTran(nn.Module):
    """Conv embedding -> tAPE -> eRPE attention -> FFN -> global average pool -> linear."""

    def __init__(self, c_in: int = 1, classes: int = 2, seq_len: int = LENGTH,
                 d_model: int = 16, dim_ff: int = 64) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(1, 4 * d_model, (1, 7), padding="same"),
                                   nn.BatchNorm2d(4 * d_model), nn.GELU())
        self.embed2 = nn.Sequential(nn.Conv2d(4 * d_model, d_model, (c_in, 1)),
                                    nn.BatchNorm2d(d_model), nn.GELU())
        self.position = TAPE(d_model, seq_len)
        self.attention = RelativeScaledAttention(d_model, seq_len)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, dim_ff), nn.ReLU(),
                                          nn.Linear(dim_ff, d_model))
        self.head = nn.Linear(d_model, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, channel, time)
        h = self.embed2(self.embed(x.unsqueeze(1))).squeeze(2).transpose(1, 2)
        h = self.norm1(h + self.attention(self.position(h)))  # (batch, time, d_model)
        h = self.norm2(h + self.feed_forward(h))
        return self.head(h.mean(1))


def make_data(n: int, generator: torch.Generator, length: int = LENGTH, noise: float = 1.0
              ) -> tuple[torch.Tensor, ...]:
    """(x, label, start): x ``(n, 1, length)``; a Hann bump of height +-3 at ``start``."""
    x = noise * torch.randn(n, 1, length, generator=generator)
    label = torch.randint(0, 2, (n,), generator=generator)
    start = torch.randint(0, length - WINDOW + 1, (n,), generator=generator)
    bump = 3.0 * torch.hann_window(WINDOW, periodic=False)
    for i in range(n):
        x[i, 0, start[i]:start[i] + WINDOW] += bump * (1 if label[i] else -1)
    return x, label, start


def window_mass(weights, start) -> float:
    """Mean over samples, heads and queries of the mass inside each sample's window;
    weights ``(sample, head, query, key)``."""
    import numpy as np

    w = np.asarray(weights)
    keys = np.arange(w.shape[-1])
    start = np.asarray(start)[: len(w), None]
    inside = (keys[None] >= start) & (keys[None] < start + WINDOW)  # (sample, key)
    return float((w * inside[:, None, None, :]).sum(-1).mean())


def capture_heads(module: nn.Module, x: torch.Tensor, store: Path) -> Path:
    """Every head of the samples ``x`` (step ``test``) in a store of their own: the
    training store keeps the head mean, and a store describes each module once."""
    import attnscope

    with torch.no_grad(), attnscope.capture(module.eval(), store=store, step="test",
                                            dtype="float16"):
        module(x)
    return store


@register_family
class ConvTranDemo(Demo):
    name = "convtran"
    description = "ConvTranPlus-style conv-transformer on a 500-step series"
    expected = EXPECTED
    metric_name = "mean softmax attention mass in the motif window (test set)"
    threshold = THRESHOLD
    entry = "model.attention"

    def train(self, run: Run) -> float:
        """Train, capturing (head mean, float16) every validation epoch and the test set;
        then every head of one test sample into ``store_heads``."""
        from attnscope.demos.progress import report
        from attnscope.demos.training import DemoModule, make_loaders, train_and_capture

        (n_train, batch, epochs) = (20, 4, 3) if run.quick else (64, 8, 5)
        sets = [make_data(n, run.gen) for n in (n_train, 4, 8)]
        run.state.update(val=sets[1], test=sets[2])
        # the score projections learn 5x faster: the focus then forms within a few
        # dozen steps instead of a few hundred (each step is costly at L=500)
        module = DemoModule(ConvTran(), 1e-2, loss=nn.functional.cross_entropy,
                            attribute="model", fast=("query.weight", "key.weight"))
        loaders = make_loaders(sets, batch, run.gen, eval_batch=4)
        seconds = train_and_capture(module, loaders, run.out, epochs=epochs,
                                    trained=run.trained, samples=4, reduce="mean")
        report("capturing all 8 heads of test sample 0 into store_heads/")
        capture_heads(module, sets[2][0][:1], run.out / "store_heads")
        return seconds

    def score(self, run: Run, store) -> tuple[float, dict[str, float]]:
        from attnscope.demos.training import epoch_steps

        starts = run.state["test"][2]
        metric = window_mass(store.read(self.entry, step="test"), starts)
        effective = window_mass(
            store.read(entry_name(self.entry, effective=True), step="test"), starts)
        steps = epoch_steps(store)
        per_epoch = [window_mass(store.read(self.entry, step=s), run.state["val"][2])
                     for s in steps]
        run.state.update(steps=steps, per_epoch=per_epoch)
        return metric, {"uniform share": SHARE, "metric / uniform share": metric / SHARE,
                        "effective (softmax + relative bias) mass in window": effective,
                        "last epoch metric (validation)": per_epoch[-1],
                        "epochs": float(len(steps))}

    def figures(self, run: Run, store) -> list[Path]:
        import numpy as np

        from attnscope.demos.report import plot_evolution
        from attnscope.plot import plot_bars, plot_heads, plot_heatmap
        from attnscope.store import open_store

        x, label, starts = run.state["test"]
        files = []
        for i in range(2):
            s0 = int(starts[i])
            path = run.out / f"attention_received_test_sample{i}.png"
            plot_bars(store, module=self.entry, step="test", sample=i, query="mean",
                      uniform=True, signal=x[i, 0], signal_labels=["series"], path=path,
                      title=f"attention received (mean over queries and heads), test sample "
                            f"{i}: class {int(label[i])}, motif at {s0}-{s0 + WINDOW - 1}")
            files.append(path)
        path = run.out / "attention_matrix_test_sample0.png"
        plot_heatmap(store, module=self.entry, step="test", sample=0, head=0, path=path,
                     query_axis="query time step", key_axis="key time step")
        files.append(path)
        path = run.out / "heads_test_sample0.png"
        plot_heads(open_store(run.out / "store_heads"), module=self.entry, step="test",
                   sample=0, path=path, mask=None,
                   title="all 8 heads of test sample 0 (softmax output) and their mean")
        files.append(path)
        steps = run.state["steps"]
        rows = np.stack([store.read(self.entry, step=s, samples=[0])[0, 0].mean(0)
                         for s in steps])
        s0 = int(run.state["val"][2][0])
        files.append(plot_evolution(
            rows, [m / SHARE for m in run.state["per_epoch"]], steps=steps,
            marked=[s0, s0 + WINDOW - 1], metric_name="window mass / uniform share",
            threshold=THRESHOLD / SHARE,
            title=f"validation sample 0: attention received per key across epochs "
                  f"(motif {s0}-{s0 + WINDOW - 1})", path=run.out / "attention_evolution.png"))
        return files

    def task(self, run: Run) -> str:
        return f"{LENGTH}-step series, class = sign of a {WINDOW}-step bump at a random place"

    def notes(self, run: Run) -> list[str]:
        return ["metric on the softmax output (`model.attention`); the post-bias matrix is "
                "stored as `model.attention@effective`",
                "captured with heads averaged, float16; `store_heads/` keeps all 8 heads of "
                "test sample 0"]
