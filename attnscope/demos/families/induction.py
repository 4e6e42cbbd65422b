"""``induction``: a two-layer attention-only decoder trained on sequences whose second
half repeats the first, then run through the generate workflow.

Known pattern: to predict the repeat, the model learns an *induction head* (Olsson et
al. 2022): a token attends to the position just after an earlier copy of itself, and
copies what it finds there. A previous-token head in layer 0 makes that possible. The
metric is the best head's induction score (``attnscope.analysis``: mean weight on the
token after an earlier copy of the query's token) over a prompt of fresh random tokens
whose repeat the model generates; uniform attention gives about ``1/position``. The
control (``trained=False``) is the same architecture, untrained, on the same prompt.

Left out on purpose: MLPs and layer norms (attention-only makes the circuit the only way
to solve the task), and Lightning (a plain loop of a few hundred steps).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import register_family

VOCAB, HALF = 48, 24  # token ids 0..47; sequences of 2 x 24
EPOCHS = 4  # training chunks, each followed by a capture of the same probe sequence
THRESHOLD = 0.5
EXPECTED = (f"an induction head: some head puts >= {THRESHOLD} of a repeated token's "
            "attention on the token after its earlier copy (uniform ~1/position)")


class Attention(nn.Module):
    """Causal multi-head attention that keeps its keys and values in the given cache."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, past: Any) -> tuple[torch.Tensor, Any]:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2)
                   for z in self.qkv(x).split(d, dim=-1))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and t > 1)
        return self.out(y.transpose(1, 2).reshape(b, t, d)), (k, v)


class AttentionOnlyLM(nn.Module):
    """Embeddings, ``layers`` residual attention blocks, unembedding; the
    :mod:`attnscope.generation.protocol` ``step`` drives it with a cache."""

    def __init__(self, dim: int = 64, heads: int = 2, layers: int = 2,
                 context: int = 2 * HALF) -> None:
        super().__init__()
        self.context_length = context
        self.eos_id = None
        self.tok, self.pos = nn.Embedding(VOCAB, dim), nn.Embedding(context, dim)
        self.layers = nn.ModuleList(Attention(dim, heads) for _ in range(layers))
        self.unembed = nn.Linear(dim, VOCAB)

    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, list[Any]]:
        start = 0 if cache is None else cache[0][0].shape[2]
        x = self.tok(ids) + self.pos(torch.arange(start, start + ids.shape[1]))
        new = []
        for i, layer in enumerate(self.layers):
            y, kv = layer(x, None if cache is None else cache[i])
            x = x + y
            new.append(kv)
        return self.unembed(x), new

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.step(ids, None)[0]

    def token_labels(self, ids: list[int]) -> list[str]:
        return [f"t{i}" for i in ids]


def repeated(n: int, gen: torch.Generator) -> torch.Tensor:
    """``(n, 2 * HALF)``: random tokens, then the same tokens again."""
    first = torch.randint(0, VOCAB, (n, HALF), generator=gen)
    return torch.cat([first, first], 1)


def train_model(model: AttentionOnlyLM, gen: torch.Generator, steps: int) -> None:
    """Next-token loss on the repeated half only (the first half is unpredictable)."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    model.train()
    for _ in range(steps):
        seq = repeated(64, gen)
        logits = model(seq[:, :-1])[:, HALF - 1:]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), seq[:, HALF:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@register_family
class InductionDemo(Demo):
    name = "induction"
    description = ("two-layer attention-only decoder on sequences whose second half repeats "
                   "the first; generate workflow on a fresh prompt")
    expected = EXPECTED
    metric_name = "best head's induction score on the generated repeat"
    threshold = THRESHOLD
    requires = ()

    def train(self, run: Run) -> float:
        """Train in ``EPOCHS`` chunks, capturing a fixed repeated sequence after each
        (``epoch_NNN``: the head forming), then generate the repeat of a fresh prompt
        (step ``test``)."""
        from attnscope.capturing import capture
        from attnscope.generation import generate
        from attnscope.generation.outputs import write_store
        from attnscope.store import open_writer
        from attnscope.store.schema import TEST_STEP, epoch_step

        model = AttentionOnlyLM()
        probe = repeated(1, run.gen)
        labels = {"tokens": model.token_labels(probe[0].tolist())}
        steps = (150 if run.quick else 400) // EPOCHS
        seconds = 0.0
        for epoch in range(EPOCHS):
            start = time.perf_counter()
            if run.trained:
                train_model(model, run.gen, steps)
            seconds += time.perf_counter() - start
            with open_writer(run.out / "store", step=epoch_step(epoch), labels=labels,
                             durable=False) as writer, torch.inference_mode(), \
                    capture(model, store=writer):
                model(probe)
        prompt = repeated(1, run.gen)[0, : HALF + 2].tolist()  # the repeat's first 2 tokens
        [result] = generate(model, [prompt], max_new_tokens=HALF - 2,
                            out=run.out / "generation", store=False, view=True)
        write_store(result, run.out / "store", TEST_STEP)
        run.state["result"] = result
        return seconds

    def score(self, run: Run, store: Any) -> tuple[float, dict[str, float]]:
        from attnscope.analysis import head_stats

        result = run.state["result"]
        from attnscope.store.schema import TEST_STEP

        report = head_stats(store, steps=[TEST_STEP], similarity=False)
        best = max(float(r["induction"]) for r in report.rows
                   if not math.isnan(float(r["induction"])))
        first = result.ids[:HALF]
        copied = result.ids[HALF:]
        accuracy = sum(a == b for a, b in zip(copied, first)) / len(copied)
        return best, {"repeat accuracy of the generated half": accuracy}

    def figures(self, run: Run, store: Any) -> list[Path]:
        return [p for p in run.state["result"].files if p.suffix == ".png"]
