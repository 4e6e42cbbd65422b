"""Work done in separate processes by the multi-process store tests (top-level
functions, so a ``spawn`` child can import them): ranks capturing their part of a step,
writers capturing their own step, a writer appending while others read."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

import attnscope
from attnscope.maps import AttentionMap
from attnscope.store import open_writer

SAMPLES, WORLD, BATCH = 7, 2, 2
EDGES = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 0]])


class Pool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = self.lin(h) @ h.transpose(-1, -2)
        return torch.softmax(scores, dim=-1) @ h


class Station(nn.Module):
    """sdpa self-attention (query/key form) and a hand-written softmax (probabilities)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.pool_attention = Pool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.pool_attention(out.transpose(1, 2).flatten(-2))


def model() -> nn.Module:
    torch.manual_seed(0)
    return Station().eval()


def inputs() -> torch.Tensor:
    return torch.randn(SAMPLES, 5, 8, generator=torch.Generator().manual_seed(1))


def graph_weights(ids: list[int]) -> torch.Tensor:
    """Edge weights that name their sample: (batch, edge, head)."""
    return torch.tensor(ids, dtype=torch.float32)[:, None, None] + torch.rand(len(ids), 4, 2)


def rank_ids(rank: int) -> list[int]:
    """DistributedSampler without shuffling: padded to a multiple of WORLD by repeating."""
    padded = list(range(SAMPLES)) + list(range(SAMPLES))[: (-SAMPLES) % WORLD]
    return padded[rank::WORLD]


def capture_part(root: str, step: str, rank: int, form: str) -> None:
    """One rank's share of ``step`` into ``<step>.rank<rank>``, as the Lightning callback
    writes it under DDP."""
    net, x, ids = model(), inputs(), rank_ids(rank)
    with open_writer(root, step=f"{step}.rank{rank}", labels={"sample_ids": ids},
                     form=form, dtype="float32") as w:
        for b in range(0, len(ids), BATCH):
            chunk = ids[b:b + BATCH]
            with torch.no_grad(), attnscope.capture(net, store=w):
                net(x[chunk])
            w.write(AttentionMap("gnn.edges", "graph", graph_weights(chunk),
                                 edge_index=EDGES))
            w.commit()


def capture_step(root: str, step: str, batches: int, sync: str | None = None,
                 graph_first: bool = False, barrier: str | None = None) -> None:
    """A whole step, batch by batch. With ``sync``, wait after each batch until the
    reader says it saw it (a file ``seen_<n>`` there), so every state is observed.
    ``graph_first``: each batch starts with a graph entry the other writer lacks, so
    the two writers meet new entry names in different orders. ``barrier``: a folder
    where both writers say they opened, so neither writes before both have opened."""
    net, x = model(), inputs()
    with open_writer(root, step=step, dtype="float32") as w:
        if barrier:
            (Path(barrier) / f"opened_{step}").touch()
            deadline = time.time() + 60
            while len(list(Path(barrier).glob("opened_*"))) < 2 and time.time() < deadline:
                time.sleep(0.005)
        for b in range(batches):
            rows = [b % SAMPLES, (b + 1) % SAMPLES]
            if graph_first:
                w.write(AttentionMap("gnn.edges", "graph", graph_weights(rows),
                                     edge_index=EDGES))
            with torch.no_grad(), attnscope.capture(net, store=w):
                net(x[rows])
            deadline = time.time() + 60
            while sync and not (Path(sync) / f"seen_{b + 1}").exists() and \
                    time.time() < deadline:
                time.sleep(0.005)


def read_while_writing(root: str, step: str, expect: int, deadline: float, out: str,
                       sync: str) -> None:
    """Open the store again and again while a writer appends, until ``expect`` batches
    are seen; record per opening and entry: batches seen, samples read, and whether
    everything read back complete (no NaN: nothing half-written)."""
    lines = []
    while time.time() < deadline:
        try:
            store = attnscope.open_store(root)
        except attnscope.AttnscopeError:  # not created yet
            time.sleep(0.01)
            continue
        seen = 0
        if step in store.steps:
            for name in store.modules:
                if not store.segments(name, step):
                    continue
                a = store.read(name, step=step)
                seen = len(store.segments(name, step))
                lines.append(f"{name}\t{seen}\t{a.shape[0]}\t{int(bool((a == a).all()))}")
        (Path(sync) / f"seen_{seen}").touch()
        if seen >= expect:
            break
        time.sleep(0.01)
    Path(out).write_text("\n".join(lines) + "\n")
