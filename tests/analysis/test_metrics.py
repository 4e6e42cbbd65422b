"""Per-head metrics on maps whose values are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.analysis import allowed_keys, head_distances, js_distance, map_metrics
from attnscope.analysis.metrics import graph_metrics


def one(w):
    return {k: float(v[0, 0]) for k, v in map_metrics(np.asarray(w)[None, None]).items()}


def test_uniform_and_one_hot_rows():
    n = 8
    uni = one(np.full((n, n), 1 / n))
    assert uni["norm_entropy"] == pytest.approx(1.0)
    assert uni["entropy"] == pytest.approx(np.log(n))
    assert uni["keys90"] == pytest.approx(np.ceil(0.9 * n))
    assert uni["distance"] == pytest.approx(np.abs(np.subtract.outer(range(n), range(n))).mean())
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1.0
    m = one(prev)
    assert m["prev_token"] == pytest.approx(1.0) and m["norm_entropy"] == pytest.approx(0.0)
    assert m["keys90"] == 1 and m["peak"] == 1 and m["min"] == 0 and m["max"] == 1
    assert m["distance"] == pytest.approx(7 / 8)  # row 0 looks at itself
    assert one(np.eye(n))["diagonal"] == pytest.approx(1.0)
    sink = np.zeros((n, n))
    sink[:, 0] = 1
    assert one(sink)["first"] == 1.0 and one(sink)["prev_token"] == pytest.approx(1 / 7)


def test_causal_uniform_is_maximally_diffuse_not_focused():
    n = 6
    causal = np.tril(np.ones((n, n)))
    causal /= causal.sum(-1, keepdims=True)
    m = one(causal)
    assert m["norm_entropy"] == pytest.approx(1.0)  # normalised by each row's own keys
    assert allowed_keys(causal[None, None])[0, 0].sum() == n * (n + 1) // 2


def test_masked_padding_keys_and_nan_rows_are_left_out():
    w = np.zeros((4, 6))
    w[:, :4] = 0.25  # keys 4, 5 are padding, masked
    w[3] = np.nan  # a fully masked query under eager softmax
    m = one(w)
    assert m["norm_entropy"] == pytest.approx(1.0)
    assert m["mean"] == pytest.approx(1 / 6)


def test_token_scores_on_a_repeated_sequence():
    toks = ["[CLS]", "a", "b", "c", "a", "b", "c", "[SEP]"]
    n = len(toks)
    ind = np.zeros((n, n))  # induction: attend to the token after the earlier copy
    dup = np.zeros((n, n))  # duplicate: attend to the earlier copy itself
    for i in range(n):
        earlier = [j for j in range(i) if toks[j] == toks[i]]
        after = [j + 1 for j in earlier if j + 1 < i]
        ind[i, after[0] if after else i] = 1
        dup[i, earlier[0] if earlier else i] = 1
    mi = map_metrics(ind[None, None], toks, toks)
    md = map_metrics(dup[None, None], toks, toks)
    assert mi["induction"][0, 0] == pytest.approx(1.0) and mi["dup_token"][0, 0] == 0
    assert md["dup_token"][0, 0] == pytest.approx(1.0) and md["induction"][0, 0] == 0
    assert md["special"][0, 0] == pytest.approx(2 / 8)  # [CLS] and [SEP] attend to themselves
    assert np.isnan(map_metrics(ind[None, None])["induction"][0, 0])  # no tokens, no score


def test_non_square_maps_have_no_positional_scores():
    w = np.full((1, 1, 1, 5), 0.2)
    m = map_metrics(w)
    assert np.isnan(m["distance"][0, 0]) and np.isnan(m["prev_token"][0, 0])
    assert m["norm_entropy"][0, 0] == pytest.approx(1.0)


def test_js_distance_against_its_definition():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    m = (p + q) / 2
    kl = lambda a, b: sum(x * np.log2(x / y) for x, y in zip(a, b) if x > 0)  # noqa: E731
    assert js_distance(p, q) == pytest.approx(np.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m)))
    assert js_distance(p, p) == pytest.approx(0.0, abs=1e-7)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    w = np.stack([np.eye(4), np.eye(4), np.eye(4)[::-1]])[None]  # heads 0 and 1 identical
    d = head_distances(w)[0]
    assert d[0, 1] == pytest.approx(0.0, abs=1e-7) and d[0, 2] == pytest.approx(1.0)


def test_graph_metrics_group_edges_by_destination():
    edge_index = np.array([[0, 1, 2, 0], [1, 1, 1, 2]])  # node 1 has 3 sources, node 2 one
    w = np.array([[1 / 3], [1 / 3], [1 / 3], [1.0]])[None]  # (sample, edge, head)
    m = graph_metrics(w, edge_index)
    assert m["norm_entropy"][0, 0] == pytest.approx(1.0)  # only node 1 has a choice
    assert m["peak"][0, 0] == pytest.approx((1 / 3 + 1) / 2)
    assert m["max"][0, 0] == 1.0


def test_masked_marks_and_missing_cells_are_not_keys():
    """A causal head uniform over its allowed keys is 1.0 whether the future is marked
    -0.0 (capture's mask mark), NaN (a stitched decoder step) or plain zeros."""
    n = 5
    tri = np.tril(np.ones((n, n)))
    tri /= tri.sum(-1, keepdims=True)
    upper = np.triu(np.ones((n, n), bool), 1)
    marked = np.where(upper, -0.0, tri)
    missing = np.where(upper, np.nan, tri)
    for w in (tri, marked, missing):
        assert one(w)["norm_entropy"] == pytest.approx(1.0)
    # a masked key (-0.0) in one row only: that row has 3 keys, the others 4
    w = np.full((3, 4), 0.25)
    w[1] = [1 / 3, 1 / 3, -0.0, 1 / 3]
    assert one(w)["norm_entropy"] == pytest.approx(1.0)
    assert allowed_keys(w[None, None])[0, 0].sum() == 11
    # an exact +0.0 (a weight that rounded to 0) stays a key: that row is not uniform
    w[1, 2] = 0.0
    assert one(w)["norm_entropy"] < 0.99


def test_maps_that_are_not_probabilities_get_only_general_metrics():
    from attnscope.analysis.kinds import GENERAL, is_probability, measure_of

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=6)
    bias = rng.normal(0, 0.3, (6, 6))
    eff = p + bias  # ConvTranPlus-like: softmax, then a bias added after it
    assert is_probability(p) and not is_probability(eff)
    assert measure_of("attn@effective", p) == "effective"
    assert measure_of("attn", eff) == "weights" and measure_of("attn", p) == "probability"
    m = {k: float(v[0, 0]) for k, v in map_metrics(eff[None, None], probability=False).items()}
    assert set(k for k, v in m.items() if not np.isnan(v)) == set(GENERAL)
    assert m["min"] == pytest.approx(eff.min()) and m["max"] == pytest.approx(eff.max())
    assert m["peak"] == pytest.approx(eff.max(-1).mean(), rel=1e-5)
    dist = np.abs(np.subtract.outer(range(6), range(6)))
    want = ((np.abs(eff) * dist).sum(-1) / np.abs(eff).sum(-1)).mean()
    assert m["distance"] == pytest.approx(want, rel=1e-5)
