"""Issue 22 in Chromium: graphs (node labels, arrowheads, edge hover, leading axes,
top-k text), bertviz-like all-heads and model views, tokens as text, keyboard."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnscope.maps import AttentionMap, Recording
from attnscope.viewer import render_html
from attnscope.viewer._graph import lead_names
from tests.viewer.conftest import softmax_maps, write_steps

TOKENS = ["Привет", "мир", "猫", "sat", "on", "a", "mat", "."]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "attn"
    write_steps(path, {"test": softmax_maps(5, (1, 4, 8, 8))}, labels={"tokens": TOKENS}, modules=3)
    return render_html(path).save(path.parent / "view.html")


@pytest.fixture(scope="module")
def graph():
    g = torch.Generator().manual_seed(0)
    ei = torch.tensor([[0, 1, 2, 3, 0, 4], [1, 2, 3, 0, 2, 4]])
    w = torch.rand(2, 3, 6, 2, generator=g)  # (batch, time step, edge, head)
    return AttentionMap("gat", "graph", w, edge_index=ei), ei


def rgb_near(px: np.ndarray, x: float, y: float, r: int = 4) -> int:
    """Non-white pixels in a (2r+1)^2 box around (x, y)."""
    box = px[int(y) - r:int(y) + r + 1, int(x) - r:int(x) + r + 1, :3].astype(int)
    return int((box.sum(-1) < 700).sum())


def test_graph_edges_arrows_hover_and_leading_axes(open_page, tmp_path, graph):
    m, ei = graph
    rec = Recording()
    rec.maps.append(m)
    p = open_page(render_html(rec).save(tmp_path / "g.html"))
    assert p.page.input_value(".as-view") == "graph"
    assert p.page.locator(".as-view option:checked").inner_text() == "graph (top-k edges)"
    lead = p.page.locator(".as-lead")
    assert lead.count() == 1 and lead.locator("option").count() == 3
    legend = p.page.inner_text(".as-legend")
    assert "top 6 of 6 edges" in legend and "arrow at the target" in legend
    mean = m.weights[0].numpy().astype(np.float16).astype(np.float32).mean(-1)  # (time, edge)
    table = [float(x) for x in p.page.locator(".as-edges td:nth-child(3)").all_text_contents()]
    np.testing.assert_allclose(table, np.sort(mean[0])[::-1], atol=2e-3)
    p.after(lambda: lead.select_option("2"))  # the third time step
    table = [float(x) for x in p.page.locator(".as-edges td:nth-child(3)").all_text_contents()]
    np.testing.assert_allclose(table, np.sort(mean[2])[::-1], atol=2e-3)
    assert "at dim1 2" in p.page.inner_text(".as-legend")
    p.after(lambda: p.page.fill(".as-topk", "2") or p.page.press(".as-topk", "Enter"))
    assert "top 2 of 6 edges" in p.page.inner_text(".as-legend")
    p.after(lambda: p.page.fill(".as-topk", "20") or p.page.press(".as-topk", "Enter"))
    # geometry as drawn: nodes on a circle of radius W/2 - 40
    size = p.page.evaluate("() => document.querySelector('.as-canvas').width")
    pos = [(size / 2 + (size / 2 - 40) * math.cos(2 * math.pi * i / 5),
            size / 2 + (size / 2 - 40) * math.sin(2 * math.pi * i / 5)) for i in range(5)]
    px = p.pixels()
    (x0, y0), (x1, y1) = pos[1], pos[2]  # edge 1 -> 2
    ux, uy = (x1 - x0) / math.dist(pos[1], pos[2]), (y1 - y0) / math.dist(pos[1], pos[2])
    assert rgb_near(px, x1 - 11 * ux, y1 - 11 * uy) > rgb_near(px, x0 + 11 * ux, y0 + 11 * uy) + 4
    assert rgb_near(px, x0 + 22, y0 + 12, 6) > 3 or rgb_near(px, x0, y0 + 12, 6) > 3  # label "1"
    box = p.page.locator(".as-canvas").bounding_box()
    p.page.mouse.move(box["x"] + 1 + (x0 + x1) / 2, box["y"] + 1 + (y0 + y1) / 2)
    tip = p.text(".as-tip")
    assert tip.startswith("edge 1: 1 \u2192 2: ")
    assert float(tip.rsplit(": ", 1)[1]) == pytest.approx(mean[2, 1], abs=2e-3)
    bar = p.page.evaluate("""() => Array.from(document.querySelector('.as-lbar')
        .getContext('2d').getImageData(199, 5, 1, 1).data)""")
    assert bar[:3] == [49, 104, 142]  # the legend ramp is the edges' ramp
    assert p.errors == []


def test_leading_axis_names_come_from_the_store_or_the_map():
    class Info:
        def module_info(self, module):
            return {"axes": ["time"]}

    assert lead_names(Info(), "gat", 2) == ["time", "dim2"]
    rec = Recording()
    rec.maps.append(AttentionMap("gat", "graph", torch.rand(2, 3, 6, 1),
                                 edge_index=torch.zeros(2, 6, dtype=torch.long)))
    names = lead_names(rec, "gat", 1)
    assert names == [getattr(rec.maps[0], "dims", (None, "dim1"))[1]]


def test_mean_under_a_head_selection_names_its_heads(open_page, tmp_path):
    w = softmax_maps(0, (1, 6, 8, 8))
    p = open_page(render_html(w, heads=[0, 2]).save(tmp_path / "heads.html"))
    assert p.page.locator(".as-head option:checked").inner_text() == "mean of heads 0, 2 (of 6)"
    assert "mean of heads 0, 2 (of 6)" in p.page.inner_text(".as-status")
    q = open_page(render_html(w).save(tmp_path / "all.html"))
    assert q.page.locator(".as-head option:checked").inner_text() == "mean of all 6 heads"


def test_all_heads_overlay_and_model_view(open_page, page_file):
    p = open_page(page_file)
    p.after(lambda: p.page.select_option(".as-view", "heads"))
    legend = p.page.inner_text(".as-legend")
    assert all(f"head {h}" in legend for h in range(4)) and "all 4 heads" in legend
    px = p.pixels()[..., :3].astype(int).reshape(-1, 3)
    orange = ((px[:, 0] - px[:, 2] > 60) & (px[:, 0] > px[:, 1])).sum()  # head 1 (ff7f0e)
    green = ((px[:, 1] - px[:, 0] > 40) & (px[:, 1] - px[:, 2] > 40)).sum()  # head 2 (2ca02c)
    assert orange > 20 and green > 20
    p.after(lambda: p.page.select_option(".as-view", "model"))
    assert p.page.locator(".as-rlab").count() == 3 and p.page.locator(".as-clab").count() == 4
    size = p.page.evaluate("() => document.querySelector('.as-canvas').width")
    cs = size // 4
    box = p.page.locator(".as-canvas").bounding_box()
    p.after(lambda: p.page.mouse.click(box["x"] + 1 + 2.5 * cs, box["y"] + 1 + 1.5 * cs))
    assert p.page.input_value(".as-module") == "1" and p.page.input_value(".as-head") == "2"
    assert p.page.get_attribute(".attnscope-view", "data-mode") == "lines"
    assert p.errors == []


def test_tokens_as_text_coloured_from_the_focused_token(open_page, tmp_path):
    w = softmax_maps(2, (1, 1, 8, 8))
    p = open_page(render_html(w, tokens=TOKENS).save(tmp_path / "text.html"))
    p.after(lambda: p.page.select_option(".as-view", "text"))
    words = p.page.locator(".as-word")
    assert words.all_text_contents() == TOKENS
    assert "query 7 \u201c.\u201d (focused)" in p.text(".as-focus")
    words.nth(2).hover()
    info = p.text(".as-focus", lambda t: "query 2" in t)
    got = [float(x) for x in words.evaluate_all("ws => ws.map(w => w.dataset.value)")]
    np.testing.assert_allclose(got, w[0, 0, 2].astype(np.float16), atol=1e-4)
    assert TOKENS[int(np.argmax(w[0, 0, 2]))] in info
    words.nth(3).click()
    p.page.mouse.move(5, 5)
    assert "query 3 \u201csat\u201d (focused)" in p.text(".as-focus", lambda t: "query 3" in t)
    colours = words.evaluate_all("ws => ws.map(w => getComputedStyle(w).backgroundColor)")
    assert len(set(colours)) > 3
    assert p.errors == []


def test_keyboard_moves_between_heads_and_layers(open_page, page_file):
    p = open_page(page_file)
    thumb = ".as-thumb[data-module='0'][data-head='0']"
    assert p.page.get_attribute(thumb, "tabindex") == "0"
    p.page.focus(thumb)
    p.after(lambda: p.page.keyboard.press("ArrowRight"))
    assert p.page.input_value(".as-head") == "1"
    p.after(lambda: p.page.keyboard.press("ArrowDown"))
    assert (p.page.input_value(".as-module"), p.page.input_value(".as-head")) == ("1", "1")
    focused = p.page.evaluate("() => [document.activeElement.dataset.module, "
                              "document.activeElement.dataset.head]")
    assert focused == ["1", "1"]
    p.page.focus(".as-thumb[data-module='2'][data-head='3']")
    p.after(lambda: p.page.keyboard.press("Enter"))
    assert (p.page.input_value(".as-module"), p.page.input_value(".as-head")) == ("2", "3")
    assert p.errors == []


def test_every_view_draws_a_cross_attention_map(open_page, tmp_path):
    w = softmax_maps(4, (1, 3, 6, 9))  # 6 target queries x 9 source keys
    q, k = ["<s>", "ein", "Haus", "ist", "alt", "</s>"], [f"src{i}" for i in range(9)]
    p = open_page(render_html(w, query_tokens=q, key_tokens=k).save(tmp_path / "cross.html"))
    views = p.page.locator(".as-view option").evaluate_all("os => os.map(o => o.value)")
    assert views == ["matrix", "lines", "heads", "model", "text"]  # no q/k stored: no qk view
    for view in views[1:]:
        p.after(lambda v=view: p.page.select_option(".as-view", v))
        assert p.page.get_attribute(".attnscope-view", "data-mode") == view
        assert p.page.input_value(".as-view") == view
        if view != "text":
            assert (p.pixels()[..., :3].sum(-1) < 700).mean() > 0.002, view
    assert p.page.locator(".as-text .as-queries .as-word").all_text_contents() == q
    assert p.page.locator(".as-text .as-keys .as-word").all_text_contents() == k
    assert p.errors == [] and p.other_requests() == []


def test_folded_rows_are_named_rows_not_samples(open_page, tmp_path):
    """An EEG-style store: the epoch-level entry holds 4 rows per sample (epochs folded
    into the batch axis); the page calls its rows rows, the other entry's rows samples."""
    from attnscope.store import open_writer

    root = tmp_path / "eeg"
    g = torch.Generator().manual_seed(1)
    with open_writer(root, step="val", dtype="float32", durable=False) as w:  # 2 samples
        w.write(AttentionMap("net.эпохи.attn", "self",
                             torch.rand(8, 2, 3, 3, generator=g).softmax(-1)))
        w.write(AttentionMap("net.across", "self", torch.rand(2, 2, 4, 4, generator=g).softmax(-1)))
    view = render_html(root, samples=[0, 1])
    rows = {(e["module"], e["sample"]): e["row"] for e in view.meta["entries"]}
    assert rows[("net.эпохи.attn", 1)] == "row 1 (sample 0, item 1)"
    assert rows[("net.across", 1)] == "sample 1"
    p = open_page(view.save(tmp_path / "eeg.html"))
    assert "sample / row" in p.page.inner_text(".as-bar")
    modules = [o.strip() for o in p.page.locator(".as-module option").all_text_contents()]
    folded = next(i for i, m in enumerate(modules) if "эпохи" in m)
    if p.page.locator(".as-module").input_value() != str(folded):
        p.after(lambda: p.page.select_option(".as-module", str(folded)))
    p.after(lambda: p.page.select_option(".as-sample", "1"))
    status = p.page.inner_text(".as-status")
    assert "row 1 (sample 0, item 1)" in status and "sample 1 " not in status
    p.after(lambda: p.page.select_option(".as-module", str(1 - folded)))
    assert "sample 1" in p.page.inner_text(".as-status")
    assert not p.errors
