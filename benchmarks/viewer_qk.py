"""The viewer benchmark's q/k case (``python benchmarks/viewer.py --qk N``): one head of
an N-token causal map captured in query/key form; the page embeds queries, keys, row
log-sum-exp and coarse levels and computes cells from q.k when zoomed in."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
from viewer import open_page, timed

from attnscope.viewer import render_html

TILE_JS = "([r, c]) => document.querySelector('.attnscope-view').attnscopeTile(r, c)"


def qk_case(browser, tmp: Path, n: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import attnscope
    from attnscope.kernels.qk import qk_probabilities
    from attnscope.store.forms import qk

    class Causal(nn.Module):  # one 64-dim head, causal sdpa
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(64, 128)

        def forward(self, x):
            q, k = self.proj(x).unsqueeze(1).chunk(2, -1)
            return F.scaled_dot_product_attention(q, k, k, is_causal=True)

    torch.manual_seed(0)
    model = nn.Sequential(Causal())
    with torch.no_grad(), attnscope.capture(model, store=tmp / "qk", step="s", form="qk"):
        model(torch.randn(1, n, 64) * 2)
    store = attnscope.open_store(tmp / "qk")
    name = store.modules[0]
    t0 = time.perf_counter()
    view = render_html(store, heads=[0])
    render_s = time.perf_counter() - t0
    path = view.save(tmp / f"qk{n}.html")
    del view
    page, t = open_page(browser, path)
    zoom, _ = timed(page, ["wheel:-100"] * 40)  # fit -> one cell per pixel and beyond
    legend = page.text_content(".as-lnote")
    spots = [(r, c) for r, c in ((n - 512, 0), (n // 2, n // 4), (n - 512, n - 1024),
                                 (n // 4, 0), (3 * n // 4, n // 2)) if c + 512 <= r]
    tiles = [page.evaluate(TILE_JS, [r, c]) for r, c in spots]
    inp = qk.load(store.segments(name, "s")[0].path, [0], [0])
    want = qk_probabilities(inp, rows=[r for r, _ in spots])[0, 0].numpy()
    err = max(float(np.nanmax(np.abs(np.array([np.nan if v is None else v for v in tl["row"]])
                                     - want[i, c:c + 512])))
              for i, ((_, c), tl) in enumerate(zip(spots, tiles, strict=True)))
    page.close()
    ms = [tl["ms"] for tl in tiles]
    return {"n": n, "file_mb": path.stat().st_size / 1e6, "render_s": render_s,
            "first_view_drawn_ms": t["drawn"], "all_data_loaded_ms": t["loaded"],
            "zoom_redraw_ms_median": statistics.median(zoom), "zoom_redraw_ms_max": max(zoom),
            "zoomed_legend": legend, "tile_512_ms_median": statistics.median(ms),
            "tile_512_ms_max": max(ms), "max_abs_error_vs_python": err,
            "load_average": os.getloadavg()[0]}
