"""``head_stats`` on a dask.distributed cluster: each task opens the store itself (the
checked reader: crc32c, shapes, journal) and reads only its own batches, so the store
is analysed where it lies and nothing but per-head sums travels back.

Tasks are one (entry, step, batch) each, in the order the single-process pass reads
them; their running sums, diagnostics counters and per-sample CSV rows are merged in
that order, so the report equals the single-process one (sums regrouped: float
rounding only) and the CSV is the same file.

Left out on purpose: recordings and arrays (they are in this process's memory; use the
single-process ``head_stats``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from attnscope.analysis._blocks import AnalysisError, blocks
from attnscope.sources import positions


@contextlib.contextmanager
def connect(cluster: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster``: a client (used as is), a scheduler
    address (``"tcp://host:8786"``), or a number of local worker processes (a
    ``LocalCluster`` started here and closed on exit)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AnalysisError("running on a cluster needs dask.distributed: pip install "
                            "'attnscope[store]'") from None
    if hasattr(cluster, "submit"):
        yield cluster
    elif isinstance(cluster, int) and not isinstance(cluster, bool):
        if cluster < 1:
            raise AnalysisError(f"workers must be 1 or more, not {cluster}")
        with LocalCluster(n_workers=cluster, threads_per_worker=1, processes=True,
                          dashboard_address=None) as local, Client(local) as client:
            yield client
    elif isinstance(cluster, str):
        try:
            client = Client(cluster, timeout="5s")
        except (OSError, TimeoutError) as err:
            raise AnalysisError(f"cannot reach the dask scheduler {cluster!r}: "
                                f"{' '.join(str(err).split())[:160]}") from None
        with client:
            yield client
    else:
        raise AnalysisError(f"cluster must be a distributed.Client, a scheduler address "
                            f"or a number of workers, not {type(cluster).__name__}")


def plan(store: Any, modules: Sequence[str] | None, steps: Sequence[str] | None,
         samples: Any) -> list[tuple[str, str, list[int]]]:
    """``(entry, step, sample positions)`` per batch, in single-process reading order."""
    tasks = []
    for name in list(modules) if modules else list(store.modules):
        for step in list(steps) if steps else store.steps:
            segs = store.segments(name, step)
            if not segs:
                continue
            wanted = np.unique(positions(samples, sum(s.shape[0] for s in segs), "sample",
                                         f"step {step!r}"))
            start = 0
            for seg in segs:
                pos = wanted[(wanted >= start) & (wanted < start + seg.shape[0])]
                start += seg.shape[0]
                if len(pos):
                    tasks.append((name, step, [int(i) for i in pos]))
    return tasks


def run_task(root: str, module: str, step: str, samples: list[int], similarity: bool,
             thresholds: Any, budget: int, want_rows: bool) -> dict[str, Any]:
    """One batch on a worker: its accumulators, diagnostics counts and CSV rows."""
    from attnscope.analysis.diagnostics import FindingCounter
    from attnscope.analysis.stats import add_block
    from attnscope.store import open_store

    store = open_store(root)
    accs: dict = {}
    measures: dict = {}
    counter = FindingCounter(thresholds)
    rows: list[list[Any]] = []
    writer = SimpleNamespace(writerow=rows.append) if want_rows else None
    for b in blocks(store, [module], [step], samples, None, budget):
        add_block(b, measures, accs, counter, similarity, writer)
    return {"accs": accs, "seen": counter._seen, "acc": counter._acc, "rows": rows}


def run(store: Any, client: Any, modules: Sequence[str] | None, steps: Sequence[str] | None,
        samples: Any, similarity: bool, thresholds: Any, budget: int, writer: Any,
        progress: Any) -> tuple[dict, Any]:
    """Submit every batch, merge the results in order; ``(accs, counter)``."""
    from attnscope.analysis.diagnostics import FindingCounter

    tasks = plan(store, modules, steps, samples)
    root = str(Path(store.root).resolve())  # workers may run elsewhere: no relative path
    futures = [client.submit(run_task, root, name, step, idx, similarity,
                             thresholds, budget, writer is not None, pure=False)
               for name, step, idx in tasks]
    accs: dict = {}
    counter = FindingCounter(thresholds)
    for i, (name, step, idx) in enumerate(tasks):
        part = futures[i].result()
        futures[i] = None  # let the cluster drop a result once it is merged
        for key, acc in part["accs"].items():
            if key in accs:
                accs[key].merge(acc)
            else:
                accs[key] = acc
        counter.merge(part["seen"], part["acc"])
        if writer is not None:
            for row in part["rows"]:
                writer.writerow(row)
        if progress is not None:
            progress(SimpleNamespace(module=name, step=step, samples=np.array(idx),
                                     heads=np.array([0]), all_heads=True))
    return accs, counter
