"""``head_stats`` on one process against a dask LocalCluster, same store, same run.

    .venv/bin/python benchmarks/stats_distributed.py --batches 8 --workers 2

Data: softmax rows over 256 keys, batches of (8, 12, 256, 256) in a float16 store (as
in ``analysis_stats.py``). The cluster is started before timing (its start-up is printed
apart); both passes compute every metric, diagnostics and the nearest head, and the
reports are checked equal before the times are printed. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_stats import build  # noqa: E402

from attnscope.analysis import head_stats  # noqa: E402
from attnscope.store import open_store  # noqa: E402


def equal(a: list[dict], b: list[dict]) -> bool:
    for ra, rb in zip(a, b):
        for key, va in ra.items():
            vb = rb[key]
            if isinstance(va, float):
                if not (math.isnan(va) and math.isnan(vb)) and not math.isclose(
                        va, vb, rel_tol=1e-9, abs_tol=1e-12):
                    return False
            elif va != vb:
                return False
    return len(a) == len(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        build(path, args.batches)
        store = open_store(path)
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("attnscope.analysis"))  # imports before timing
            up = time.perf_counter() - start
            start = time.perf_counter()
            many = head_stats(store, cluster=client)
            dist = time.perf_counter() - start
        start = time.perf_counter()
        one = head_stats(store)
        single = time.perf_counter() - start
        assert equal(one.rows, many.rows), "cluster and single-process reports differ"
        print(f"{args.batches * 8} samples x 12 heads x 256 x 256, float16 store; "
              f"cluster start-up {up:.1f} s (not counted)\n")
        print("| run | seconds | speed-up |\n|---|---:|---:|")
        print(f"| one process | {single:.2f} | 1.00x |")
        print(f"| LocalCluster, {args.workers} worker processes | {dist:.2f} | "
              f"{single / dist:.2f}x |")


if __name__ == "__main__":
    main()
