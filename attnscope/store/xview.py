"""xarray view of one dense entry, backed by dask: nothing is read until computed, and a
computation over all samples streams chunk by chunk (one head of one sample each)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.store.errors import StoreError

if TYPE_CHECKING:
    from attnscope.store.reader import Store


def to_xarray(store: Store, module: str, steps: list[str] | None = None) -> Any:
    """DataArray with dims (step, sample, head, query, key), float32, NaN-padded.

    Steps with fewer samples, and batches with shorter sequences, are padded with NaN so
    every step shares one shape; ``store.lengths`` gives the true sizes.
    """
    import dask.array as da
    import xarray as xr

    info = store.module_info(module)
    if info["graph"]:
        raise StoreError(f"{module!r} holds graph maps; use store.read and store.edge_index")
    steps = [s for s in (steps or store.steps) if store.segments(module, s)]
    if not steps:
        raise StoreError(f"{module!r} has no committed batches in steps {steps}")
    segs = {s: store.segments(module, s) for s in steps}
    every = [g for v in segs.values() for g in v]
    heads, q, k = (max(g.shape[i] for g in every) for i in (1, 2, 3))
    nmax = max(sum(g.shape[0] for g in v) for v in segs.values())
    per_step = []
    for s in steps:
        parts = []
        for g in segs[s]:
            z = g.array()
            a = da.from_array(z, chunks=(1, 1, *z.shape[2:]), asarray=True, lock=False,
                              fancy=False).astype(np.float32)
            pad = [(0, 0), (0, heads - g.shape[1]), (0, q - g.shape[2]), (0, k - g.shape[3])]
            if any(p[1] for p in pad):
                a = da.pad(a, pad, mode="constant", constant_values=np.nan)
            parts.append(a)
        arr = da.concatenate(parts, axis=0)
        if arr.shape[0] < nmax:
            arr = da.pad(arr, [(0, nmax - arr.shape[0])] + [(0, 0)] * 3, mode="constant",
                         constant_values=np.nan)
        per_step.append(arr)
    data = da.stack(per_step, axis=0)  # (step, sample, head, query, key)
    head_ids = info.get("heads") or list(range(heads))
    coords: dict[str, Any] = {"step": steps, "sample": np.arange(nmax),
                              "head": head_ids if len(head_ids) == heads else np.arange(heads)}
    labels = store.labels(steps[0])
    for dim, n, names in (("query", q, ("queries", "tokens", "time_steps")),
                          ("key", k, ("keys", "tokens", "time_steps"))):
        for name in names:
            if name in labels and len(labels[name]) == n:
                coords[dim] = list(labels[name])
                break
    return xr.DataArray(data, dims=("step", "sample", "head", "query", "key"), coords=coords,
                        name=module, attrs={"module": module, "kind": info["kind"]})
