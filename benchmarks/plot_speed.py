"""Seconds per figure for the two heavy static views.

Run: ``.venv/bin/python benchmarks/plot_speed.py [--repeat 3] [--dpi 150]``

* a 12-layer x 12-head overview at 512 tokens (144 panels, block-reduced per panel);
* one L=3000 causal heatmap (block-reduced to the axes' pixels).

Maps are synthetic but shaped like real attention (a local band, a sink on the first
key, a causal mask), so reduction and masking do their real work. Times include saving
a PNG; building the arrays is not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def attention_like(heads: int, length: int, seed: int, causal: bool = False) -> np.ndarray:
    """``(head, query, key)`` float32 rows that sum to 1."""
    rng = np.random.default_rng(seed)
    i = np.arange(length, dtype=np.float32)
    dist = np.abs(i[:, None] - i[None, :])
    out = np.empty((heads, length, length), dtype=np.float32)
    for h in range(heads):
        width = 2.0 + 6 * h
        logits = -dist / width + 0.3 * rng.standard_normal((length, length), dtype=np.float32)
        logits[:, 0] += 3.0 * (h % 3 == 0)  # attention sink
        if causal:
            logits[np.triu_indices(length, 1)] = -np.inf
        e = np.exp(logits - logits.max(-1, keepdims=True))
        out[h] = e / e.sum(-1, keepdims=True)
    return out


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()

    from attnscope.plot import plot_heatmap, plot_overview

    model = {f"encoder.layers.{i}.self_attn": attention_like(12, 512, i) for i in range(12)}
    long = attention_like(1, 3000, 0, causal=True)[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows.append(("overview 12 layers x 12 heads, 512 tokens", timed(
            lambda: plot_overview(model, dpi=args.dpi, path=out / "overview.png"), args.repeat)))
        rows.append(("overview, per-layer colour scale", timed(
            lambda: plot_overview(model, scale="layer", dpi=args.dpi, path=out / "o2.png"),
            args.repeat)))
        rows.append(("heatmap L=3000 (causal, block mean)", timed(
            lambda: plot_heatmap(long, dpi=args.dpi, path=out / "long.png"), args.repeat)))
        rows.append(("heatmap L=3000 as PDF", timed(
            lambda: plot_heatmap(long, dpi=args.dpi, path=out / "long.pdf"), args.repeat)))
    print(f"| figure (dpi {args.dpi}, best of {args.repeat}) | seconds |")
    print("|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
