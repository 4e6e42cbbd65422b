"""``head_stats`` over a store: speed and peak memory against the size of the maps.

    .venv/bin/python benchmarks/analysis_stats.py --batches 8

Data: softmax rows over 256 keys, batches of (8, 12, 256, 256) written to a float16
store (each batch is 25 MB of float32). Each measurement runs in a fresh process and
reports its peak RSS growth over its RSS after imports (``/proc`` peak reset), so the
numbers show whether memory follows the block budget or the store size. Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnscope.maps import AttentionMap  # noqa: E402
from attnscope.store import open_writer  # noqa: E402

SHAPE = (8, 12, 256, 256)
CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from attnscope.analysis import head_stats
from attnscope.store import open_store

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

store = open_store({path!r})
open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current RSS (Linux)
base = status("VmRSS")
start = time.perf_counter()
{work}
seconds = time.perf_counter() - start
print(seconds, status("VmHWM") - base)
"""
WORK = {
    "read whole entry (np)": "a = store.read('attn', step='s')",
    "head_stats": "head_stats(store)",
    "head_stats + per-sample CSV": "head_stats(store, csv_path={csv!r})",
    "head_stats, no head similarity": "head_stats(store, similarity=False)",
}


def build(path: Path, batches: int) -> None:
    g = torch.Generator().manual_seed(0)
    writer = open_writer(path, step="s", durable=False)
    for _ in range(batches):
        w = torch.softmax(torch.randn(SHAPE, generator=g) * 2, -1)
        writer.write(AttentionMap(module="attn", kind="self", weights=w.half()))
        writer.commit()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    root = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        build(path, args.batches)
        mb = args.batches * torch.Size(SHAPE).numel() * 4 / 2**20
        print(f"store: {args.batches * SHAPE[0]} samples x {SHAPE[1]} heads x "
              f"{SHAPE[2]}x{SHAPE[3]}; {mb:.0f} MB as float32\n")
        print("| work | seconds | peak RSS growth MB |\n|---|---:|---:|")
        for name, work in WORK.items():
            code = CHILD.format(root=root, path=str(path),
                                work=work.format(csv=str(Path(tmp) / "s.csv")))
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout.split()
            print(f"| {name} | {float(out[0]):.2f} | {float(out[1]):.0f} |")


if __name__ == "__main__":
    main()
