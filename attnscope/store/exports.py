"""Exports for scripts that expect plain files: ``attention_<step>.npy`` per step, one
``attention_all_epochs.npz`` (a key per step plus ``time_steps``), and a long-form CSV
``attention_all_epochs.csv`` -- the same names and keys the Lightning callback writes
(steps ``epoch_003`` become npz keys ``epoch_3``, as training scripts save them).
Graph entries keep their ``edge_index`` (see :mod:`attnscope.store.graph_export`).

1-D attention (one head, one query) is squeezed to ``(sample, key)`` by default, the
shape such scripts save; pass ``squeeze=False`` for ``(sample, head, query, key)``.
The CSV has one row per weight, so it refuses above ``max_rows`` and says how to slice.

Every file is written under a temporary name and renamed when complete, so a failed
export (disk full, Ctrl-C) leaves no truncated file. Per-module folders are named by
:func:`attnscope._files.safe_filename`: stable, and unique even when two module names
clean up to the same text.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from attnscope._files import atomic_path, ensure_dir, safe_filename
from attnscope.maps import is_one_d
from attnscope.store import axes as graph_axes
from attnscope.store.axes import keep_dims, npz_axis_arrays
from attnscope.store.errors import ExportTooLargeError, StoreError
from attnscope.store.estimate import human
from attnscope.store.graph_export import npz_edge_arrays, write_edges_csv
from attnscope.store.reader import Store
from attnscope.store.segment import positions

CSV_NAME = "attention_all_epochs.csv"
CHUNK_BYTES = 64 * 2**20  # what one streamed read may hold
MAX_CSV_ROWS = 5_000_000  # ~200 MB of text; beyond that a CSV is the wrong tool
FORMATS = ("npy", "npz", "csv")


def export(store: Store, out: str | Path, fmt: str, *, modules: list[str] | None = None,
           steps: list[str] | None = None, samples: Any = None, heads: Any = None,
           squeeze: bool = True, max_rows: int = MAX_CSV_ROWS,
           npz_keys: Mapping[str, str] | None = None,
           csv_name: str = CSV_NAME, select: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``fmt`` files for the selected modules and steps under ``out``; return them.

    ``npz_keys`` renames steps inside the ``.npz`` (default :func:`training_keys`:
    ``{"epoch_000": "epoch_0"}``, the keys training scripts already read); ``csv_name``
    names the CSV file (graph entries go to ``<stem>_edges.csv`` beside dense ones).
    ``select`` picks positions of named graph dims (``{"node": [2, 3]}``, see
    :meth:`Store.axes`); every dim is kept, so the ``.npz`` ``dims`` stay true."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    modules = modules or store.modules
    for m in modules:
        store.module_info(m)
    steps = steps or store.steps
    for s in steps:
        if s not in store.steps:
            raise StoreError(f"no step {s!r} in store '{store.root}'; steps: {store.steps}")
    select = keep_dims(select)
    graphs = [m for m in modules if store.module_info(m).get("graph")]
    if select:  # bad axis names or positions fail before anything is written
        if not graphs:
            raise StoreError("--axis/select picks dims of graph entries; none is selected")
        for m in graphs:
            have = [s for s in steps if store.segments(m, s)]
            try:
                graph_axes.positions(store.axes(m, have[0]) if have else [], select)
            except StoreError as err:
                raise StoreError(f"{m!r}: {err}; export the entries that have it "
                                 "(--module)") from None
    out = ensure_dir(out)
    if fmt == "csv":
        return _csv_files(store, out / csv_name, modules, steps, samples, heads, max_rows,
                          select)
    renames = dict(training_keys(steps)) if npz_keys is None else dict(npz_keys)
    written = []
    for m in modules:
        target = out if len(modules) == 1 else ensure_dir(out / safe_filename(m))
        graph = bool(store.module_info(m).get("graph"))
        if fmt == "npy":
            for s in steps:
                if store.segments(m, s):
                    path = target / f"attention_{s}.npy"
                    # the step's own dtype: float16 captures are not widened to float32
                    write_npy(store, m, s, path, samples=samples, heads=heads,
                              squeeze=squeeze and not graph, select=select if graph else None,
                              dtype=store.meta["steps"].get(s, {}).get("dtype", "float32"))
                    written.append(path)
        else:
            arrays = {s: _squeeze(store.read(m, s, samples, heads, select if graph else None),
                                  squeeze and not graph)
                      for s in steps if store.segments(m, s)}
            keys = max((a.shape[-1] for a in arrays.values()), default=0)
            labels = next((store.labels(s)["time_steps"] for s in arrays
                           if len(store.labels(s).get("time_steps", [])) == keys), None)
            axes = {"time_steps": np.asarray(labels) if labels is not None else
                    np.arange(keys)} if not graph else \
                npz_axis_arrays(store, m, list(arrays), select) if arrays else {}  # not heads
            renamed = {renames.get(s, s): a for s, a in arrays.items()}
            edges = npz_edge_arrays(store, m, {s: renames.get(s, s) for s in arrays},
                                    samples) if graph else {}
            with atomic_path(target / "attention_all_epochs.npz") as tmp:
                np.savez(tmp, **renamed, **axes, **edges)
            written.append(target / "attention_all_epochs.npz")
    return written


def training_keys(steps: list[str]) -> dict[str, str]:
    """``{"epoch_003": "epoch_3", ...}``: npz keys as training scripts write them."""
    return {s: f"epoch_{int(s[6:])}" for s in steps
            if s.startswith("epoch_") and s[6:].isdigit()}


def _csv_files(store: Store, path: Path, modules: list[str], steps: list[str], samples: Any,
               heads: Any, max_rows: int, select: Mapping[str, Any] | None = None
               ) -> list[Path]:
    """Dense entries to ``path``; graph entries (source/target columns) to ``path`` too
    when only graphs are selected, else to ``<stem>_edges.csv``."""
    graphs = [m for m in modules if store.module_info(m)["graph"]]
    dense = [m for m in modules if m not in graphs]
    rows = csv_rows(store, modules, steps, samples, heads)
    if rows > max_rows:
        raise ExportTooLargeError(
            f"CSV would have {rows:,} rows (~{human(rows * 40)}), over the limit of "
            f"{max_rows:,}; slice with --module/--step/--samples/--heads, raise --max-rows, "
            "or use --format npz")
    written = [_csv(store, path, dense, steps, samples, heads)] if dense else []
    if graphs:
        edges = path if not dense else path.with_name(path.stem + "_edges.csv")
        written.append(write_edges_csv(store, edges, graphs, steps, samples, heads, select))
    return written


def write_npy(store: Store, module: str, step: str, path: str | Path, *, samples: Any = None,
              heads: Any = None, squeeze: bool = True, chunk_bytes: int = CHUNK_BYTES,
              each: Callable[[np.ndarray], None] | None = None,
              select: Mapping[str, Any] | None = None, dtype: str = "float32"
              ) -> tuple[int, ...]:
    """Stream the selected samples of one entry into a ``.npy`` file: memory stays near
    ``chunk_bytes`` however many samples. ``each`` sees every block ``(sample, head,
    query, key)`` as read (e.g. to average on the way); ``dtype`` is the file's (the
    store's own keeps what was captured); returns the file's shape."""
    out_type = np.dtype(dtype).newbyteorder("<")
    rows = positions(samples, store.num_samples(module, step), "sample")
    first = store.read(module, step, [int(rows[0])] if len(rows) else [], heads, select)
    shape = (len(rows), *first.shape[1:])
    flat = squeeze and len(shape) == 4 and shape[1] == 1 and is_one_d(shape)
    out_shape = (shape[0], shape[-1]) if flat else shape
    per = max(1, chunk_bytes // max(4 * int(np.prod(shape[1:])), 1))
    # written block by block, not through a memmap (a full disk would kill the process
    # with SIGBUS), under a temporary name renamed when complete
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": out_type.str, "fortran_order": False, "shape": out_shape})
        for start in range(0, len(rows), per):
            block = store.read(module, step, [int(r) for r in rows[start:start + per]], heads,
                               select)
            f.write(np.ascontiguousarray(block, dtype=out_type).tobytes())
            if each is not None:
                each(block)
    return out_shape


def csv_rows(store: Store, modules: list[str], steps: list[str], samples: Any,
             heads: Any) -> int:
    """Rows a CSV export would have, from shapes only (nothing is read)."""
    rows = 0
    for m in modules:
        for s in steps:
            segs = store.segments(m, s)
            if not segs:
                continue
            graph = bool(store.module_info(m).get("graph"))
            hax = -1 if graph else 1
            n = len(_positions(samples, sum(g.shape[0] for g in segs)))
            h = len(_positions(heads, max(g.shape[hax] for g in segs), "head"))
            cells = [max(g.shape[i] for g in segs) for i in range(1, len(segs[0].shape))]
            cells[hax] = 1
            rows += n * h * int(np.prod(cells))
    return rows


def _csv(store: Store, path: Path, modules: list[str], steps: list[str], samples: Any,
         heads: Any) -> Path:
    """Long-form rows of dense entries; the caller has bounded the row count."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")  # quotes module names with , " or newlines
        out.writerow(["step", "sample", "module", "head", "query", "key", "weight"])
        for s in steps:
            for m in modules:
                if not store.segments(m, s):
                    continue
                a = store.read(m, s, samples, heads)  # (sample, head, query, key)
                sample_ids = _positions(samples, store.num_samples(m, s))
                idx = np.indices(a.shape[1:]).reshape(3, -1).T
                keep = ~np.isnan(a.reshape(a.shape[0], -1))
                for i, sid in enumerate(sample_ids):
                    rows_i = idx[keep[i]]
                    w = a[i].reshape(-1)[keep[i]]
                    out.writerows([s, sid, m, h, q, k, f"{v:.6g}"] for (h, q, k), v in
                                  zip(rows_i.tolist(), w.tolist(), strict=True))
    return path


def _positions(sel: Any, n: int, what: str = "sample") -> np.ndarray:
    return positions(sel, n, what)


def _squeeze(a: np.ndarray, squeeze: bool) -> np.ndarray:
    if squeeze and a.ndim == 4 and a.shape[1] == 1 and is_one_d(a.shape):
        return a[:, 0, 0]  # (sample, key): 1-D attention over time steps
    return a

