"""Several processes on one store at once: two writers capturing different steps, and a
reader opening the store while a writer appends. Real processes, real files."""

from __future__ import annotations

import time

import numpy as np
import torch

import attnscope
from attnscope.store import open_store

from . import processes as P
from .test_merge import _run

BATCHES = 6


def test_two_writers_and_a_reader(tmp_path):
    root = tmp_path / "s"
    log = tmp_path / "reader.tsv"
    sync = tmp_path / "sync"
    sync.mkdir()
    _run([(P.capture_step, str(root), "epoch_000", BATCHES, str(sync), False, str(sync)),
          (P.capture_step, str(root), "test", BATCHES, None, True, str(sync)),
          (P.read_while_writing, str(root), "epoch_000", BATCHES, time.time() + 100,
           str(log), str(sync))])
    store = open_store(root)
    assert sorted(store.steps) == ["epoch_000", "test"]
    net, x = P.model(), P.inputs()
    for step in ("epoch_000", "test"):
        for name in ("", "pool_attention"):
            assert len(store.segments(name, step)) == BATCHES  # nothing lost
            rows = [r for b in range(BATCHES) for r in (b % P.SAMPLES, (b + 1) % P.SAMPLES)]
            with torch.no_grad(), attnscope.capture(net) as rec:
                net(x[rows])
            want = next(m for m in rec.maps if m.module == name).weights.numpy()
            np.testing.assert_allclose(store.read(name, step=step), want, atol=1e-6)
    edges = store.read("gnn.edges", step="test")  # only the second writer had it
    assert np.floor(edges[:, 0, 0]).tolist() == [r % P.SAMPLES for b in range(BATCHES)
                                                 for r in (b, b + 1)]
    seen = [line.split("\t") for line in log.read_text().splitlines() if line]
    assert seen, "the reader never saw a committed batch"
    counts = [int(batches) for _, batches, _, _ in seen]
    # every opening shows only committed batches (2 samples each), all complete, and
    # batches only ever appear: never a partial or vanished one
    assert all(int(n) == 2 * int(b) and ok == "1" for _, b, n, ok in seen)
    by_name: dict[str, list[int]] = {}
    for (name, *_), c in zip(seen, counts, strict=True):
        by_name.setdefault(name, []).append(c)
    assert all(c == sorted(c) for c in by_name.values())
    assert set(counts) == set(range(1, BATCHES + 1))  # the writer waited for each state
