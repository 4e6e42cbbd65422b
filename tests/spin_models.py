"""A SPIN-like spatio-temporal model written for the tests (not the repo's demo): inputs
``(batch, time, node, feature)``, a temporal attention over a causal time graph that
normalises ``(batch, time-edge, node, head)`` scores with a scripted softmax along dim
-3 (as tsl's ``sparse_softmax``), then a spatial attention over a sensor graph with
``(batch, time, node-edge, head)`` scores. Module names are unlike any demo's."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric import utils as pyg_utils
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from attnscope.graph import temporal_edge_index

BATCH, T, N, F, HEADS = 3, 5, 4, 6, 2
SENSOR_EDGES = torch.tensor([[1, 2, 3, 0, 2, 0, 1], [0, 0, 1, 2, 3, 3, 3]])


@torch.jit.script
def edge_softmax(src: torch.Tensor, index: torch.Tensor, num_nodes: int, dim: int = -3):
    """Softmax over edges sharing a destination along ``dim`` (TorchScript, tsl-like)."""
    top = scatter(src.detach(), index, dim, dim_size=num_nodes, reduce="max")
    out = (src - top.index_select(dim, index)).exp()
    return out / (scatter(out, index, dim, dim_size=num_nodes, reduce="sum")
                  .index_select(dim, index) + 1e-16)


class StepScorer(MessagePassing):
    """Additive multi-head attention between time steps, per node: ``node_dim=-3``."""

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=-3)
        self.src, self.dst = nn.Linear(F, F), nn.Linear(F, F)
        self.score = nn.Linear(F, HEADS)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.propagate(edge_index, x=x)

    def message(self, x_i, x_j, index, size_i):  # (batch, edge, node, feature)
        alpha = edge_softmax(self.score(torch.tanh(self.src(x_j) + self.dst(x_i))), index,
                             size_i, -3)  # (batch, edge, node, head)
        return alpha.mean(-1, keepdim=True) * x_j


class SensorScorer(MessagePassing):
    """Dot-product attention between sensors, per time step: ``node_dim=-2``."""

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=-2)
        self.q, self.k = nn.Linear(F, F * HEADS), nn.Linear(F, F * HEADS)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.propagate(edge_index, x=x)

    def message(self, x_i, x_j, index, size_i):  # (batch, time, edge, feature)
        q = self.q(x_i).unflatten(-1, (HEADS, F))
        k = self.k(x_j).unflatten(-1, (HEADS, F))
        alpha = pyg_utils.softmax((q * k).sum(-1) / F ** 0.5, index, num_nodes=size_i,
                                  dim=-2)  # (batch, time, edge, head)
        return alpha.mean(-1, keepdim=True) * x_j


class Imputer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lift = nn.Linear(1, F)
        self.stack = nn.ModuleList([nn.ModuleDict({"when": StepScorer(),
                                                   "where": SensorScorer()})])
        self.register_buffer("time_edges", temporal_edge_index(T, causal=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, node)
        h = self.lift(x[..., None])
        for block in self.stack:
            h = h + block["when"](h, self.time_edges)
            h = h + block["where"](h, SENSOR_EDGES)
        return h.sum(-1)


def when_reference(model: Imputer, x: torch.Tensor) -> torch.Tensor:
    """``(batch, node, head, T, T)`` of the temporal block by a dense masked softmax."""
    block = model.stack[0]["when"]
    h = model.lift(x[..., None]).transpose(1, 2)  # (batch, node, time, feature)
    s = block.score(torch.tanh(block.src(h)[:, :, None] + block.dst(h)[:, :, :, None]))
    t = torch.arange(T)  # s: (batch, node, query, key, head)
    s = s.masked_fill((t[None, :] > t[:, None])[None, None, :, :, None], -torch.inf)
    return torch.softmax(s, dim=3).permute(0, 1, 4, 2, 3)
