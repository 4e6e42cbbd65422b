"""Query/key store form under the layout check: grouped-query heads packed into the query
axis of a decode step are unpacked by reshape and stored as queries and keys; a map the
check rebuilds otherwise (heads folded into the batch) is stored as probabilities (in the
store's dtype) with a note; reads equal a float32 probability store either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnscope
from tests.capturing.hf_models import DECODERS, make

pytest.importorskip("transformers", reason="transformers is not installed")


def _generate(model, path, ids, mask, **kw):
    with torch.no_grad(), attnscope.capture(model, store=path, step="s", **kw):
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=3, do_sample=False,
                       pad_token_id=0)
    return attnscope.open_store(path)


@pytest.mark.parametrize("arch", [0, 2], ids=["llama", "qwen2"])
@pytest.mark.parametrize("padded", [True, False], ids=["left-padded", "unpadded"])
def test_grouped_query_generate_in_qk_form(tmp_path, padded, arch):
    model = make(DECODERS[arch], "sdpa")  # 4 query heads over 2 key heads
    torch.manual_seed(2)
    ids = torch.randint(2, 64, (2, 6))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :2] = 0  # transformers then packs the query heads of each decode step
    p = _generate(model, tmp_path / "p", ids, mask, dtype="float32")
    q = _generate(model, tmp_path / "q", ids, mask, form="qk", dtype="float32")
    assert p.modules == q.modules and len(q.modules) == 2
    for name in q.modules:
        segs = q.segments(name, "s")
        assert [s.shape for s in segs] == [(2, 4, 6, 6), (2, 4, 1, 7), (2, 4, 1, 8)]
        # packed decode steps (padded) too: queries and keys, never probabilities
        assert [(s.path / "q").exists() for s in segs] == [True, True, True]
        info = q.module_info(name)
        assert info["form"] == "qk" and "note" not in info
        a, b = p.read(name), q.read(name)
        assert a.shape == b.shape == (6, 4, 6, 8)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        assert np.nanmax(np.abs(a - b)) <= 1e-6
        live = np.nan_to_num(b).sum(-1)
        assert np.allclose(live[2:, :, 0], 1.0, atol=1e-5)  # decode rows are distributions


@pytest.mark.parametrize("order", ["batch", "head"])
def test_heads_folded_into_the_batch_in_qk_form(tmp_path, order):
    from tests.capturing import layout_models as lm

    torch.manual_seed(0)
    model = lm.FoldedSdpaAttention(order).eval()
    x = torch.randn(3, 8, 16)
    pad = torch.zeros(3, 8, dtype=torch.bool)
    pad[1, 6:], pad[2, 3:] = True, True
    with pytest.warns(UserWarning, match="layout check rebuilt"), torch.no_grad(), \
            attnscope.capture(model, store=tmp_path / "q", step="s", form="qk",
                              dtype="float32"):
        model(x, pad)
    store = attnscope.open_store(tmp_path / "q")
    (name,) = store.modules
    assert not (store.segments(name, "s")[0].path / "q").exists()
    assert store.module_info(name)["form"] == "probs"
    with torch.no_grad():
        want = model.expected(x, pad).numpy()
    assert np.abs(store.read(name) - want).max() < 1e-5
