"""Viewer speed in a real headless Chromium (Debian's /usr/bin/chromium, via Playwright).

Cases (synthetic softmax maps with sharp peaks, which compress about as badly as real
attention; non-causal, so nothing is masked away):
  model     12 layers x 12 heads x 512 tokens: file size, render (Python) time, first
            paint (navigation start -> overview and matrix drawn), head switch (click a
            thumbnail -> new matrix drawn), median of --repeats
  long      one 4096 x 4096 map: open, then pan (drag) and zoom (wheel) redraw times
  largest   single maps of growing size: the largest whose page opens in < 3 s

Times in the page are ``performance.now()`` deltas, so Python overhead is not counted.
The machine is shared: compare ratios (file/raw size, switch/paint) more than absolutes.

    python benchmarks/viewer.py [--repeats 5] [--sizes 2048 4096 6144 8192] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from attnscope.viewer import render_html

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

WAIT_DRAWN = """async (act) => {
    const root = document.querySelector('.attnscope-view'), before = +root.dataset.drawn;
    const t0 = performance.now();
    if (act.startsWith('click:')) document.querySelector(act.slice(6)).click();
    if (act.startsWith('wheel:')) {
        const c = document.querySelector('.as-canvas'), r = c.getBoundingClientRect();
        c.dispatchEvent(new WheelEvent('wheel', {deltaY: +act.slice(6), clientX: r.left + 320,
                                                 clientY: r.top + 320, cancelable: true}));
    }
    if (act.startsWith('drag:')) {
        const c = document.querySelector('.as-canvas'), r = c.getBoundingClientRect();
        const d = +act.slice(5), x = r.left + 320, y = r.top + 320;
        c.dispatchEvent(new MouseEvent('mousedown', {clientX: x, clientY: y}));
        c.dispatchEvent(new MouseEvent('mousemove', {clientX: x + d, clientY: y + d}));
        window.dispatchEvent(new MouseEvent('mouseup', {}));
    }
    while (+root.dataset.drawn === before) await new Promise(r => setTimeout(r, 1));
    return performance.now() - t0;
}"""


def maps(rng: np.random.Generator, heads: int, n: int) -> np.ndarray:
    x = rng.normal(size=(1, heads, n, n)).astype(np.float32) * 3
    x = np.exp(x - x.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


def open_page(browser, path: Path) -> tuple[object, float]:
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), timeout=120_000)
    page.wait_for_selector(".attnscope-view[data-ready='1']", timeout=120_000)
    assert requests == [path.as_uri()], f"unexpected requests: {requests}"
    return page, float(page.get_attribute(".attnscope-view", "data-ready-ms"))


def model_case(browser, tmp: Path, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    source = {f"encoder.layer.{i}.attention": maps(rng, 12, 512) for i in range(12)}
    raw = sum(a.nbytes for a in source.values())
    t0 = time.perf_counter()
    view = render_html(source)
    render_s = time.perf_counter() - t0
    path = view.save(tmp / "model.html")
    paints, switches = [], []
    for r in range(repeats):
        page, ready = open_page(browser, path)
        paints.append(ready)
        for h in range(4):
            head = (r + 3 * h + 1) % 12
            switches.append(page.evaluate(
                WAIT_DRAWN, f"click:.as-thumb[data-module='{h}'][data-head='{head}']"))
        page.close()
    return {"file_mb": path.stat().st_size / 1e6, "raw_float32_mb": raw / 1e6,
            "file_over_raw": path.stat().st_size / raw, "render_s": render_s,
            "first_paint_ms": statistics.median(paints),
            "head_switch_ms": statistics.median(switches),
            "head_switch_max_ms": max(switches)}


def long_case(browser, tmp: Path, n: int = 4096) -> dict:
    view = render_html(maps(np.random.default_rng(1), 1, n), max_mb=2000)
    path = view.save(tmp / f"long{n}.html")
    page, ready = open_page(browser, path)
    legend = page.text_content(".as-legend")
    zoom = [page.evaluate(WAIT_DRAWN, "wheel:-100") for _ in range(8)]
    pan = [page.evaluate(WAIT_DRAWN, f"drag:{d}") for d in (40, -60, 80, -40, 30, 50)]
    page.close()
    return {"n": n, "file_mb": path.stat().st_size / 1e6, "open_ms": ready,
            "first_view": legend.split("(")[-1].rstrip(") "),
            "zoom_ms_median": statistics.median(zoom), "pan_ms_median": statistics.median(pan),
            "pan_ms_max": max(pan)}


def largest_case(browser, tmp: Path, sizes: list[int]) -> dict:
    opened = {}
    for n in sizes:
        view = render_html(maps(np.random.default_rng(n), 1, n), max_mb=1e5)
        path = view.save(tmp / f"size{n}.html")
        del view
        page, ready = open_page(browser, path)
        page.close()
        opened[n] = {"open_ms": ready, "file_mb": path.stat().st_size / 1e6}
        path.unlink()
        print(f"  {n} x {n}: opens in {ready:.0f} ms ({opened[n]['file_mb']:.0f} MB)", flush=True)
        if ready > 3000:
            break
    fits = [n for n, r in opened.items() if r["open_ms"] < 3000]
    return {"sizes": opened, "largest_under_3s": max(fits) if fits else None}


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 6144, 8192])
    ap.add_argument("--out", type=Path, default=None, help="keep the pages here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
        tmp = args.out or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        result = {"model_12x12x512": model_case(browser, tmp, args.repeats)}
        print(json.dumps(result, indent=1), flush=True)
        result["long_4096"] = long_case(browser, tmp)
        print(json.dumps(result["long_4096"], indent=1), flush=True)
        result["largest"] = largest_case(browser, tmp, args.sizes)
        browser.close()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
