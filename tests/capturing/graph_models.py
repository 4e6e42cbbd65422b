"""PyG layers and a SPIN-style temporal additive attention with a scripted softmax."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GATConv, GATv2Conv, MessagePassing, TransformerConv
from torch_geometric.utils import scatter


@torch.jit.script
def sparse_softmax(src: torch.Tensor, index: torch.Tensor, num_nodes: int, dim: int = -2):
    """Softmax over the edges that share a destination; TorchScript like tsl's."""
    src_max = scatter(src.detach(), index, dim, dim_size=num_nodes, reduce="max")
    out = (src - src_max.index_select(dim, index)).exp()
    denom = scatter(out, index, dim, dim_size=num_nodes, reduce="sum")
    return out / (denom.index_select(dim, index) + 1e-16)


class TemporalAdditiveAttention(MessagePassing):
    """Attention between time steps of each node: a causal temporal graph whose messages
    are weighted by additive scores normalised with a scripted softmax."""

    def __init__(self, channels: int = 8, dropout: float = 0.2) -> None:
        super().__init__(aggr="add", node_dim=-2)
        self.lin_src = nn.Linear(channels, channels)
        self.lin_dst = nn.Linear(channels, channels)
        self.lin_alpha = nn.Linear(channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, edge_index):  # x: (batch, time, channels), edges between time steps
        return self.propagate(edge_index, x=x, size=(x.shape[-2], x.shape[-2]))

    def scores(self, x_i, x_j):
        return self.lin_alpha(torch.tanh(self.lin_src(x_j) + self.lin_dst(x_i)))

    def message(self, x_i, x_j, index, size_i):
        alpha = sparse_softmax(self.scores(x_i, x_j), index, size_i, -2)  # (batch, edge, 1)
        return self.dropout(alpha) * x_j


class GraphModel(nn.Module):
    def __init__(self, conv: str) -> None:
        super().__init__()
        layer = {"gat": lambda: GATConv(6, 4, heads=3, dropout=0.3),
                 "gatv2": lambda: GATv2Conv(6, 4, heads=2, dropout=0.3),
                 "transformer": lambda: TransformerConv(6, 4, heads=2, dropout=0.3)}[conv]
        self.conv = layer()

    def forward(self, x, edge_index):
        return self.conv(x, edge_index)


class SpinLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 8)
        self.temporal = TemporalAdditiveAttention()

    def forward(self, x, edge_index):
        return self.temporal(self.encoder(x), edge_index)


def causal_time_graph(steps: int) -> torch.Tensor:
    """Edges j -> i for every j <= i (src row 0, dst row 1)."""
    rows, cols = torch.tril_indices(steps, steps)  # row i = destination, col j <= i
    return torch.stack([cols, rows])


class PackageSoftmaxAttention(MessagePassing):
    """Calls ``torch_geometric.utils.softmax`` through the package, inside ``message``."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__(aggr="add")
        self.score = nn.Linear(2 * channels, 2)

    def forward(self, x, edge_index):
        return self.propagate(edge_index, x=x)

    def message(self, x_i, x_j, index, ptr, size_i):
        import torch_geometric.utils

        alpha = torch_geometric.utils.softmax(self.score(torch.cat([x_i, x_j], -1)), index,
                                              ptr, size_i)
        self.last_alpha = alpha
        return (alpha.mean(-1, keepdim=True) * x_j)
