"""CPU time of writing one batch into a store, measured alone (no forward running), as a
fraction of the CPU time of the forward that produced it.

On a machine whose cores the forward keeps busy, a background write costs wall-clock
time in proportion to the CPU time it takes (it competes for the same cores), and a
shared machine makes wall-clock ratios of whole captures noisy; the CPU time of the
writing itself is what attnscope controls, and it is stable between runs. The maps of
one MiniLM-L6 forward (batch 8, one sample padded, like store_overhead.py) are captured
once; each repeat writes them into a fresh step with a synchronous writer (the work the
background writer does) and commits, and the process's CPU time (all threads: the
codec's worker threads included) is taken per batch. Forms: float16 probabilities
(the default store) and ``form="qk"`` (queries and keys).

    python benchmarks/store_write_cost.py [--lengths 128 512] [--repeats 7] [--batches 4]
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

import torch

import attnscope
from attnscope.store import open_writer

try:  # run as a script: the benchmarks folder is on sys.path
    from store_overhead import inputs, load
except ImportError:  # run as benchmarks.store_write_cost
    from benchmarks.store_overhead import inputs, load

FORMS = {"probs": "float16 probabilities", "qk": "queries and keys (form='qk')"}


def maps_of_one_forward(model, batch: dict, form: str, tmp: Path) -> list:
    """The recorded maps of one forward, as the capture hands them to the writer (q/k
    form: each map carries its inputs)."""
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        with attnscope.capture(model, store=tmp / f"warm-{form}", step="s", keep=True,
                               form=None if form == "probs" else form) as rec:
            model(**batch)
    return list(rec.maps)


def write_cost(maps: list, form: str, tmp: Path, batches: int, repeats: int) -> dict:
    """Median CPU and wall seconds per batch of writing ``maps`` ``batches`` times into a
    fresh step (write, commit), and of opening and closing a writer."""
    per_batch, per_batch_wall, setup = [], [], []
    for r in range(repeats + 1):  # the first round warms caches and the codec pool
        root = tmp / f"{form}-{r}"
        cpu = time.process_time()
        w = open_writer(root, step="s", form=None if form == "probs" else form)
        setup_cpu = time.process_time() - cpu
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in range(batches):
            for m in maps:
                w.write(m)
            w.commit()
        batch_cpu = (time.process_time() - start_cpu) / batches
        batch_wall = (time.perf_counter() - start_wall) / batches
        cpu = time.process_time()
        w.close()
        setup_cpu += time.process_time() - cpu
        if r:
            per_batch.append(batch_cpu)
            per_batch_wall.append(batch_wall)
            setup.append(setup_cpu)
        shutil.rmtree(root, ignore_errors=True)
    return {"cpu": statistics.median(per_batch), "wall": statistics.median(per_batch_wall),
            "setup": statistics.median(setup)}


def forward_cpu(model, batch: dict, repeats: int) -> float:
    """Median CPU seconds (all threads) of one plain forward."""
    times = []
    with torch.inference_mode():
        model(**batch)
        for _ in range(repeats):
            cpu = time.process_time()
            model(**batch)
            times.append(time.process_time() - cpu)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, default=4, help="batches per step")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load(max(args.lengths))
    print(f"load average: {os.getloadavg()}")
    print("| L | form | forward CPU ms | write CPU ms / batch | write / forward | "
          "write wall ms / batch | open + close CPU ms |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for length in args.lengths:
            batch = inputs(length)
            fwd = forward_cpu(model, batch, args.repeats)
            for form, name in FORMS.items():
                maps = maps_of_one_forward(model, batch, form, tmp)
                cost = write_cost(maps, form, tmp, args.batches, args.repeats)
                print(f"| {length} | {name} | {fwd * 1e3:.0f} | {cost['cpu'] * 1e3:.1f} | "
                      f"{cost['cpu'] / fwd:.3f} | {cost['wall'] * 1e3:.1f} | "
                      f"{cost['setup'] * 1e3:.1f} |")


if __name__ == "__main__":
    main()
