"""Graph family: a spatio-temporal graph model (SPIN-style) on a network where each
node's next value is driven by one known in-neighbour, so the correct spatial attention
(that edge on top) is known in advance.

Each of 16 nodes has 3 random in-neighbours; one of them drives it:
``x_i(t+1) = 0.9 x_driver(t) + noise``, the others have no effect. The model encodes
each node's window with additive attention over a causal temporal graph (a custom PyG
``MessagePassing``, entry ``net.temporal``: weights ``(sample, node, edge, head)``), then
a ``GATv2Conv`` over the node graph (entry ``net.spatial``, self loops included) mixes
neighbours. ``GATv2`` rather than ``GAT``: GAT's attention ranks neighbours the same way
for every destination ("static" attention), so it could not pick a driver per node.

PyG is imported when the model is built, so listing the families stays fast.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import register_family

NODES, NEIGHBOURS, WINDOW = 16, 3, 8
THRESHOLD = 0.8


def make_graph(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``edge_index (2, edge)`` (source -> destination, no self loops) and the driver
    of every node."""
    edges, drivers = [], []
    for dst in range(NODES):
        others = torch.tensor([n for n in range(NODES) if n != dst])
        picked = others[torch.randperm(NODES - 1, generator=gen)[:NEIGHBOURS]]
        drivers.append(int(picked[0]))
        edges += [(int(src), dst) for src in picked.sort().values]
    return torch.tensor(edges).T.contiguous(), torch.tensor(drivers)


def make_windows(n: int, drivers: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(window (n, time, node), next value (n, node))`` cut from one simulated run."""
    steps = n + WINDOW + 20  # 20 steps of burn-in
    x = torch.zeros(steps, NODES)
    x[0] = torch.randn(NODES, generator=gen)
    for t in range(1, steps):
        x[t] = 0.9 * x[t - 1, drivers] + 0.45 * torch.randn(NODES, generator=gen)
    x = x[20:]
    idx = torch.arange(n)[:, None] + torch.arange(WINDOW)
    return x[idx], x[WINDOW: WINDOW + n]


def causal_time_graph(steps: int) -> torch.Tensor:
    """Edges ``s -> t`` for every ``s <= t``: the temporal graph of the encoder."""
    src, dst = torch.tril_indices(steps, steps)[[1, 0]]
    return torch.stack([src, dst])


@functools.cache
def _layers() -> tuple[type, type]:
    from torch_geometric import utils as pyg_utils
    from torch_geometric.nn import GATv2Conv, MessagePassing

    class TemporalAttention(MessagePassing):
        """Additive attention over a temporal graph, on ``(batch, node, time, d)``."""

        def __init__(self, d: int) -> None:
            super().__init__(aggr="add", node_dim=-2)
            self.query, self.key = nn.Linear(d, d), nn.Linear(d, d, bias=False)
            self.score, self.value = nn.Linear(d, 1, bias=False), nn.Linear(d, d)

        def forward(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return self.propagate(edge_index, h=h)

        def message(self, h_i: torch.Tensor, h_j: torch.Tensor, index: torch.Tensor,
                    size_i: int | None) -> torch.Tensor:
            alpha = self.score(torch.tanh(self.query(h_i) + self.key(h_j)))  # (..., edge, 1)
            # called through the package so attnscope's PyG strategy sees it
            alpha = pyg_utils.softmax(alpha, index, num_nodes=size_i, dim=-2)
            return alpha * self.value(h_j)

    return TemporalAttention, GATv2Conv


class STNet(nn.Module):
    def __init__(self, edge_index: torch.Tensor, d: int = 32, heads: int = 2) -> None:
        super().__init__()
        temporal_cls, gat_cls = _layers()
        self.register_buffer("edge_index", edge_index)
        self.register_buffer("time_edges", causal_time_graph(WINDOW))
        self.inp = nn.Linear(1, d)
        self.time_pos = nn.Parameter(0.1 * torch.randn(WINDOW, d))
        self.node_embed = nn.Parameter(0.1 * torch.randn(NODES, d))
        self.temporal = temporal_cls(d)
        self.spatial = gat_cls(d, d, heads=heads, concat=False)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, node) -> (batch, node)
        b = x.shape[0]
        h = self.inp(x.transpose(1, 2)[..., None]) + self.time_pos  # (batch, node, time, d)
        z = self.temporal(h, self.time_edges)[:, :, -1] + self.node_embed  # (batch, node, d)
        offsets = (torch.arange(b) * NODES).repeat_interleave(self.edge_index.shape[1])
        edges = self.edge_index.repeat(1, b) + offsets  # the batch as one disjoint graph
        y = self.spatial(z.reshape(b * NODES, -1), edges)
        return self.out(y).reshape(b, NODES)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def evaluate(self, batch: tuple[torch.Tensor, ...]) -> tuple[dict, dict]:
        x, y = batch
        return {"mse": F.mse_loss(self(x), y)}, {}


def driver_hits(store: Any, drivers: np.ndarray, step: str = "test") -> float:
    """Fraction of (sample, node) whose top incoming edge, self loop excluded, head mean,
    comes from the driver; samples may hold several graphs (node ids offset by NODES)."""
    hits = []
    for s in range(store.num_samples("net.spatial", step)):
        w = np.nanmean(store.read("net.spatial", step=step, samples=[s])[0], axis=-1)
        src, dst = store.edge_index("net.spatial", step=step, sample=s)
        w = np.where(src == dst, -np.inf, w[: len(src)])
        for node in np.unique(dst):
            into = np.nonzero(dst == node)[0]
            hits.append(src[into[np.argmax(w[into])]] % NODES == drivers[node % NODES])
    return float(np.mean(hits))


def latest_step_mass(store: Any, step: str = "test") -> float:
    """Temporal attention the newest time step gives itself (the value the driver needs)."""
    w = np.nanmean(store.read("net.temporal", step=step), axis=-1)  # (sample, node, edge)
    src, dst = store.edge_index("net.temporal", step=step)
    last = (dst == WINDOW - 1) & (src == WINDOW - 1)
    return float(w[..., last].sum(-1).mean())


def figures(store: Any, out: Path) -> list[Path]:
    """Top edges, the drawn graph, and the dense matrices of both attentions."""
    from attnscope.plot import plot_edge_matrix, plot_graph, plot_top_edges

    names = [f"n{i:02d}" for i in range(NODES)]
    files = [out / f"graph_{n}.png" for n in ("top_edges", "drawn", "matrix", "temporal")]
    plot_top_edges(store, module="net.spatial", step="test", k=NODES, self_loops=False,
                   node_names=names, title=f"top {NODES} edges, test sample 0 (head mean)",
                   path=files[0])
    plot_graph(store, module="net.spatial", step="test", layout="circular", node_names=names,
               title="GATv2 attention (width, colour: weight; node colour: self loop)",
               path=files[1])
    plot_edge_matrix(store, module="net.spatial", step="test", node_names=names, path=files[2])
    plot_edge_matrix(store, module="net.temporal", step="test", select=[0], axis_name="time step",
                     path=files[3])
    return files


@register_family
class GraphDemo(Demo):
    name = "graph"
    description = ("spatio-temporal graph model (temporal MessagePassing + GATv2Conv) on a "
                   "network where one in-neighbour drives each node")
    expected = "each node's top-weighted incoming edge comes from its driver"
    metric_name = ("fraction of nodes whose top incoming GATv2 edge (self loop excluded, head "
                   "mean) comes from the driving neighbour")
    threshold = THRESHOLD
    requires = ("lightning", "torch_geometric")

    def train(self, run: Run) -> float:
        from attnscope.demos.training import DemoModule, make_loaders, train_and_capture

        edge_index, drivers = make_graph(run.gen)
        run.state["drivers"] = drivers.numpy()
        n_train, epochs = (2000, 4) if run.quick else (4000, 10)
        sets = [make_windows(n, drivers, run.gen) for n in (n_train, 8, 16)]
        # validation/test one window per batch: each stored sample is one 16-node graph
        loaders = make_loaders(sets, 32, run.gen, eval_batch=1)
        return train_and_capture(
            DemoModule(STNet(edge_index), 5e-3), loaders, run.out, epochs=epochs,
            trained=run.trained, threads=1,
            labels={"nodes": [f"n{i:02d}" for i in range(NODES)],
                    "driver_edges": [[int(d), i] for i, d in enumerate(drivers)],
                    "time_steps": [f"t-{WINDOW - 1 - t}" for t in range(WINDOW)]})

    def score(self, run: Run, store) -> tuple[float, dict[str, float]]:
        return driver_hits(store, run.state["drivers"]), {
            "chance": 1 / NEIGHBOURS, "temporal_latest_step_mass": latest_step_mass(store),
            "temporal_uniform_mass": 1 / WINDOW}

    def figures(self, run: Run, store) -> list[Path]:
        return figures(store, run.out)

    def task(self, run: Run) -> str:
        return (f"predict the next value of {NODES} nodes from an {WINDOW}-step window; each "
                f"node has {NEIGHBOURS} in-neighbours, one drives it")

    def summary_expected(self, run: Run) -> str:
        return ("each node's strongest incoming edge is the driver's (chance "
                f"1/{NEIGHBOURS}); temporal attention on the latest step")
