"""Exports for scripts that expect plain files: ``attention_<step>.npy`` per step, one
``attention_all_epochs.npz`` (a key per step plus ``time_steps``), and a long-form CSV.

1-D attention (one head, one query) is squeezed to ``(sample, key)`` by default, the
shape such scripts save; pass ``squeeze=False`` for ``(sample, head, query, key)``.
The CSV has one row per weight, so it refuses above ``max_rows`` and says how to slice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.maps import is_one_d
from attnscope.store.errors import ExportTooLargeError, StoreError
from attnscope.store.estimate import human
from attnscope.store.reader import Store
from attnscope.store.reader import _positions as positions

CHUNK_BYTES = 64 * 2**20  # what one streamed read may hold
MAX_CSV_ROWS = 5_000_000  # ~200 MB of text; beyond that a CSV is the wrong tool
FORMATS = ("npy", "npz", "csv")


def export(store: Store, out: str | Path, fmt: str, *, modules: list[str] | None = None,
           steps: list[str] | None = None, samples: Any = None, heads: Any = None,
           squeeze: bool = True, max_rows: int = MAX_CSV_ROWS,
           npz_keys: Mapping[str, str] | None = None,
           csv_name: str = "attention.csv") -> list[Path]:
    """Write ``fmt`` files for the selected modules and steps under ``out``; return them.

    ``npz_keys`` renames steps inside the ``.npz`` (e.g. ``{"epoch_000": "epoch_0"}``, the
    keys training scripts already read); ``csv_name`` names the CSV file."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    modules = modules or store.modules
    for m in modules:
        store.module_info(m)
    steps = steps or store.steps
    for s in steps:
        if s not in store.steps:
            raise StoreError(f"no step {s!r} in store '{store.root}'; steps: {store.steps}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        return [_csv(store, out / csv_name, modules, steps, samples, heads, max_rows)]
    written = []
    for m in modules:
        target = out if len(modules) == 1 else out / _safe(m)
        target.mkdir(parents=True, exist_ok=True)
        if fmt == "npy":
            for s in steps:
                if store.segments(m, s):
                    path = target / f"attention_{s}.npy"
                    write_npy(store, m, s, path, samples=samples, heads=heads, squeeze=squeeze)
                    written.append(path)
        else:
            arrays = {s: _squeeze(store.read(m, s, samples, heads), squeeze)
                      for s in steps if store.segments(m, s)}
            keys = max((a.shape[-1] for a in arrays.values()), default=0)
            labels = next((store.labels(s)["time_steps"] for s in arrays
                           if len(store.labels(s).get("time_steps", [])) == keys), None)
            time_steps = np.asarray(labels) if labels is not None else np.arange(keys)
            renamed = {(npz_keys or {}).get(s, s): a for s, a in arrays.items()}
            np.savez(target / "attention_all_epochs.npz", **renamed, time_steps=time_steps)
            written.append(target / "attention_all_epochs.npz")
    return written


def write_npy(store: Store, module: str, step: str, path: str | Path, *, samples: Any = None,
              heads: Any = None, squeeze: bool = True, chunk_bytes: int = CHUNK_BYTES,
              each: Callable[[np.ndarray], None] | None = None) -> tuple[int, ...]:
    """Stream the selected samples of one entry into a ``.npy`` file: memory stays near
    ``chunk_bytes`` however many samples. ``each`` sees every block ``(sample, head,
    query, key)`` as read (e.g. to average on the way); returns the file's shape."""
    rows = positions(samples, store.num_samples(module, step), "sample")
    first = store.read(module, step, [int(rows[0])] if len(rows) else [], heads)
    shape = (len(rows), *first.shape[1:])
    flat = squeeze and len(shape) == 4 and shape[1] == 1 and is_one_d(shape)
    out_shape = (shape[0], shape[-1]) if flat else shape
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=out_shape)
    per = max(1, chunk_bytes // max(4 * int(np.prod(shape[1:])), 1))
    for start in range(0, len(rows), per):
        block = store.read(module, step, [int(r) for r in rows[start:start + per]], heads)
        out[start:start + len(block)] = block.reshape(len(block), -1) if flat else block
        if each is not None:
            each(block)
    out.flush()
    del out
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
            n = sum(g.shape[0] for g in segs)
            n = n if samples is None else len(np.arange(n)[samples] if isinstance(
                samples, slice) else np.atleast_1d(samples))
            h = max(g.shape[1] for g in segs)
            h = h if heads is None else len(np.arange(h)[heads] if isinstance(
                heads, slice) else np.atleast_1d(heads))
            rows += n * h * max(g.shape[2] for g in segs) * max(g.shape[3] for g in segs)
    return rows


def _csv(store: Store, path: Path, modules: list[str], steps: list[str], samples: Any,
         heads: Any, max_rows: int) -> Path:
    if any(store.module_info(m)["graph"] for m in modules):
        raise StoreError("CSV export is for dense maps; export graph maps with --format npz")
    rows = csv_rows(store, modules, steps, samples, heads)
    if rows > max_rows:
        raise ExportTooLargeError(
            f"CSV would have {rows:,} rows (~{human(rows * 40)}), over the limit of "
            f"{max_rows:,}; slice with --module/--step/--samples/--heads, raise --max-rows, "
            "or use --format npz")
    with open(path, "w", encoding="utf-8") as f:
        f.write("step,sample,module,head,query,key,weight\n")
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
                    prefix = f"{s},{sid},{_csv_field(m)},"
                    lines = [f"{prefix}{h},{q},{k},{v:.6g}\n"
                             for (h, q, k), v in zip(rows_i.tolist(), w.tolist(), strict=True)]
                    f.writelines(lines)
    return path


def _positions(sel: Any, n: int) -> np.ndarray:
    return np.arange(n) if sel is None else np.arange(n)[sel] if isinstance(
        sel, slice) else np.atleast_1d(np.asarray(sel)) % max(n, 1)


def _squeeze(a: np.ndarray, squeeze: bool) -> np.ndarray:
    if squeeze and a.ndim == 4 and a.shape[1] == 1 and is_one_d(a.shape):
        return a[:, 0, 0]  # (sample, key): 1-D attention over time steps
    return a


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]@]", "_", name) or "_root"


def _csv_field(s: str) -> str:
    return f'"{s}"' if any(c in s for c in ',"\n') else s
