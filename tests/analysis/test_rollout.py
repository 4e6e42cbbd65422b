"""Rollout and flow against references written here from the paper's definitions
(Abnar & Zuidema 2020): plain loops, no NumPy matrix algebra, no networkx."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from attnscope.analysis import AnalysisError, attention_flow, attention_rollout, layer_matrix


def softmax_maps(rng, batch, heads, q, k, sharp=2.0):
    x = np.exp(sharp * rng.normal(size=(batch, heads, q, k)))
    return x / x.sum(-1, keepdims=True)


def ref_layer(heads, fusion, discard, residual):
    """One sample's layer: fuse heads, drop the lowest weights, add I/2, rows to 1."""
    n, m = len(heads[0]), len(heads[0][0])
    pick = {"mean": lambda v: sum(v) / len(v), "max": max, "min": min}[fusion]
    a = [[pick([h[i][j] for h in heads]) for j in range(m)] for i in range(n)]
    if discard:
        cells = sorted((a[i][j], i, j) for i in range(n) for j in range(m))
        for _, i, j in cells[: int(n * m * discard)]:
            a[i][j] = 0.0
    if residual and n == m:
        a = [[0.5 * a[i][j] + (0.5 if i == j else 0.0) for j in range(m)] for i in range(n)]
    out = []
    for row in a:
        s = sum(row)
        out.append([x / s if s > 0 else 0.0 for x in row])
    return out


def ref_rollout(layers, fusion="mean", discard=0.0, residual=True):
    mats = [ref_layer(layer, fusion, discard, residual) for layer in layers]
    r = mats[0]
    for a in mats[1:]:  # rollout(l) = A(l) . rollout(l - 1)
        r = [[sum(a[i][t] * r[t][j] for t in range(len(r))) for j in range(len(r[0]))]
             for i in range(len(a))]
    return r


def ref_max_flow(cap, s, t):
    """Edmonds-Karp on a dict-of-dicts capacity graph (floats)."""
    flow = 0.0
    res = {u: dict(v) for u, v in cap.items()}
    for u in list(res):
        for v in list(res[u]):
            res.setdefault(v, {}).setdefault(u, 0.0)
    while True:
        parent = {s: None}
        todo = deque([s])
        while todo and t not in parent:
            u = todo.popleft()
            for v, c in res[u].items():
                if c > 1e-15 and v not in parent:
                    parent[v] = u
                    todo.append(v)
        if t not in parent:
            return flow
        path, v = [], t
        while parent[v] is not None:
            path.append((parent[v], v))
            v = parent[v]
        push = min(res[u][v] for u, v in path)
        for u, v in path:
            res[u][v] -= push
            res[v][u] += push
        flow += push


def ref_flow(layers, fusion="mean", residual=True):
    mats = [ref_layer(layer, fusion, 0.0, residual) for layer in layers]
    cap: dict = {}
    for lay, a in enumerate(mats, start=1):
        for i, row in enumerate(a):
            for j, c in enumerate(row):
                if c > 0:
                    cap.setdefault((lay, i), {})[(lay - 1, j)] = c
    top, bottom = len(mats[-1]), len(mats[0][0])
    return [[ref_max_flow(cap, (len(mats), i), (0, j)) for j in range(bottom)]
            for i in range(top)]


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard", [0.0, 0.5, 0.9])
def test_rollout_matches_the_reference(fusion, discard):
    rng = np.random.default_rng(3)
    layers = [softmax_maps(rng, 2, 3, 5, 5) for _ in range(3)]
    got = attention_rollout(layers, head_fusion=fusion, discard_ratio=discard)
    for b in range(2):
        want = ref_rollout([layer[b].tolist() for layer in layers], fusion, discard)
        np.testing.assert_allclose(got[b], want, atol=1e-12)
    # rows, not columns, are normalised: every output row is a distribution
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-12)


def test_discarding_renormalises_rows_not_columns():
    rng = np.random.default_rng(0)
    a = softmax_maps(rng, 1, 2, 6, 6, sharp=3.0)
    m = layer_matrix(a, "mean", discard_ratio=0.7)
    np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-12)
    assert not np.allclose(m.sum(-2), 1.0)  # a column normalisation would give this
    off = ~np.eye(6, dtype=bool)
    assert (m[0][off] == 0).sum() >= int(36 * 0.7) - 6  # the discarded stay discarded


def test_rollout_without_residual_is_the_plain_product():
    rng = np.random.default_rng(1)
    a, b = softmax_maps(rng, 1, 1, 4, 4), softmax_maps(rng, 1, 1, 4, 4)
    got = attention_rollout([a, b], residual=False)
    np.testing.assert_allclose(got[0], b[0, 0] @ a[0, 0], atol=1e-12)


def test_a_pooling_last_layer_reads_the_positions_below():
    """An LSTM-style 1-D attention over time (one query) ends the stack."""
    rng = np.random.default_rng(2)
    self_layer, pool = softmax_maps(rng, 1, 2, 6, 6), softmax_maps(rng, 1, 1, 1, 6)
    got = attention_rollout([self_layer, pool])
    assert got.shape == (1, 1, 6)
    want = ref_rollout([self_layer[0].tolist(), pool[0].tolist()])
    np.testing.assert_allclose(got[0], want, atol=1e-12)
    only = attention_rollout([pool])  # a single 1-D layer is its own rollout
    np.testing.assert_allclose(only[0, 0], pool[0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_flow_matches_a_reference_max_flow(fusion):
    pytest.importorskip("networkx")
    rng = np.random.default_rng(4)
    layers = [softmax_maps(rng, 1, 2, 4, 4) for _ in range(3)]
    got = attention_flow(layers, head_fusion=fusion)
    want = ref_flow([layer[0].tolist() for layer in layers], fusion)
    np.testing.assert_allclose(got[0], want, atol=1e-6)
    # flow never exceeds what leaves an output node (its row sums to 1)
    assert (got[0].max(-1) <= 1 + 1e-6).all()


def networkx_flow(layers, fusion="mean", discard=0.0):
    """The networkx reference: one max-flow per pair on real-valued capacities."""
    import networkx as nx

    mats = [layer_matrix(a, fusion, discard) for a in layers]
    out = np.zeros((mats[0].shape[0], mats[-1].shape[1], mats[0].shape[2]))
    for b in range(out.shape[0]):
        g = nx.DiGraph()
        for lay, m in enumerate(mats, start=1):
            for i, j in zip(*np.nonzero(m[b] > 0)):
                g.add_edge((lay, int(i)), (lay - 1, int(j)), capacity=float(m[b, i, j]))
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                s, t = (len(mats), i), (0, j)
                out[b, i, j] = nx.maximum_flow_value(g, s, t) if s in g and t in g else 0.0
    return out


@pytest.mark.parametrize("discard", [0.0, 0.6])
def test_flow_equals_networkx_within_the_stated_error(discard):
    """Batch 2, 7 tokens, 3 layers plus a pooling query; sparse after discarding."""
    pytest.importorskip("networkx")
    from attnscope.analysis import flow_error_bound

    rng = np.random.default_rng(7)
    layers = [softmax_maps(rng, 2, 3, 7, 7, sharp=3.0) for _ in range(3)]
    layers.append(softmax_maps(rng, 2, 2, 1, 7))
    got = attention_flow(layers, discard_ratio=discard)
    want = networkx_flow(layers, discard=discard)
    bound = flow_error_bound(layers)
    assert 0 < bound < 1e-6
    assert np.abs(got - want).max() <= bound
    assert got.std() > 0.01  # the flows are not all alike


def test_flow_of_chosen_outputs_and_refusal_of_large_inputs():
    rng = np.random.default_rng(5)
    layers = [softmax_maps(rng, 1, 2, 4, 4) for _ in range(2)]
    full = attention_flow(layers)
    part = attention_flow(layers, outputs=[0])
    np.testing.assert_allclose(part[0, 0], full[0, 0])
    assert np.isnan(part[0, 1:]).all()
    big = [softmax_maps(rng, 1, 1, 200, 200) for _ in range(4)]
    with pytest.raises(AnalysisError, match="one max-flow problem per"):
        attention_flow(big)


def test_layers_that_do_not_chain_are_refused():
    rng = np.random.default_rng(6)
    with pytest.raises(AnalysisError, match="consecutive self-attention"):
        attention_rollout([softmax_maps(rng, 1, 1, 4, 4), softmax_maps(rng, 1, 1, 5, 5)])
    with pytest.raises(AnalysisError, match="head_fusion"):
        attention_rollout([softmax_maps(rng, 1, 1, 4, 4)], head_fusion="sum")
    with pytest.raises(AnalysisError, match="discard_ratio"):
        attention_rollout([softmax_maps(rng, 1, 1, 4, 4)], discard_ratio=1.0)


def test_stack_layers_from_a_recording_counts_samples_across_calls():
    import torch

    import attnscope
    from attnscope.analysis import stack_layers
    from tests.analysis.conftest import make_encoder

    model = make_encoder()
    a, b = torch.randn(2, 5, 16), torch.randn(3, 5, 16)
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(a)
        model(b)
    layers = stack_layers(rec, sample=3)  # the second sample of the second call
    with torch.no_grad(), attnscope.capture(model) as one:
        model(b[1:2])
    assert len(layers) == 2
    for got, m in zip(layers, one.maps):
        np.testing.assert_allclose(got, m.weights.numpy(), atol=1e-6)
    with pytest.raises(AnalysisError, match="out of range"):
        stack_layers(rec, sample=5)
