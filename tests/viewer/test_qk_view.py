"""The query/key view of a store in query/key form: per-dimension products q_i * k_i of
one query and every key, whose sum times the scale is the score behind each weight."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.viewer import render_html
from attnscope.viewer._qk import qk_arrays


class Sdpa(nn.Module):
    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.proj = nn.Linear(d, 3 * d)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.proj(x).view(b, n, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v)


@pytest.fixture(scope="module")
def qk_store(tmp_path_factory):
    torch.manual_seed(0)
    model, path = nn.Sequential(Sdpa()), tmp_path_factory.mktemp("qk") / "attn"
    with torch.no_grad(), attnscope.capture(model, store=path, step="s", form="qk"):
        model(torch.randn(1, 6, 16))
    return attnscope.open_store(path)


def test_stored_queries_and_keys_give_the_stored_weights(qk_store):
    name = qk_store.modules[0]
    got = qk_arrays(qk_store, name, "s", 0, [0, 1], (6, 6))
    assert got is not None and got["q"][0].shape == (6, 8)
    for h in range(2):
        scores = torch.from_numpy(got["q"][h] @ got["k"][h].T * got["scale"])
        np.testing.assert_allclose(torch.softmax(scores, -1).numpy(),
                                   qk_store.read(name, "s")[0, h], atol=1e-3)
    assert qk_arrays(qk_store, name, "s", 0, [0, 1], (2000, 2000)) is None  # too long


def test_query_key_view_in_the_browser(open_page, qk_store, tmp_path):
    name = qk_store.modules[0]
    view = render_html(qk_store, tokens=list("abcdef"))
    assert view.meta["entries"][0]["qk"]["dim"] == 8
    p = open_page(view.save(tmp_path / "qk.html"))
    p.after(lambda: p.page.select_option(".as-view", "qk"))
    assert "shows one head" in p.text(".as-note")  # the mean is on at first
    p.after(lambda: p.page.select_option(".as-head", "1"))
    p.after(lambda: p.page.select_option(".as-qkquery", "2"))
    got = qk_arrays(qk_store, name, "s", 0, [0, 1], (6, 6))
    q, k = got["q"][1][2].astype(np.float16), got["k"][1].astype(np.float16)
    scores = k.astype(np.float32) @ q.astype(np.float32) * got["scale"]
    weights = qk_store.read(name, "s")[0, 1, 2]
    size = p.page.evaluate("() => document.querySelector('.as-canvas').width")
    ch, cw = min(20, (size - 8) / 8), (size - 50) / 8
    box = p.page.locator(".as-canvas").bounding_box()
    p.page.mouse.move(box["x"] + 1 + 3.5 * cw, box["y"] + 1 + (4 + 2.5) * ch)  # key 4, dim 3
    tip = p.text(".as-tip")
    assert tip.startswith("query 2 \u201cc\u201d \u2192 key 4 \u201ce\u201d, dim 3: ")
    qv, kv, pv = (float(x) for x in re.search(r"q (\S+) \u00d7 k (\S+) = (\S+);", tip).groups())
    assert (qv, kv) == pytest.approx((float(q[3]), float(k[4, 3])), abs=1e-3)
    assert pv == pytest.approx(float(q[3]) * float(k[4, 3]), abs=1e-3)
    s, w = (float(x) for x in re.search(r"= (\S+) \u2192 weight (\S+)$", tip).groups())
    assert s == pytest.approx(scores[4], abs=5e-3) and w == pytest.approx(weights[4], abs=1e-3)
    assert "query 2 \u201cc\u201d" in p.page.locator(".as-rlab").first.inner_text()
    assert p.errors == []


def test_recording_kept_in_memory_carries_the_same_queries_and_keys(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(Sdpa())
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "a", step="s", form="qk",
                                            keep=True) as rec:
        model(torch.randn(2, 5, 16))  # batch 2: sample 1 is the second row
    store = attnscope.open_store(tmp_path / "a")
    name = store.modules[0]
    from_rec = qk_arrays(rec, name, None, 1, [0, 1], (5, 5))
    from_store = qk_arrays(store, name, "s", 1, [0, 1], (5, 5))
    assert from_rec is not None and from_store is not None
    for part in "qk":
        for a, b in zip(from_rec[part], from_store[part], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
    view = render_html(rec, samples=[0, 1])
    assert [e["qk"]["dim"] for e in view.meta["entries"]] == [8, 8]
