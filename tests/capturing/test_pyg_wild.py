"""PyG attention beyond the conformance layers: node-to-graph attention pooling, held-out
conv layers against their own ``return_attention_weights``, and the module-level name
swaps scoped to the context (restored through exceptions and half-done attaches)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnscope

pyg = pytest.importorskip("torch_geometric", reason="torch_geometric is not installed")


class Pools(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from torch_geometric.nn.aggr import AttentionalAggregation, Set2Set, SoftmaxAggregation

        self.pool = AttentionalAggregation(nn.Linear(4, 1), nn.Linear(4, 4))
        self.set2set = Set2Set(4, processing_steps=1)
        self.smooth = SoftmaxAggregation(learn=True)

    def forward(self, x, batch):
        return self.pool(x, batch), self.set2set(x, batch), self.smooth(x, batch)


def _graphs():
    torch.manual_seed(0)
    return torch.randn(7, 4), torch.tensor([0, 0, 0, 1, 1, 2, 2])


def _per_graph_softmax(scores, batch):
    return torch.cat([scores[batch == g].softmax(0) for g in range(int(batch.max()) + 1)])


def test_attention_pooling_is_a_node_to_graph_map():
    x, batch = _graphs()
    model = Pools().eval()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x, batch)
        gate = _per_graph_softmax(model.pool.gate_nn(x), batch)
        q = torch.zeros(3, 8)  # Set2Set's first query: zero LSTM state
        h = model.set2set.lstm(q.unsqueeze(0))[0].squeeze(0)
        s2s = _per_graph_softmax((x * h[batch]).sum(-1, keepdim=True), batch)
    assert rec.modules == ["pool", "set2set"]  # a smooth max is not attention by default
    pool, s2s_map = rec.maps
    assert pool.kind == "graph" and torch.equal(pool.edge_index, torch.stack([torch.arange(7),
                                                                              batch]))
    assert (pool.weights - gate).abs().max() < 1e-6
    assert (s2s_map.weights - s2s).abs().max() < 1e-6


def test_any_aggregation_softmax_with_include():
    x, batch = _graphs()
    model = Pools().eval()
    with torch.no_grad(), attnscope.capture(model, include="smooth") as rec:
        model(x, batch)
    assert rec.modules == ["smooth"] and rec.maps[0].weights.shape == (7, 4)


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv", "TransformerConv", "SuperGATConv"])
def test_held_out_conv_layers_match_their_own_weights(name):
    import torch_geometric.nn as gnn

    torch.manual_seed(0)
    conv = getattr(gnn, name)(6, 4, heads=2).eval()
    x = torch.randn(6, 6)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 3]])
    want = None
    with torch.no_grad():
        if name != "SuperGATConv":  # SuperGATConv cannot return its weights
            _, (used, want) = conv(x, edge_index, return_attention_weights=True)
        with attnscope.capture(conv) as rec:
            conv(x, edge_index)
    (m,) = rec.maps
    assert m.kind == "graph" and m.weights.shape[-1] == 2
    if want is not None:
        assert torch.equal(m.edge_index, used) and (m.weights - want).abs().max() < 1e-6
    dst = m.edge_index[1]
    sums = torch.zeros(6, 2).index_add_(0, dst, m.weights)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)


def _softmax_names():
    import sys

    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("torch_geometric") and module is not None:
            for key, value in list(vars(module).items()):
                if "softmax" in key.lower():
                    found[(name, key)] = value
    return found


def test_name_swaps_are_restored_through_exceptions_and_failed_attaches(monkeypatch):
    from attnscope.capturing.strategies import pyg as pyg_strategy

    x, batch = _graphs()
    model = Pools().eval()
    before = _softmax_names()
    with pytest.raises(RuntimeError, match="boom"), attnscope.capture(model):
        model(x, batch)
        assert _softmax_names() != before  # swapped inside the context only
        raise RuntimeError("boom")
    assert _softmax_names() == before

    calls = []
    real = pyg_strategy._GlobalPatch.__init__

    def fail_second(self, *args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("attach failed")
        real(self, *args)

    monkeypatch.setattr(pyg_strategy._GlobalPatch, "__init__", fail_second)
    with pytest.raises(RuntimeError, match="attach failed"), attnscope.capture(model):
        pass
    assert _softmax_names() == before
