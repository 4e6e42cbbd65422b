"""Attention flow: the compiled max-flow (scipy) against the networkx version it
replaced, on the same input in the same run.

    .venv/bin/python benchmarks/attention_flow.py --tokens 16 --layers 6

Input: ``layers`` random softmax maps of 12 heads over ``tokens`` positions (peaked:
logits x 3), batch 1, mean head fusion, residual. The networkx reference is the
implementation attnscope shipped before (one ``nx.maximum_flow_value`` per pair on
integer capacities ``round(w * 2**30)``); both solve the same integer problem, so their
difference is 0 up to float division, and the printed bound is the error against the
real-valued flow (``analysis.flow_error_bound``). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnscope.analysis import attention_flow, flow_error_bound, layer_matrix  # noqa: E402

SCALE = 2**30


def networkx_flow(layers: list[np.ndarray]) -> np.ndarray:
    """The former implementation, kept here as the reference."""
    import networkx as nx

    mats = [layer_matrix(a) for a in layers]
    top, bottom = mats[-1].shape[1], mats[0].shape[2]
    out = np.zeros((1, top, bottom))
    g = nx.DiGraph()
    for layer, m in enumerate(mats, start=1):
        for i, j in zip(*np.nonzero(m[0] > 0)):
            g.add_edge((layer, int(i)), (layer - 1, int(j)),
                       capacity=int(round(m[0, i, j] * SCALE)))
    for i in range(top):
        for j in range(bottom):
            out[0, i, j] = nx.maximum_flow_value(g, (len(mats), i), (0, j)) / SCALE
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the scipy version")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = []
    for _ in range(args.layers):
        z = rng.standard_normal((1, 12, args.tokens, args.tokens)) * 3
        e = np.exp(z - z.max(-1, keepdims=True))
        layers.append(e / e.sum(-1, keepdims=True))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = attention_flow(layers, max_work=10**12)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    ref = networkx_flow(layers)
    slow = time.perf_counter() - start
    best = min(times)
    print(f"{args.tokens} tokens x {args.layers} layers, all {args.tokens}x{args.tokens} "
          "pairs\n")
    print("| version | seconds | ratio |\n|---|---:|---:|")
    print(f"| networkx (before) | {slow:.2f} | 1x |")
    print(f"| scipy maximum_flow (best of {args.repeats}) | {best:.3f} | "
          f"{slow / best:.0f}x faster |")
    print(f"\nmax |scipy - networkx| = {np.abs(fast - ref).max():.2e}; "
          f"stated bound against the exact flow: {flow_error_bound(layers):.2e}")


if __name__ == "__main__":
    main()
