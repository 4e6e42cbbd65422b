"""Folds decided from how the operands were built (provenance), query subsets put back at
their positions, softmaxes over picked values left out: each against ground truth
computed another way (the softmax written out per head)."""

from __future__ import annotations

import pytest
import torch

import attnscope
from tests.capturing import fold_models as fm

TOL = 2e-5


def _capture(model, *inputs, **options):
    with torch.no_grad(), attnscope.capture(model, **options) as rec:
        model(*inputs)
    return rec


@pytest.mark.parametrize("sdpa", [False, True], ids=["softmax", "sdpa3d"])
@pytest.mark.parametrize("batch", [3, 2])  # 2: as many samples as heads
def test_head_major_fold_by_split_and_cat(sdpa, batch):
    torch.manual_seed(0)
    model = fm.ATCNetAttention(sdpa=sdpa).eval()
    x = torch.randn(batch, 6, 16)  # no masked keys: only the provenance tells the order
    rec = _capture(model, x)
    (m,) = rec.maps
    assert m.weights.shape == (batch, 2, 6, 6)
    assert (m.weights - model.expected(x)).abs().max() < TOL
    assert not any("assumed" in n for n in rec.notes), rec.notes


def test_fold_without_evidence_is_recorded_with_a_note_saying_so():
    torch.manual_seed(0)
    q, k = torch.randn(6, 5, 8), torch.randn(6, 5, 8)  # made outside: nothing was seen
    rec = _capture(fm.PrefoldedAttention(), torch.randn(3, 4), q, k, include=["*"])
    (m,) = rec.maps
    assert m.weights.shape == (3, 2, 5, 5)
    assert any("assumed batch-major" in n for n in rec.notes), rec.notes


def test_patchtst_3d_sdpa_over_channel_independent_rows():
    torch.manual_seed(0)
    model = fm.PatchTST().eval()
    x = torch.randn(2, 3, 5, 16)  # batch 2, 3 channels, 5 patches
    rec = _capture(model, x)
    (m,) = rec.maps
    assert m.module == "attn.sdp_attn" and m.kind == "self"
    assert m.weights.shape == (6, 2, 5, 5)  # (batch*channel, head, query, key)
    assert (m.weights - model.expected(x)).abs().max() < TOL
    assert any("6 rows for a model call of 2 samples" in n for n in rec.notes)


def test_probsparse_rows_are_placed_at_their_queries():
    torch.manual_seed(0)
    model = fm.ProbAttention().eval()
    x = torch.randn(2, 8, 16)
    rec = _capture(model, x)
    (m,) = rec.maps
    want = model.expected(x)
    assert m.weights.shape == (2, 2, 8, 8) and m.kind == "self"
    assert torch.equal(m.weights.isnan(), want.isnan())
    assert (m.weights - want).nan_to_num().abs().max() < TOL
    assert (m.weights.isnan().all(-1).sum(-1) == 8 - 3).all()
    assert any("3 of 8 query rows" in n and "NaN" in n for n in rec.notes)


def test_probsparse_by_gather_is_placed_too():
    from tests.capturing.layout_models import ProbSparseAttention, heads_of, reference

    torch.manual_seed(0)
    model = ProbSparseAttention().eval()
    x = torch.randn(2, 8, 16)
    (m,) = _capture(model, x).maps
    q, k = heads_of(model.q(x), 2), heads_of(model.k(x), 2)
    full = reference(q, k)
    live = ~m.weights.isnan()
    assert (live.all(-1).sum(-1) == 3).all()
    assert (m.weights[live] - full[live]).abs().max() < TOL


def test_softmax_over_topk_lags_is_not_attention():
    torch.manual_seed(0)
    model = fm.AutoformerAttention().eval()
    with pytest.raises(attnscope.NoAttentionFoundError, match="picked by topk"):
        _capture(model, torch.randn(2, 8, 16))


def test_probsparse_rows_survive_a_store(tmp_path):
    torch.manual_seed(0)
    model = fm.ProbAttention().eval()
    x = torch.randn(2, 8, 16)
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", step="val"):
        model(x)
    store = attnscope.open_store(tmp_path / "s")
    got = torch.from_numpy(store.read(store.modules[0], step="val")).float()
    want = model.expected(x)
    assert torch.equal(got.isnan(), want.isnan())
    assert (got - want).nan_to_num().abs().max() < 1e-3  # float16 store
