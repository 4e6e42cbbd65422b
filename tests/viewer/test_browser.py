"""The viewer in a real headless Chromium: no network, no console errors, interaction
changes the pixels, hover values are the stored ones, labels are text, never markup."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.viewer import render_html
from tests.viewer.conftest import XSS, softmax_maps, write_steps

TOKENS = ["the", "cat", XSS, "sat", "on", "a", "mat", "."]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewer") / "attn"
    steps = {f"epoch_{i:03d}": softmax_maps(i, (1, 4, 8, 8)) for i in range(3)}
    write_steps(path, steps, labels={"tokens": TOKENS}, modules=2)
    return path, steps


@pytest.fixture(scope="module")
def page_file(store, tmp_path_factory):
    path, _ = store
    return render_html(path).save(tmp_path_factory.mktemp("html") / "view.html")


def test_loads_offline_without_errors_and_labels_are_text(open_page, page_file):
    p = open_page(page_file)
    assert p.errors == [] and p.other_requests() == [] and p.dialogs == []
    labels = p.page.locator(".as-rlab").all_text_contents()
    assert XSS in labels  # shown as text ...
    assert p.page.locator(".attnscope-view img").count() == 0  # ... never parsed as markup
    assert p.page.locator(".as-thumb").count() == 2 * 5  # 2 modules x (4 heads + mean)


def test_clicking_a_head_changes_the_canvas(open_page, page_file):
    p = open_page(page_file)
    before = p.pixels()
    p.after(lambda: p.page.click(".as-thumb[data-module='1'][data-head='2']"))
    assert p.page.input_value(".as-head") == "2"
    assert p.page.input_value(".as-module") == "1"
    assert (p.pixels() != before).any(axis=-1).mean() > 0.3
    assert p.errors == []


def test_hover_shows_the_stored_value(open_page, page_file, store):
    _, steps = store
    p = open_page(page_file)
    p.after(lambda: p.page.select_option(".as-head", "1"))
    p.page.mouse.move(*p.cell(5.5, 2.5, 8))  # cell (query 2, key 5)
    tip = p.page.locator(".as-tip")
    tip.wait_for(state="visible")
    text = tip.text_content()
    want = float(np.float16(steps["epoch_002"][0, 1, 2, 5]))  # the last step shows first
    assert "query 2" in text and "key 5" in text and XSS in text
    assert abs(float(text.rsplit(":", 1)[1]) - want) <= 1e-4 * max(1.0, abs(want)) + 5e-5
    assert p.dialogs == [] and p.errors == []


def test_step_slider_and_difference_mode(open_page, page_file, store):
    _, steps = store
    p = open_page(page_file)
    before = p.pixels()
    p.after(lambda: p.page.locator(".as-step").fill("0"))
    assert "epoch_000" in p.page.text_content(".as-stepname")
    assert (p.pixels() != before).any(axis=-1).mean() > 0.3
    p.after(lambda: p.page.select_option(".as-stepb", "epoch_001"))
    p.after(lambda: p.page.check(".as-diff"))
    assert "epoch_000 \u2212 epoch_001" in p.page.text_content(".as-legend")
    p.page.mouse.move(*p.cell(3.5, 6.5, 8))  # query 6, key 3, mean head
    p.page.locator(".as-tip").wait_for(state="visible")
    text = p.page.locator(".as-tip").text_content()
    a = np.float16(steps["epoch_000"][0].astype(np.float16).astype(np.float32).mean(0)[6, 3])
    b = np.float16(steps["epoch_001"][0].astype(np.float16).astype(np.float32).mean(0)[6, 3])
    got = float(text.rsplit("=", 1)[1])
    assert abs(got - (float(a) - float(b))) < 2e-3
    assert p.errors == []


def test_mean_toggle_and_head_view(open_page, page_file):
    p = open_page(page_file)
    assert p.page.input_value(".as-head") == "mean"
    p.after(lambda: p.page.click(".as-mean"))
    assert p.page.input_value(".as-head") == "0"
    p.after(lambda: p.page.select_option(".as-view", "lines"))
    assert p.page.get_attribute(".attnscope-view", "data-mode") == "lines"
    assert XSS in p.page.locator(".as-ltok .as-tok").all_text_contents()
    assert p.errors == [] and p.dialogs == []


def test_long_map_opens_coarse_and_zoom_loads_the_full_level(open_page, tmp_path):
    w = softmax_maps(0, (1, 1, 2048, 2048))
    view = render_html(w)
    levels = view.meta["entries"][0]["maps"][0]["levels"]
    assert [lv["fy"] for lv in levels] == [1, 4]
    p = open_page(view.save(tmp_path / "long.html"))
    assert "level 1" in p.page.text_content(".as-legend")
    box = p.page.locator(".as-canvas").bounding_box()
    p.page.mouse.move(box["x"] + 300, box["y"] + 300)
    for _ in range(6):
        p.after(lambda: p.page.mouse.wheel(0, -100))
    assert "level 1" not in p.page.text_content(".as-legend")
    before = p.pixels()
    p.page.mouse.down()
    p.after(lambda: p.page.mouse.move(box["x"] + 200, box["y"] + 250))
    p.page.mouse.up()
    assert (p.pixels() != before).any()
    assert p.errors == [] and p.other_requests() == []


def test_bars_and_graph_views(open_page, tmp_path):
    torch = pytest.importorskip("torch")
    from attnscope.maps import AttentionMap, Recording

    rec = Recording()
    rec.maps.append(AttentionMap("lstm.attention", "self",
                                 torch.softmax(torch.randn(2, 1, 1, 50), -1)))
    ei = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
    rec.maps.append(AttentionMap("gat", "graph", torch.rand(5, 2), edge_index=ei))
    p = open_page(render_html(rec, modules="lstm*", signal=np.sin(np.arange(50) / 5))
                  .save(tmp_path / "bars.html"))
    assert p.page.get_attribute(".attnscope-view", "data-mode") == "bars"
    p2 = open_page(render_html(rec, modules="gat").save(tmp_path / "graph.html"))
    assert p2.page.get_attribute(".attnscope-view", "data-mode") == "graph"
    assert p2.page.locator(".as-edges tr").count() == 1 + 5
    weights = [float(x) for x in p2.page.locator(".as-edges td:nth-child(3)").all_text_contents()]
    want = np.sort(rec.maps[1].weights.numpy().astype(np.float16).astype(np.float32).mean(1))[::-1]
    np.testing.assert_allclose(weights, want, atol=2e-3)  # sorted top-k, head mean
    assert p.errors == [] and p2.errors == []


def test_graph_difference_between_steps_over_the_same_edges(open_page, tmp_path):
    torch = pytest.importorskip("torch")
    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer

    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    weights = {"epoch_000": torch.tensor([[0.1], [0.2], [0.3], [0.4]]),
               "epoch_001": torch.tensor([[0.5], [0.2], [0.1], [0.4]])}
    for step, w in weights.items():
        writer = open_writer(tmp_path / "g", step=step, durable=False)
        writer.write(AttentionMap("gat", "graph", w[None], edge_index=ei))
        writer.close()
    p = open_page(render_html(tmp_path / "g").save(tmp_path / "g.html"))
    p.after(lambda: p.page.select_option(".as-stepb", "epoch_000"))
    p.after(lambda: p.page.check(".as-diff"))
    rows = [r.split("\t") for r in p.page.locator(".as-edges tr").evaluate_all(
        "rs => rs.slice(1).map(r => Array.from(r.cells).map(c => c.textContent).join('\\t'))")]
    got = {(int(s), int(t)): float(d) for s, t, d in rows}
    assert got[(0, 1)] == pytest.approx(0.4, abs=1e-3)
    assert got[(2, 3)] == pytest.approx(-0.2, abs=1e-3)
    assert p.errors == []
