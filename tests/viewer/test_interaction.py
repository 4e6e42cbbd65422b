"""Issue 22 in Chromium: hover text always current (also at coarse levels), colour
scales stated in the legend, refusals said on the page, a window-sized layout."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnscope.viewer import render_html
from tests.viewer.conftest import softmax_maps, write_steps

TOKENS = ["the", "cat", "sat", "on", "a", "mat", "today", "."]
VALUE = re.compile(r": (-?[0-9.e+-]+)$")


def f16(x) -> float:
    return float(np.float16(x))


def value(text: str) -> float:
    return float(VALUE.search(text).group(1))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("interact") / "attn"
    steps = {f"epoch_{i:03d}": softmax_maps(10 + i, (1, 4, 8, 8)) for i in range(2)}
    write_steps(path, steps, labels={"tokens": TOKENS}, modules=2)
    return path, steps


@pytest.fixture(scope="module")
def page_file(store, tmp_path_factory):
    return render_html(store[0]).save(tmp_path_factory.mktemp("html") / "view.html")


def test_hover_text_follows_head_and_keyboard_changes_without_a_mouse_move(open_page, page_file,
                                                                          store):
    w = store[1]["epoch_001"][0]  # (head, query, key); the last step shows first
    p = open_page(page_file)
    p.after(lambda: p.page.select_option(".as-head", "1"))
    p.page.mouse.move(*p.cell(5.5, 2.5, 8))
    assert value(p.text(".as-tip")) == pytest.approx(f16(w[1, 2, 5]), abs=1e-4)
    p.after(lambda: p.page.select_option(".as-head", "3"))  # the mouse stays where it is
    assert p.text(".as-tip", lambda t: abs(value(t) - f16(w[3, 2, 5])) < 1e-4)
    p.page.focus(".as-thumb[data-module='0'][data-head='3']")
    p.after(lambda: p.page.keyboard.press("ArrowLeft"))
    assert p.page.input_value(".as-head") == "2"
    assert p.text(".as-tip", lambda t: abs(value(t) - f16(w[2, 2, 5])) < 1e-4)
    assert "query 2 \u201csat\u201d \u2192 key 5 \u201cmat\u201d" in p.text(".as-tip")
    assert p.errors == []


def test_hover_text_after_a_drag_is_the_cell_under_the_pointer(open_page, page_file, store):
    w = store[1]["epoch_001"][0]
    p = open_page(page_file)
    x, y = p.cell(4, 4, 8)
    p.page.mouse.move(x, y)
    for _ in range(3):
        p.after(lambda: p.page.mouse.wheel(0, -100))
    p.page.mouse.down()
    p.after(lambda: p.page.mouse.move(x + 150, y + 90, steps=3))
    p.page.mouse.up()
    tip = p.text(".as-tip")
    q, k = (int(v) for v in re.search(r"query (\d+).*key (\d+)", tip).groups())
    mean = w.astype(np.float16).astype(np.float32).mean(0)
    assert value(tip) == pytest.approx(f16(mean[q, k]), abs=2e-3)
    box = p.page.locator(".as-tip").bounding_box()
    assert abs(box["x"] - (x + 150 + 14)) < 4 and abs(box["y"] - (y + 90 + 14)) < 4
    assert p.errors == []


def test_coarse_level_hover_shows_the_block_the_pixel_shows(open_page, tmp_path):
    m = softmax_maps(3, (1, 1, 2048, 2048))
    p = open_page(render_html(m).save(tmp_path / "long.html"))
    p.page.mouse.move(*p.cell(700.5, 300.5, 2048))
    tip = p.text(".as-tip")
    block_of = r"queries (\d+)\u2013(\d+) \u00d7 keys (\d+)\u2013(\d+)"
    a, b, c, d = (int(v) for v in re.search(block_of, tip).groups())
    assert "block mean" in tip and "4\u00d74 cells" in tip and (b - a, d - c) == (3, 3)
    block = m[0, 0, a:b + 1, c:d + 1]
    assert value(tip) == pytest.approx(f16(block.mean()), rel=2e-3)
    assert "block (block mean)" in p.page.inner_text(".as-legend")
    p.after(lambda: p.page.select_option(".as-reduce", "max"))
    tip = p.text(".as-tip", lambda t: "block max" in t)
    assert value(tip) == pytest.approx(f16(block.max()), rel=2e-3)
    assert p.errors == []


def test_colour_scales_are_stated_and_diffuse_heads_stay_dark(open_page, tmp_path):
    rng = np.random.default_rng(0)
    w = np.empty((1, 2, 16, 16), np.float32)
    w[0, 0] = 1 / 16 + rng.uniform(-0.004, 0.004, (16, 16))  # near-uniform head
    w[0, 1] = softmax_maps(1, (1, 1, 16, 16))[0, 0]
    p = open_page(render_html({"enc.attn": w}).save(tmp_path / "scale.html"))
    assert p.page.input_value(".as-range") == "model"  # the default
    p.after(lambda: p.page.select_option(".as-head", "0"))
    legend = p.page.inner_text(".as-legend")
    assert "per model" in legend and "grey: masked" in legend
    top = float(legend.split("\u2026")[1].split("\u00b7")[0])
    assert top == pytest.approx(f16(w.max()), abs=1e-3)  # the max of both heads
    thumb = """() => { const c = document.querySelector(".as-thumb[data-head='0']");
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
        return s / (3 * d.length / 4); }"""
    dark, dark_thumb = p.pixels()[..., :3].astype(float).mean(), p.page.evaluate(thumb)
    p.after(lambda: p.page.select_option(".as-range", "head"))
    assert "per head" in p.page.inner_text(".as-legend")
    assert p.pixels()[..., :3].astype(float).mean() > dark + 40  # the same head looks sharp
    assert p.page.evaluate(thumb) > dark_thumb + 40  # and so does its thumbnail
    p.after(lambda: p.page.select_option(".as-range", "fixed"))
    assert "0.0000 \u2026 1.0000" in p.page.inner_text(".as-legend")
    assert "fixed 0\u20261" in p.page.inner_text(".as-legend")
    canvas, legend = (p.page.locator(s).bounding_box() for s in (".as-canvas", ".as-legend"))
    assert 0 <= legend["y"] - (canvas["y"] + canvas["height"]) < 30  # by the matrix
    assert abs(legend["x"] - canvas["x"]) < 5
    assert p.errors == []


def test_head_view_legend_matches_its_line_colours(open_page, page_file):
    p = open_page(page_file)
    p.after(lambda: p.page.select_option(".as-range", "head"))
    p.after(lambda: p.page.select_option(".as-view", "lines"))
    bar = p.page.evaluate("""() => Array.from(document.querySelector('.as-lbar')
        .getContext('2d').getImageData(199, 5, 1, 1).data)""")
    assert bar[:3] == [49, 104, 142]  # the strongest weight's colour ...
    px = p.pixels()[..., :3].reshape(-1, 3)
    assert (np.abs(px.astype(int) - [49, 104, 142]).sum(1) <= 3).sum() > 20  # ... is the line's
    assert p.errors == []


def test_refusals_are_said_on_the_page(open_page, page_file, tmp_path):
    p = open_page(page_file)
    p.after(lambda: p.page.select_option(".as-view", "lines"))
    p.after(lambda: p.page.check(".as-diff"))
    assert "cannot show a difference" in p.text(".as-note")
    assert p.page.get_attribute(".attnscope-view", "data-mode") == "matrix"
    assert p.page.input_value(".as-view") == "matrix"  # the menu names the view shown
    big = open_page(render_html(softmax_maps(0, (1, 1, 100, 100))).save(tmp_path / "big.html"))
    big.after(lambda: big.page.select_option(".as-view", "lines"))
    assert "up to 96 tokens" in big.text(".as-note") and "100 \u00d7 100" in big.text(".as-note")
    assert big.page.get_attribute(".attnscope-view", "data-mode") == "matrix"
    big.page.mouse.move(*big.cell(7.5, 3.5, 100))  # no labels: each index once
    assert big.text(".as-tip").startswith("query 3 \u2192 key 7: ")
    assert p.errors == [] and big.errors == []


def test_matrix_fills_the_window_and_labels_fit(open_page, tmp_path, store):
    toks = [f"w{i}" for i in range(57)]
    path = render_html(softmax_maps(0, (1, 2, 57, 57)), tokens=toks).save(tmp_path / "t57.html")
    p = open_page(path)
    size = p.page.locator(".as-canvas").bounding_box()["width"]
    assert size > 700  # a 1500 x 950 window
    assert p.page.locator(".as-rlab").count() == 57 and p.page.locator(".as-clab").count() == 57
    rows = p.page.locator(".as-rows").bounding_box()
    for lab in (p.page.locator(".as-rlab").first, p.page.locator(".as-rlab").last):
        b = lab.bounding_box()
        assert rows["y"] <= b["y"] and b["y"] + b["height"] <= rows["y"] + rows["height"]
    p.after(lambda: p.page.set_viewport_size({"width": 1000, "height": 640}))
    assert p.page.locator(".as-canvas").bounding_box()["width"] < size - 150
    p.page.mouse.move(*p.cell(5.5, 2.5, 57))
    assert "query 2 \u201cw2\u201d" in p.text(".as-tip")
    title = render_html(store[0]).meta["title"]
    assert title == "attnscope \u00b7 attn" and "/" not in title  # no machine path
    assert p.errors == []


def test_head_view_token_columns_and_overview_names_are_whole(open_page, tmp_path):
    toks = ["a_rather_long_token_" + str(i) for i in range(40)]
    w = {f"model.encoder.layer.{i}.attention.self": softmax_maps(i, (1, 12, 40, 40))
         for i in range(12)}
    p = open_page(render_html(w, tokens=toks).save(tmp_path / "wide.html"))
    p.page.set_viewport_size({"width": 1400, "height": 900})
    p.after(lambda: p.page.select_option(".as-view", "lines"))
    right = [t.bounding_box() for t in p.page.locator(".as-rtok .as-tok").all()]
    assert right and max(b["x"] + b["width"] for b in right) <= 1400
    assert p.page.evaluate("() => document.scrollingElement.scrollWidth") <= 1400
    cut = p.page.evaluate("""() => Array.from(document.querySelectorAll('th.as-mod'))
        .filter(t => t.scrollWidth > t.clientWidth).length""")
    assert cut == 0
    assert p.errors == []
