"""The viewer in Jupyter for real: a notebook executed by nbclient (a real IPython
kernel), its saved ``text/html`` outputs (``_repr_html_``) put into a page the way a
notebook front end does, opened in Chromium.

Trust is the front end's decision: a trusted notebook runs its outputs' scripts (as
JupyterLab's ``evalInnerHTMLScriptTags`` does, re-creating each ``<script>``), an untrusted
one shows the sanitized HTML with every script removed. Trusted: both views draw, with
no console error and no request. Untrusted: nothing runs, and the output says why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
CELLS = [
    f"import sys; sys.path.insert(0, {str(REPO)!r})",
    "import numpy as np, attnscope\n"
    "x = np.random.default_rng(0).normal(size=(1, 2, 6, 6)) * 3\n"
    "w = np.exp(x) / np.exp(x).sum(-1, keepdims=True)\n"
    "attnscope.render_html(w, tokens=['<b>x</b>', 'cat', 'sat', 'on', 'the', 'mat'])",
    "attnscope.render_html({'dec.attn': w[:, :, :3]}, samples=0)",  # a second view, same page
]

# what a front end does with a trusted output: insert it, then run its scripts in order
INSERT = """([html, trusted]) => {
    const out = document.createElement('div');
    out.className = 'output_html';
    document.body.appendChild(out);
    out.innerHTML = html;
    for (const old of Array.from(out.querySelectorAll('script'))) {
        if (!trusted) { old.remove(); continue; }
        const s = document.createElement('script');
        for (const a of old.attributes) s.setAttribute(a.name, a.value);
        s.textContent = old.textContent;
        old.replaceWith(s);
    }
}"""


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> list[str]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute(env={**os.environ, "PYTHONPATH": str(REPO)})
    path = tmp_path_factory.mktemp("nb") / "view.ipynb"
    nbformat.write(nb, path)  # what the user saves, read back as the front end would
    saved = nbformat.read(path, as_version=4)
    html = [o["data"]["text/html"] for c in saved.cells for o in c.get("outputs", [])
            if o.get("output_type") == "execute_result" and "text/html" in o.get("data", {})]
    assert len(html) == 2
    return html


def _host(browser):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    seen = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.route("**/*", lambda route: route.abort())
    page.set_content("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body></html>")
    return page, seen


def test_trusted_notebook_outputs_draw_offline(browser, outputs):
    page, seen = _host(browser)
    for html in outputs:
        page.evaluate(INSERT, [html, True])
    views = page.locator(".attnscope-view")
    assert views.count() == 2
    for i in range(2):
        page.wait_for_selector(f".attnscope-view >> nth={i}", state="attached")
        views.nth(i).locator("canvas.as-canvas").wait_for()
    ready = ".attnscope-view[data-ready='1']"
    page.wait_for_function(f"() => document.querySelectorAll(\"{ready}\").length === 2",
                           timeout=15000)
    drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.as-canvas')).map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 600) n++;
        return n / (d.length / 4);
    })""")
    assert drawn[0] > 0.9 and drawn[1] > 0.45, drawn  # 6 x 6 fills, 3 x 6 half the square
    assert "<b>x</b>" in views.nth(0).locator(".as-rlab").all_text_contents()
    assert views.nth(0).locator(".as-nojs").count() == 0
    assert seen["errors"] == [] and seen["requests"] == []
    page.close()


def test_untrusted_notebook_outputs_say_why_nothing_draws(browser, outputs):
    page, seen = _host(browser)
    page.evaluate(INSERT, [outputs[0], False])
    note = page.locator(".attnscope-view .as-nojs")
    assert note.is_visible() and "trust the notebook" in note.inner_text()
    assert page.locator(".as-canvas").count() == 0
    assert seen["errors"] == [] and seen["requests"] == []
    page.close()
