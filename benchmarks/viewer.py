"""Viewer speed in a real headless Chromium (Debian's /usr/bin/chromium, via Playwright).

Cases (synthetic softmax maps with sharp peaks, which compress about as badly as real
attention; non-causal, so nothing is masked away):
  model     12 layers x 12 heads x 512 tokens: file size, render (Python) time, first
            view (navigation start -> overview and matrix drawn; the page draws from the
            data placed before its script while the rest still loads), all data loaded,
            head switch (click a thumbnail of the shown layer -> new matrix drawn) and
            layer switch (a head of another layer, decoded on demand); medians
  long      one 4096 x 4096 map: open, then pan (drag) and zoom (wheel) redraw times
  largest   single maps of growing size: the largest whose first view is drawn in < 3 s
  qk        (``--qk N``, alone) one head of an N-token causal map from a store in
            query/key form: the page embeds queries, keys, row log-sum-exp and coarse
            levels and computes cells when zoomed in; file size, first view, zoom-in
            redraws, 512 x 512 tile times, and tile rows against the Python read

Times in the page are ``performance.now()`` deltas, so Python overhead is not counted.
On a shared machine wall times stretch with the load (reported); the browser's CPU time
(all Chromium processes, from /proc via psutil) is what each action costs.

    python benchmarks/viewer.py [--repeats 5] [--sizes 2048 4096 6144 8192] [--out DIR]
    python benchmarks/viewer.py --qk 32768
"""

from __future__ import annotations

import argparse
import json
import os
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


def browser_cpu_ms() -> float:
    """CPU time used so far by this process's Chromium processes (all of them: the page's
    renderer, the GPU and network services). On a shared machine wall times stretch with
    the load; CPU time is what the work costs."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" in proc.name():
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total * 1000


def maps(rng: np.random.Generator, heads: int, n: int) -> np.ndarray:
    x = rng.normal(size=(1, heads, n, n)).astype(np.float32) * 3
    x = np.exp(x - x.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


TIMES = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return {drawn: +document.querySelector('.attnscope-view').dataset.readyMs,
            fcp: fcp ? fcp.startTime : null, loaded: nav.domContentLoadedEventEnd};
}"""


def open_page(browser, path: Path) -> tuple[object, dict]:
    """Open ``path``; times (ms from navigation start) of the first drawn view, the first
    contentful paint and the end of loading (all data parsed)."""
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    cpu = browser_cpu_ms()
    page.goto(path.as_uri(), timeout=120_000, wait_until="commit")
    page.wait_for_selector(".attnscope-view[data-ready='1']", timeout=120_000)
    page.wait_for_load_state("load", timeout=120_000)
    cpu = browser_cpu_ms() - cpu
    assert requests == [path.as_uri()], f"unexpected requests: {requests}"
    return page, {**page.evaluate(TIMES), "cpu_open": cpu}


def timed(page, actions: list[str]) -> tuple[list[float], float]:
    """Wall ms of each action (in the page) and the browser CPU ms per action."""
    cpu = browser_cpu_ms()
    wall = [page.evaluate(WAIT_DRAWN, a) for a in actions]
    return wall, (browser_cpu_ms() - cpu) / len(actions)


def model_case(browser, tmp: Path, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    source = {f"encoder.layer.{i}.attention": maps(rng, 12, 512) for i in range(12)}
    raw = sum(a.nbytes for a in source.values())
    t0 = time.perf_counter()
    view = render_html(source)
    render_s = time.perf_counter() - t0
    path = view.save(tmp / "model.html")
    times, switches, layers, cpu_switch, cpu_layer = [], [], [], [], []
    for r in range(repeats):
        page, t = open_page(browser, path)
        times.append(t)
        page.wait_for_timeout(3000)  # the page warms the shown layer's heads when idle
        wall, cpu = timed(page, [f"click:.as-thumb[data-module='0'][data-head='{(r + 5 * h) % 12}']"
                                 for h in range(1, 9)])  # other heads of the same layer
        switches += wall
        cpu_switch.append(cpu)
        wall, cpu = timed(page, [f"click:.as-thumb[data-module='{m + r}'][data-head='{m}']"
                                 for m in range(1, 7)])  # heads of other layers, not warmed
        layers += wall
        cpu_layer.append(cpu)
        page.close()
    med = {k: statistics.median(t[k] for t in times) for k in times[0] if times[0][k]}
    return {"file_mb": path.stat().st_size / 1e6, "raw_float32_mb": raw / 1e6,
            "file_over_raw": path.stat().st_size / raw, "render_s": render_s,
            "first_view_drawn_ms": med["drawn"], "first_contentful_paint_ms": med.get("fcp"),
            "all_data_loaded_ms": med["loaded"],
            "head_switch_ms": statistics.median(switches), "head_switch_max_ms": max(switches),
            "layer_switch_ms": statistics.median(layers), "layer_switch_max_ms": max(layers),
            "browser_cpu_open_ms": med["cpu_open"],
            "browser_cpu_per_head_switch_ms": statistics.median(cpu_switch),
            "browser_cpu_per_layer_switch_ms": statistics.median(cpu_layer),
            "load_average": os.getloadavg()[0]}


def long_case(browser, tmp: Path, n: int = 4096) -> dict:
    view = render_html(maps(np.random.default_rng(1), 1, n), max_mb=2000)
    path = view.save(tmp / f"long{n}.html")
    page, t = open_page(browser, path)
    legend = page.text_content(".as-lnote")
    zoom, cpu_zoom = timed(page, ["wheel:-100"] * 8)
    pan, cpu_pan = timed(page, [f"drag:{d}" for d in (40, -60, 80, -40, 30, 50)])
    page.close()
    return {"n": n, "file_mb": path.stat().st_size / 1e6, "first_view_drawn_ms": t["drawn"],
            "all_data_loaded_ms": t["loaded"],
            "first_view": legend,
            "zoom_ms_median": statistics.median(zoom), "pan_ms_median": statistics.median(pan),
            "pan_ms_max": max(pan), "browser_cpu_open_ms": t["cpu_open"],
            "browser_cpu_per_zoom_ms": cpu_zoom, "browser_cpu_per_pan_ms": cpu_pan,
            "load_average": os.getloadavg()[0]}


def largest_case(browser, tmp: Path, sizes: list[int]) -> dict:
    opened = {}
    for n in sizes:
        view = render_html(maps(np.random.default_rng(n), 1, n), max_mb=1e5)
        path = view.save(tmp / f"size{n}.html")
        del view
        page, t = open_page(browser, path)
        page.close()
        ready = t["drawn"]
        opened[n] = {"open_ms": ready, "loaded_ms": t["loaded"], "cpu_open_ms": t["cpu_open"],
                     "file_mb": path.stat().st_size / 1e6}
        path.unlink()
        print(f"  {n} x {n}: first view in {ready:.0f} ms, all loaded in {t['loaded']:.0f} ms "
              f"({opened[n]['file_mb']:.0f} MB)", flush=True)
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
    ap.add_argument("--qk", type=int, default=None, metavar="N",
                    help="only the q/k case: one head of an N-token causal map")
    args = ap.parse_args()
    if args.qk:
        with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
            tmp = args.out or Path(scratch)
            tmp.mkdir(parents=True, exist_ok=True)
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            from viewer_qk import qk_case  # benchmarks/ is on the path of this script

            print(json.dumps({f"qk_{args.qk}": qk_case(browser, tmp, args.qk)}, indent=1))
            browser.close()
        return
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
