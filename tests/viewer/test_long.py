"""Long maps from a store in query/key form: the page embeds queries, keys, each row's
log-sum-exp and coarse levels, and computes the cells it shows when zoomed in."""

from __future__ import annotations

import base64
import re
import warnings
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.viewer import render_html

L = 2048


class Causal(nn.Module):
    def __init__(self, d: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.proj = nn.Linear(d, 2 * d)

    def forward(self, x):
        b, n, _ = x.shape
        q, k = self.proj(x).view(b, n, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, k, is_causal=True)


@pytest.fixture(scope="module")
def long_store(tmp_path_factory):
    torch.manual_seed(0)
    model, path = nn.Sequential(Causal()), tmp_path_factory.mktemp("long") / "attn"
    with torch.no_grad(), attnscope.capture(model, store=path, step="s", form="qk"):
        model(torch.randn(1, L, 32) * 2)
    return attnscope.open_store(path)


def test_page_embeds_no_full_resolution_cells(long_store):
    view = render_html(long_store, heads=[1], max_mb=2)  # a dense page would be ~9 MB
    e = view.meta["entries"][0]
    assert e["computed"] and e["heads"] == ["1"] and (e["rows"], e["cols"]) == (L, L)
    full, coarse = e["maps"][0]["levels"][0], e["maps"][0]["levels"][1:]
    assert full["qk"] and full["mean"] is None and full["max"] is None
    assert [lv["fy"] for lv in coarse] == [4] and coarse[0]["rows"] == L // 4
    # blobs: queries, keys, lse, one mean and one max tile of the coarse level, thumbnail
    assert len(view.meta["blobs"]) == 3 * 6 and view.nbytes < 0.25 * L * L * 2
    # the coarse level holds the block means and maxima of what the store reads
    w = long_store.read(long_store.modules[0], "s", heads=[1])[0, 0]
    w = np.where(np.tril(np.ones((L, L), bool)), w, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked blocks stay NaN
        blocks = w.reshape(L // 4, 4, L // 4, 4)
        want = np.nanmean(blocks, axis=(1, 3)), np.nanmax(blocks, axis=(1, 3))
    for kind, expect in zip(("mean", "max"), want, strict=True):
        got = _blob(view, coarse[0][kind][0]).reshape(L // 4, L // 4)
        np.testing.assert_allclose(got, expect, atol=1e-3)
    assert e["maps"][0]["vmax"] == pytest.approx(np.nanmax(w), abs=1e-3)


def _blob(view, i: int) -> np.ndarray:
    """float16 planes of blob ``i`` as the page decodes them."""
    part, start, n = view.meta["blobs"][3 * i:3 * i + 3]
    raw = base64.b64decode(view.data[part][start:start + n])
    raw = raw if part == 0 else zlib.decompress(raw)
    u = np.frombuffer(raw, np.uint8)
    half = u[:u.size // 2].astype(np.uint16) | (u[u.size // 2:].astype(np.uint16) << 8)
    return half.view(np.float16).astype(np.float32)


def test_zoomed_cells_equal_the_store_read(open_page, long_store, tmp_path):
    name = long_store.modules[0]
    view = render_html(long_store, heads=[0, 1], tokens=[f"t{i}" for i in range(L)])
    p = open_page(view.save(tmp_path / "long.html"))
    assert "level 1" in p.text(".as-legend") or "zoom in" in p.page.inner_text(".attnscope-view")
    assert "no head mean" in p.text(".as-note")  # heads=[0, 1]: the mean is not offered
    p.after(lambda: p.page.select_option(".as-head", "1"))
    box = p.page.locator(".as-canvas").bounding_box()
    x, y = box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7
    p.page.mouse.move(x, y)
    for _ in range(8):  # wheel in until one cell per pixel (or more)
        p.after(lambda: p.page.mouse.wheel(0, -100))
    text = p.page.inner_text(".attnscope-view")
    assert "computed in the page from queries and keys" in text
    w = long_store.read(name, "s", heads=[1])[0, 0]
    seen = masked = 0
    for dx, dy in [(0, 0), (-40, 10), (30, -25), (-100, -80), (90, 60), (5, -120)]:
        p.page.mouse.move(x + dx, y + dy)
        tip = p.text(".as-tip")
        r, c, v = re.search(r"query (\d+) \S+ \u2192 key (\d+) \S+: (\S+)$", tip).groups()
        r, c = int(r), int(c)
        if v == "masked":
            assert c > r
            masked += 1
        else:
            assert float(v) == pytest.approx(float(w[r, c]), abs=1e-3)
            seen += 1
    assert seen >= 3
    tile = p.page.evaluate(
        "() => document.querySelector('.attnscope-view').attnscopeTile(1536, 1024)")
    want = w[1536, 1024:1536]
    got = np.array([np.nan if v is None else v for v in tile["row"]], np.float32)
    np.testing.assert_allclose(got, want, atol=1e-3)  # the tile the matrix would compute
    assert tile["ms"] >= 0
    assert p.errors == [] and p.requests == [p.uri]


class Masked(Causal):
    """Passes its own mask instead of sdpa's causal flag."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, x):
        b, n, _ = x.shape
        q, k = self.proj(x).view(b, n, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, k, attn_mask=self.mask)


@pytest.mark.parametrize("how", ["bool", "additive", "padding"])
def test_a_mask_of_the_causal_triangle_only_is_computed_too(tmp_path, how):
    n = 1100
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    if how == "padding":
        causal[:, -3:] = False
    mask = causal if how != "additive" else \
        torch.zeros(n, n).masked_fill(~causal, torch.finfo(torch.float32).min)
    torch.manual_seed(2)
    model = nn.Sequential(Masked(mask))
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "m", step="s", form="qk"):
        model(torch.randn(1, n, 32))
    store = attnscope.open_store(tmp_path / "m")
    view = render_html(store, heads=[0])
    e = view.meta["entries"][0]
    assert e.get("computed", False) is (how != "padding")  # padding: the stored cells
    if how != "padding":  # block means over the visible (lower) cells, masked ones NaN
        w = store.read(store.modules[0], "s", heads=[0])[0, 0]
        w = np.where(causal.numpy(), w, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmean(w.reshape(n // 4, 4, n // 4, 4), axis=(1, 3))
        got = _blob(view, e["maps"][0]["levels"][1]["mean"][0]).reshape(n // 4, n // 4)
        np.testing.assert_allclose(got, want, atol=1e-3)
