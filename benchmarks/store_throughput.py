"""Store write throughput, size, one-head read time and streaming memory, against
``np.save`` of float32 on the same disk in the same run.

    .venv/bin/python benchmarks/store_throughput.py --total-gb 2

Data: softmax rows over 512 keys (logits ~ N(0, 2^2)), batches of (8, 12, 512, 512)
float32 = 100 MB each; a few distinct batches are generated up front and cycled, so
generation is not timed. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnscope.maps import AttentionMap  # noqa: E402
from attnscope.store import open_store, open_writer, tune_allocator  # noqa: E402

SHAPE = (8, 12, 512, 512)


def batches(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.softmax(torch.randn(SHAPE, generator=g) * 2, -1) for _ in range(n)]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench_npsave(pool: list[torch.Tensor], nb: int, tmp: Path, sync: bool) -> float:
    d = tmp / f"npy_{sync}"
    d.mkdir()
    t = time.perf_counter()
    for i in range(nb):
        with open(d / f"b{i}.npy", "wb") as f:
            np.save(f, pool[i % len(pool)].numpy())
            if sync:
                f.flush()
                os.fsync(f.fileno())
    dt = time.perf_counter() - t
    shutil.rmtree(d)
    return dt


def bench_store(pool, nb, tmp: Path, name: str, **kw) -> tuple[float, int, float]:
    path = tmp / name
    t = time.perf_counter()
    w = open_writer(path, step="epoch_000", **kw)
    for i in range(nb):
        w.write(AttentionMap("layer.0.attn", "self", pool[i % len(pool)]))
        w.commit()
    w.close()
    dt = time.perf_counter() - t
    store = open_store(path)
    err = 0.0
    for i in range(min(nb, len(pool))):
        got = store.read("layer.0.attn", samples=slice(8 * i, 8 * i + 8))
        err = max(err, float(np.abs(got - pool[i].numpy()).max()))
    return dt, du(path), err


def bench_read(pool, nb: int, tmp: Path, store_path: Path) -> tuple[float, float]:
    full = np.concatenate([pool[i % len(pool)].numpy() for i in range(nb)])
    np.save(tmp / "full.npy", full)
    del full
    t = time.perf_counter()
    np.load(tmp / "full.npy")
    t_npy = time.perf_counter() - t
    t = time.perf_counter()
    store = open_store(store_path)  # fresh open, metadata included
    one = store.read("layer.0.attn", samples=[3 * nb], heads=[5])
    t_store = time.perf_counter() - t
    assert one.shape == (1, 1, 512, 512)
    return t_npy, t_store


RSS_CHILD = """
import sys, time, torch
sys.path.insert(0, sys.argv[3])
from attnscope.maps import AttentionMap
from attnscope.store import open_writer, tune_allocator
if sys.argv[4] == "1":
    tune_allocator()
g = torch.Generator().manual_seed(1)
pool = [torch.softmax(torch.randn({shape}, generator=g) * 2, -1) for _ in range(2)]
w = open_writer(sys.argv[1], step="epoch_000", expected_samples=int(sys.argv[2]))
w.write(AttentionMap("warm", "self", pool[0][:1, :1])); w.commit()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak: measure streaming only
base = status("VmRSS")
t = time.perf_counter()
for i in range(int(sys.argv[2]) // 8):
    w.write(AttentionMap("layer.0.attn", "self", pool[i % 2])); w.commit()
w.close()
peak = status("VmHWM")
print(base, peak, time.perf_counter() - t)
"""


def bench_rss(samples: int, tmp: Path, tune: bool) -> tuple[int, int, float]:
    code = RSS_CHILD.replace("{shape}", repr(SHAPE))
    out = subprocess.run([sys.executable, "-c", code, str(tmp / "rss"), str(samples),
                          str(Path(__file__).resolve().parents[1]), str(int(tune))],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1]), float(out[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total-gb", type=float, default=2.0, help="float32 input per write run")
    ap.add_argument("--keepbits", type=int, default=7, help="lossy mode row")
    ap.add_argument("--rss-samples", type=int, default=2000)
    ap.add_argument("--dir", default=".", help="where to write (same disk for all rows)")
    ap.add_argument("--no-tune-allocator", action="store_true",
                    help="skip attnscope.store.tune_allocator() (the opt-in glibc setting)")
    a = ap.parse_args()
    if not a.no_tune_allocator:
        tune_allocator()
    batch_bytes = int(np.prod(SHAPE)) * 4
    nb = max(1, round(a.total_gb * 1e9 / batch_bytes))
    mb = nb * batch_bytes / 1e6
    pool = batches(4)
    tmp = Path(tempfile.mkdtemp(prefix="attnscope_bench_", dir=a.dir))
    rows = []
    try:
        for sync in (True, False):
            dt = bench_npsave(pool, nb, tmp, sync)
            rows.append((f"np.save float32{' + fsync' if sync else ''}", mb / dt, 1.0, 0.0))
        for name, kw in [("store float16 lossless (durable)", {}),
                         ("store float16 lossless (durable=False)", {"durable": False}),
                         (f"store float16 keepbits={a.keepbits} (durable)",
                          {"keepbits": a.keepbits})]:
            dt, size, err = bench_store(pool, nb, tmp, name.replace(" ", "_"), **kw)
            rows.append((name, mb / dt, size / (nb * batch_bytes), err))
        t_npy, t_store = bench_read(pool, nb, tmp, tmp / "store_float16_lossless_(durable)")
        base, peak, t_rss = bench_rss(a.rss_samples, tmp, not a.no_tune_allocator)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{nb} batches of {SHAPE} float32 = {mb / 1e3:.2f} GB per write row, "
          f"{os.cpu_count()} cores\n")
    print("| write | MB/s (float32 in) | size / raw float32 | max abs error |")
    print("|---|---:|---:|---:|")
    for name, speed, ratio, err in rows:
        print(f"| {name} | {speed:,.0f} | {ratio:.3f} | {err:.1e} |")
    print("\n| read one head of one sample | seconds | speed-up |")
    print("|---|---:|---:|")
    print(f"| np.load whole .npy ({mb / 1e3:.2f} GB) | {t_npy:.3f} | 1x |")
    print(f"| open_store + store.read(samples=[i], heads=[h]) | {t_store:.4f} | "
          f"{t_npy / t_store:,.0f}x |")
    print(f"\n| streaming {a.rss_samples} samples (lossless, durable) | value |")
    print("|---|---:|")
    print(f"| one batch of maps, float32 | {batch_bytes / 1e6:.0f} MB |")
    print(f"| RSS before streaming (torch + 2 batches held by the caller) | {base / 1e6:.0f} MB |")
    print(f"| peak RSS while streaming | {peak / 1e6:.0f} MB |")
    print(f"| peak growth / one batch | {(peak - base) / batch_bytes:.2f}x |")
    print(f"| streaming time | {t_rss:.1f} s |")


if __name__ == "__main__":
    main()
