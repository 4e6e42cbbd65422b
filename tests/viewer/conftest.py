"""A real headless Chromium (the Debian package, never a downloaded browser) and small
pages to drive with Playwright. Where the browser or Playwright is missing the browser
tests skip, except under CI (``CI`` set), where they fail."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS = "<img src=x onerror=alert(1)>"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need {why} (CI is set; `make test` installs it)")
    pytest.skip(f"browser tests need {why}")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A loaded viewer page with everything it tried to do recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1500, "height": 950})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error"
                     and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        # anything but the page itself is refused and recorded
        self.page.route("**/*", lambda route: route.continue_() if route.request.url ==
                        path.as_uri() else route.abort())
        self.uri = path.as_uri()
        self.page.goto(self.uri)
        self.page.wait_for_selector(".attnscope-view[data-ready='1']", timeout=15000)

    def drawn(self) -> int:
        return int(self.page.get_attribute(".attnscope-view", "data-drawn"))

    def after(self, action) -> None:
        """Run ``action`` and wait until the main canvas was redrawn."""
        before = self.drawn()
        action()
        # polled from Python: the page's CSP forbids the eval wait_for_function uses
        deadline = time.monotonic() + 15
        while self.drawn() <= before:
            if time.monotonic() > deadline:
                raise AssertionError("the viewer did not redraw")
            self.page.wait_for_timeout(20)

    def pixels(self) -> np.ndarray:
        data = self.page.evaluate("""() => {
            const c = document.querySelector('.as-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let s = '';
            for (let i = 0; i < d.length; i += 8192)
                s += String.fromCharCode.apply(null, d.subarray(i, i + 8192));
            return [c.width, c.height, btoa(s)];
        }""")
        w, h, data = data
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(h, w, 4)

    def cell(self, col: float, row: float, cols: int,
             rows: int | None = None) -> tuple[float, float]:
        """Page coordinates of (col, row) in cell units of a fitted ``rows x cols`` map."""
        box = self.page.locator(".as-canvas").bounding_box()
        size = int(self.page.evaluate("() => document.querySelector('.as-canvas').width"))
        px = size / max(cols, rows or cols)
        return box["x"] + 1 + col * px, box["y"] + 1 + row * px

    def text(self, selector: str, until=lambda t: True, timeout: float = 15) -> str:
        """The visible text of ``selector`` once ``until(text)`` holds (polled, as the page
        updates hover text and notes a moment after it redraws)."""
        deadline = time.monotonic() + timeout
        while True:
            loc = self.page.locator(selector)
            t = loc.inner_text() if loc.count() and loc.first.is_visible() else ""
            if t and until(t):
                return t
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector}: {t!r} never matched")
            self.page.wait_for_timeout(20)

    def other_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.uri]


@pytest.fixture
def open_page(browser):
    pages = []

    def _open(path: Path) -> Page:
        pages.append(Page(browser, path))
        return pages[-1]

    yield _open
    for p in pages:
        p.page.close()


def write_steps(path: Path, steps: dict[str, np.ndarray], module: str = "enc.layers.0.attn",
                labels: dict | None = None, modules: int = 1) -> Path:
    """A store with one step per ``steps`` item: ``(batch, head, query, key)`` weights,
    written through the public writer (``modules`` copies, rolled by one head each)."""
    import torch

    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer

    for step, w in steps.items():
        writer = open_writer(path, step=step, labels=labels, durable=False)
        try:
            for i in range(modules):
                name = module if i == 0 else module.replace("0", str(i))
                t = torch.from_numpy(np.roll(w, i, axis=1).copy())
                writer.write(AttentionMap(name, "self", t))
        finally:
            writer.close()
    return path


def softmax_maps(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 3
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)
