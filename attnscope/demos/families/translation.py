"""Translation family: a small encoder-decoder transformer learns a reordering language
pair, so the correct cross-attention (each target word on its source word) is known.

Source sentences are subject-object-verb with particles (``ookii neko ga akai ringo wo
taberu``), targets subject-verb-object (``big cat eats red apple``); every word has its
own source and target token. Validation and test decode greedily with a key/value
cache, so each generated token's attention is captured as it is produced: the module
``net.decoder.1.cross_attn[t]`` holds the row of the token generated at step ``t``
(``attnscope.stitch`` puts them back into one map). The model speaks the text protocol
(``attnscope.text.protocol``), so ``attnscope translate`` works on it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from attnscope.demos.demo import Demo, Run
from attnscope.demos.families.translation_corpus import (  # noqa: F401 (re-exported)
    BOS,
    EOS,
    INDEX,
    PAD,
    SRC_LEN,
    TGT_LEN,
    VOCAB,
    make_corpus,
)
from attnscope.demos.registry import register_family
from attnscope.entries import entry_name

THRESHOLD = 0.8


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, key_padding_mask=pad, need_weights=False)[0]
        return x + self.ff(self.norm2(x))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer; ``cache`` (the normed inputs of earlier positions) lets
    greedy decoding feed one token per step."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_pad: torch.Tensor,
                cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.norm1(x)
        keys = y if cache is None else torch.cat([cache, y], dim=1)
        causal = None
        if cache is None:  # teacher forcing: the whole target at once
            n = x.shape[1]
            causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        x = x + self.self_attn(y, keys, keys, attn_mask=causal, need_weights=False)[0]
        y = self.norm2(x)
        x = x + self.cross_attn(y, memory, memory, key_padding_mask=memory_pad,
                                need_weights=False)[0]
        return x + self.ff(self.norm3(x)), keys


class Translator(nn.Module):
    def __init__(self, d: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), d, padding_idx=PAD)
        self.pos = nn.Embedding(16, d)
        self.encoder = nn.ModuleList(EncoderLayer(d, heads) for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderLayer(d, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, len(VOCAB))

    def _embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        pos = torch.arange(start, start + tokens.shape[1])
        return self.embed(tokens) + self.pos(pos)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = src == PAD
        x = self._embed(src)
        for layer in self.encoder:
            x = layer(x, pad)
        return x, pad

    def decode(self, tgt: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor]
               ) -> torch.Tensor:
        """Logits ``(batch, target, vocab)`` for a whole target prefix (teacher forcing)."""
        x = self._embed(tgt)
        for layer in self.decoder:
            x, _ = layer(x, *memory)
        return self.out(self.norm(x))

    # the rest of the text protocol (attnscope.text.protocol): ids <-> words
    bos_id, eos_id, pad_id = BOS, EOS, PAD

    def source_ids(self, text: str) -> list[int]:
        unknown = [w for w in text.split() if w not in INDEX]
        if unknown:
            from attnscope.text.protocol import TextModelError

            raise TextModelError(f"words outside the demo vocabulary: {', '.join(unknown)}")
        return [INDEX[w] for w in text.split()]

    def source_tokens(self, ids: list[int]) -> list[str]:
        return [VOCAB[i] for i in ids]

    target_tokens = source_tokens

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        src, tgt, _ = batch
        logits = self.decode(torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], 1),
                             self.encode(src))
        return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD)

    def translate(self, src: torch.Tensor, steps: int = TGT_LEN) -> torch.Tensor:
        """Greedy decoding, one token per step (attention captured per generated token)."""
        memory, pad = self.encode(src)
        token = torch.full((src.shape[0], 1), BOS)
        caches: list[torch.Tensor | None] = [None] * len(self.decoder)
        out = []
        for t in range(steps):
            x = self._embed(token, t)
            for i, layer in enumerate(self.decoder):
                x, caches[i] = layer(x, memory, pad, caches[i])
            token = self.out(self.norm(x)).argmax(-1)
            out.append(token)
        return torch.cat(out, 1)

    def evaluate(self, batch: tuple[torch.Tensor, ...]) -> tuple[dict, dict]:
        src, tgt, _ = batch
        pred = self.translate(src)
        keep = tgt != PAD
        metrics = {"token_acc": (pred == tgt)[keep].float().mean()}
        labels = {"sample_source_tokens": [words(s) for s in src],
                  "sample_target_tokens": [words(p, upto_eos=True) for p in pred]}
        return metrics, labels


def words(ids: torch.Tensor, upto_eos: bool = False) -> list[str]:
    """Token labels of one sentence: padding dropped, or (generated text) everything up
    to and including the first ``<eos>``: greedy decoding keeps stepping after it."""
    ids_ = ids.tolist()
    if upto_eos:
        return [VOCAB[i] for i in ids_[: ids_.index(EOS) + 1 if EOS in ids_ else None]]
    return [VOCAB[i] for i in ids_ if i != PAD]


def cross_rows(store: Any, layer: int, step: str = "test") -> np.ndarray:
    """``(sample, head, step, source)`` cross attention assembled from the per-token
    entries ``net.decoder.<layer>.cross_attn[t]``."""
    base = f"net.decoder.{layer}.cross_attn"
    rows = [store.read(entry_name(base, t), step=step) for t in range(TGT_LEN)]
    return np.concatenate(rows, axis=2)


def alignment_hits(cross: np.ndarray, align: np.ndarray) -> float:
    """Fraction of target words whose head-mean cross attention peaks on their source."""
    peak = np.nanmean(cross, axis=1).argmax(-1)  # (sample, step)
    words_ = align >= 0
    return float((peak[words_] == align[words_]).mean())


def figures(store: Any, out: Path, layers: int, best: int) -> list[Path]:
    """Cross attention of test sample 0 (head mean and every head), encoder self and
    causal decoder self attention."""
    from attnscope.plot import plot_cross, plot_heads, plot_heatmap

    labels = store.labels("test")
    src, tgt = labels["sample_source_tokens"][0], labels["sample_target_tokens"][0]
    cross = cross_rows(store, best)[0][:, : len(tgt), : len(src)]  # (head, step, source)
    files = [out / "translation_cross.png", out / "translation_cross_heads.png",
             out / "translation_encoder_self.png", out / "translation_decoder_self.png"]
    plot_cross(cross.mean(0), source_labels=src, target_labels=tgt, head=0,
               title=f"decoder layer {best} cross attention, head mean (test sample 0)",
               path=files[0])
    plot_heads(cross, query_labels=tgt, key_labels=src,
               title=f"decoder layer {best} cross attention, every head", path=files[1])
    plot_heatmap(store, module=f"net.encoder.{layers - 1}.self_attn", step="test", head="mean",
                 labels=src + ["<pad>"] * (SRC_LEN - len(src)), path=files[2])
    base = f"net.decoder.{layers - 1}.self_attn"
    causal = np.full((len(tgt), len(tgt)), np.nan, dtype=np.float32)
    for t in range(len(tgt)):
        row = store.read(entry_name(base, t), step="test", samples=[0])[0]
        causal[t, : t + 1] = np.nanmean(row[:, 0, : t + 1], axis=0)
    plot_heatmap(causal, labels=["<bos>"] + tgt[:-1], query_labels=tgt, head=0,
                 query_axis="generated token", key_axis="decoder input",
                 title="last decoder layer self attention, head mean", path=files[3])
    return files


@register_family
class TranslationDemo(Demo):
    name = "translation"
    description = ("encoder-decoder transformer on a word-reordering language pair (SOV -> "
                   "SVO), greedy decoding captured per token")
    expected = "each generated word's cross attention peaks on its source word"
    metric_name = ("fraction of target words whose cross attention (best decoder layer, head "
                   "mean) peaks on the aligned source word")
    threshold = THRESHOLD
    layers = 2

    def train(self, run: Run) -> float:
        from attnscope.demos.training import DemoModule, make_loaders, train_and_capture

        n_train, epochs = (4000, 3) if run.quick else (8000, 8)
        sets = [make_corpus(n, run.gen) for n in (n_train, 64, 128)]
        run.state["align"] = sets[2][2].numpy()
        # one validation and one test batch: every captured batch costs a durable commit
        return train_and_capture(DemoModule(Translator(layers=self.layers), 3e-3),
                                 make_loaders(sets, 64, run.gen), run.out, epochs=epochs,
                                 trained=run.trained, threads=1, labels={})

    def score(self, run: Run, store) -> tuple[float, dict[str, float]]:
        per_layer = [alignment_hits(cross_rows(store, i), run.state["align"])
                     for i in range(self.layers)]
        best = run.state["best"] = int(np.argmax(per_layer))
        return per_layer[best], ({f"layer_{i}_hits": h for i, h in enumerate(per_layer)}
                                 | {"best_layer": float(best)})

    def figures(self, run: Run, store) -> list[Path]:
        return figures(store, run.out, self.layers, run.state["best"])

    def task(self, run: Run) -> str:
        return ("translate SOV sentences with particles into SVO English (distinct words per "
                "side), greedy decoding on 128 test sentences")

    def summary_expected(self, run: Run) -> str:
        return ("the cross attention of each generated word peaks on the source word it "
                "translates (chance: about 1 in 5 source words)")
