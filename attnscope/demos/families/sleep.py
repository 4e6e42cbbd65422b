"""Sleep family: a hierarchical sequence model in the spirit of EEG sleep staging, on
synthetic signals where only one channel carries the stage, so the correct channel
attention is known in advance.

Each sample is a sequence of 6 "30-s epochs" of 3 channels x 100 samples. In every
epoch each channel holds one oscillatory burst (40 samples, random place) in noise. On
``C4-M1`` the burst frequency is set by the epoch's stage; on the other channels it is
drawn at random from the same bands, so only the channel identity tells them apart.
The model: a shared conv front end, additive temporal attention per (epoch, channel),
additive attention across channels per epoch, multi-head attention across epochs. The
modules are called in a loop, as such models are written, so the store holds
``net.temporal_attn[k]`` (k = epoch * channels + channel) and ``net.channel_attn[e]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import register_family
from attnscope.entries import entry_name

CHANNELS = ["F3-M2", "C4-M1", "O2-M1"]
INFORMATIVE = 1
STAGES = ["W", "N2", "N3", "REM"]
CYCLES = [9.0, 5.0, 1.5, 3.0]  # burst cycles per 40-sample burst, one band per stage
EPOCHS, SAMPLES, BURST, STRIDE = 6, 100, 40, 5
THRESHOLD = 0.6


def make_nights(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(signal (n, epoch, channel, time), stage (n, epoch), burst start (n, epoch,
    channel))``; stages follow a sticky Markov chain, like a hypnogram."""
    stage = torch.zeros(n, EPOCHS, dtype=torch.long)
    stage[:, 0] = torch.randint(0, len(STAGES), (n,), generator=gen)
    for e in range(1, EPOCHS):
        move = torch.rand(n, generator=gen) < 0.3
        other = torch.randint(0, len(STAGES), (n,), generator=gen)
        stage[:, e] = torch.where(move, other, stage[:, e - 1])
    band = torch.randint(0, len(STAGES), (n, EPOCHS, len(CHANNELS)), generator=gen)
    band[:, :, INFORMATIVE] = stage
    start = torch.randint(0, SAMPLES - BURST + 1, band.shape, generator=gen)
    cycles = torch.tensor(CYCLES)[band] * (0.9 + 0.2 * torch.rand(band.shape, generator=gen))
    phase = 2 * math.pi * torch.rand(band.shape, generator=gen)
    t = torch.arange(SAMPLES, dtype=torch.float32)
    rel = t - start[..., None]  # (n, epoch, channel, time)
    inside = (rel >= 0) & (rel < BURST)
    wave = torch.sin(2 * math.pi * cycles[..., None] * rel / BURST + phase[..., None])
    taper = torch.sin(math.pi * rel.clamp(0, BURST) / BURST)
    noise = 0.4 * torch.randn(n, EPOCHS, len(CHANNELS), SAMPLES, generator=gen)
    return wave * taper * inside + noise, stage, start


class AdditiveAttention(nn.Module):
    """Bahdanau-style pooling: ``softmax(v . tanh(W h))`` over the second axis."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.score = nn.Linear(d, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (batch, key, d) -> (batch, d)
        weights = torch.softmax(self.score(torch.tanh(self.proj(h))), dim=1)  # (batch, key, 1)
        return (weights * h).sum(1)


class SleepNet(nn.Module):
    def __init__(self, d: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(1, 16, 9, padding=4), nn.ReLU(),
                                   nn.Conv1d(16, d, STRIDE, stride=STRIDE), nn.ReLU())
        self.time_pos = nn.Parameter(torch.zeros(SAMPLES // STRIDE, d))
        self.temporal_attn = AdditiveAttention(d)
        self.channel_embed = nn.Parameter(0.1 * torch.randn(len(CHANNELS), d))
        self.channel_attn = AdditiveAttention(d)
        self.epoch_pos = nn.Parameter(torch.zeros(EPOCHS, d))
        self.epoch_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.head = nn.Linear(2 * d, len(STAGES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, epoch, channel, time)
        b, e, c, t = x.shape
        # the conv is not attention: fold everything into its batch for speed
        h = self.front(x.reshape(b * e * c, 1, t)).transpose(1, 2) + self.time_pos
        h = h.reshape(b, e, c, *h.shape[1:])  # (batch, epoch, channel, patch, d)
        epochs = []
        for i in range(e):
            chans = torch.stack([self.temporal_attn(h[:, i, j]) for j in range(c)], 1)
            epochs.append(self.channel_attn(chans + self.channel_embed))
        z = torch.stack(epochs, 1) + self.epoch_pos  # (batch, epoch, d)
        ctx = self.epoch_attn(z, z, z, need_weights=False)[0]
        return self.head(torch.cat([z, ctx], -1))  # (batch, epoch, stage)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, _ = batch
        return F.cross_entropy(self(x).flatten(0, 1), y.flatten())

    def evaluate(self, batch: tuple[torch.Tensor, ...]) -> tuple[dict, dict]:
        x, y, _ = batch
        pred = self(x).argmax(-1)
        pairs = [[f"{STAGES[a]}->{STAGES[b]}" for a, b in zip(ys.tolist(), ps.tolist())]
                 for ys, ps in zip(y, pred)]
        return {"acc": (pred == y).float().mean()}, {"sample_epoch_labels": pairs}


def read_hierarchy(store: Any, step: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Channel ``(sample, epoch, channel)`` and temporal ``(sample, epoch, channel,
    patch)`` attention gathered from the per-call entries."""
    def entry(name: str, k: int) -> np.ndarray:
        return store.read(entry_name(name, k), step=step)[:, 0, 0]

    chan = np.stack([entry("net.channel_attn", e) for e in range(EPOCHS)], 1)
    temp = np.stack([entry("net.temporal_attn", k) for k in range(EPOCHS * len(CHANNELS))], 1)
    return chan, temp.reshape(temp.shape[0], EPOCHS, len(CHANNELS), -1)


def burst_mass(temp: np.ndarray, start: np.ndarray) -> float:
    """Temporal attention mass inside the burst on the informative channel (chance is
    about BURST / SAMPLES)."""
    patch = (np.arange(temp.shape[-1]) + 0.5) * STRIDE  # patch centres, in samples
    s = start[:, :, INFORMATIVE, None]
    inside = (patch >= s) & (patch < s + BURST)
    return float((temp[:, :, INFORMATIVE] * inside).sum(-1).mean())


def figures(store: Any, out: Path, chan: np.ndarray, temp: np.ndarray,
            x: torch.Tensor) -> list[Path]:
    """The dashboard of one test sample (a misclassified one when there is one) and the
    mean channel attention."""
    from attnscope.plot import plot_bars, plot_dashboard

    labels = store.labels("test")["sample_epoch_labels"]
    wrong = [i for i, row in enumerate(labels) if any(a != b for a, b in
                                                      (p.split("->") for p in row))]
    sample = wrong[0] if wrong else 0
    true, pred = zip(*(p.split("->") for p in labels[sample]))
    inter = store.read("net.epoch_attn", step="test", samples=[sample])[0]
    files = [out / "sleep_dashboard.png", out / "sleep_channels.png"]
    plot_dashboard(inter, channel_attention=chan[sample], temporal_attention=temp[sample],
                   true=list(true), pred=list(pred), channel_names=CHANNELS,
                   signal=x[sample], title=f"test sample {sample}: hierarchical attention",
                   path=files[0])
    plot_bars(chan.mean(axis=(0, 1)), labels=CHANNELS, time_axis="channel",
              title="channel attention, mean over test samples and epochs", path=files[1])
    return files


@register_family
class SleepDemo(Demo):
    name = "sleep"
    description = ("hierarchical sleep-staging model (temporal, channel and epoch attention) "
                   "on synthetic 3-channel EEG")
    expected = (f"channel attention favours {CHANNELS[INFORMATIVE]}, the only channel that "
                "carries the stage")
    metric_name = (f"mean channel attention on {CHANNELS[INFORMATIVE]} (test set, all epochs; "
                   f"uniform = {1 / len(CHANNELS):.3f})")
    threshold = THRESHOLD

    def train(self, run: Run) -> float:
        from attnscope.demos.training import DemoModule, make_loaders, train_and_capture

        n_train, epochs = (1500, 3) if run.quick else (3000, 8)
        sets = [make_nights(n, run.gen) for n in (n_train, 64, 128)]
        run.state["test"] = sets[2]
        return train_and_capture(DemoModule(SleepNet(), 3e-3), make_loaders(sets, 32, run.gen),
                                 run.out, epochs=epochs, trained=run.trained, threads=1,
                                 labels={"channels": CHANNELS, "class_names": STAGES})

    def score(self, run: Run, store) -> tuple[float, dict[str, float]]:
        chan, temp = read_hierarchy(store)
        run.state.update(chan=chan, temp=temp)
        labels = store.labels("test")["sample_epoch_labels"]
        acc = float(np.mean([a == b for row in labels for a, b in (p.split("->") for p in row)]))
        start = run.state["test"][2].numpy()
        return float(chan[:, :, INFORMATIVE].mean()), {
            "stage_accuracy": acc, "burst_mass_informative": burst_mass(temp, start),
            "burst_mass_chance": BURST / SAMPLES}

    def figures(self, run: Run, store) -> list[Path]:
        return figures(store, run.out, run.state["chan"], run.state["temp"],
                       run.state["test"][0])

    def task(self, run: Run) -> str:
        return ("stage 6-epoch sequences of 3-channel synthetic EEG; the stage sets the burst "
                f"frequency on {CHANNELS[INFORMATIVE]} only")

    def summary_expected(self, run: Run) -> str:
        return (f"channel attention on {CHANNELS[INFORMATIVE]} well above uniform; temporal "
                "attention on that channel inside the burst")
