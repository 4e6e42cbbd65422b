"""The test-set attention of one module: streamed from the store into
``attention_test.npy`` and reduced to one matrix (the mean over the test set, or one
sample) for the figure.

Memory stays bounded however large the test set: samples are read from the store in
chunks of about ``chunk_bytes`` and written into a memory-mapped ``.npy``. Batches of
different lengths are NaN-padded to the longest by the store, and the mean skips NaN.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope._files import atomic_path
from attnscope.evaluate.batches import EvaluationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHUNK_BYTES = 64 * 2**20


@dataclass
class AttentionSummary:
    """What was exported, and the matrix the figure shows.

    Attributes:
        matrix: ``(head, query, key)``: the mean over samples, or one sample.
        shape: shape of the ``.npy``: ``(sample, key)`` for 1-D attention, else
            ``(sample, head, query, key)``.
        what: ``"mean over N test samples"`` or ``"test sample i"``.
    """

    module: str
    kind: str
    matrix: np.ndarray
    shape: tuple[int, ...]
    what: str

    @property
    def one_d(self) -> bool:
        """One weight per key (``(batch, 1, 1, key)``): drawn as bars."""
        return self.matrix.shape[1] == 1

    def describe(self) -> dict[str, Any]:
        return {"module": self.module, "kind": self.kind, "shape": list(self.shape),
                "figure": self.what}


def base_name(entry: str) -> str:
    """Module name of a store entry (``"attn[2]"`` and ``"attn@effective"`` -> ``"attn"``)."""
    return re.sub(r"(\[\d+\])?(@effective)?$", "", entry)


def pick_module(store: Any, step: str, wanted: str | None = None) -> str:
    """``wanted`` (a store entry or module name), else the last dense entry captured."""
    dense = [m for m in store.modules if not store.module_info(m)["graph"]
             and store.segments(m, step)]
    if wanted is not None:
        found = [m for m in dense if m == wanted] or [m for m in dense if base_name(m) == wanted]
        if not found:
            raise EvaluationError(f"no dense attention from module {wanted!r} in the test "
                                  f"set; captured: {', '.join(dense) or 'none'}")
        return found[0]
    plain = [m for m in dense if not m.endswith("@effective")]
    if not plain:
        raise EvaluationError("only graph attention was captured; evaluate draws dense maps "
                              "(use 'attnscope export' for edge weights)")
    return plain[-1]


def export_attention(store: Any, module: str, step: str, path: str | os.PathLike,
                     sample: int | None = None, chunk_bytes: int = CHUNK_BYTES
                     ) -> AttentionSummary:
    """Write all samples of ``module`` to ``path`` (``.npy``) and reduce them."""
    n = store.num_samples(module, step)
    first = store.read(module, step, samples=[0])  # (1, head, query, key), padded
    heads, queries, keys = first.shape[1:]
    one_d = heads == 1 and queries == 1
    shape = (n, keys) if one_d else (n, heads, queries, keys)
    total = np.zeros((heads, queries, keys))
    count = np.zeros((heads, queries, keys), dtype=np.int64)
    per = max(1, chunk_bytes // (4 * max(1, heads * queries * keys)))
    # written block by block, not through a memmap (a full disk would kill the process
    # with SIGBUS), to a temporary name renamed when complete
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        for start in range(0, n, per):
            block = store.read(module, step, samples=slice(start, start + per))
            f.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            valid = ~np.isnan(block)
            total += np.where(valid, block, 0.0).sum(axis=0)
            count += valid.sum(axis=0)
    if sample is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        what = f"mean over {n} test samples"
    else:
        if not -n <= sample < n:
            raise EvaluationError(f"attention sample {sample} out of range: the test set "
                                  f"has {n} samples")
        matrix = store.read(module, step, samples=[sample])[0]
        what = f"test sample {sample % n}"
    kind = str(store.module_info(module).get("kind", "self"))
    return AttentionSummary(module, kind, matrix.astype(np.float32), shape, what)


def plot_attention(summary: AttentionSummary, path: str | os.PathLike | None = None,
                   dpi: float = 150) -> Figure:
    """Bar plot for 1-D attention (mean of heads when several), heatmap of the head mean
    for matrices; the title names the module and says mean or sample."""
    from attnscope.plot import plot_bars, plot_heatmap

    heads = summary.matrix.shape[0]
    parts = [summary.what] + ([f"mean of {heads} heads"] if heads > 1 else [])
    title = (summary.module or "<root>") + "\n" + " \u00b7 ".join(parts)
    head = "mean" if heads > 1 else 0
    if summary.one_d:
        return plot_bars(summary.matrix, head=head, title=title, dpi=dpi, path=path,
                         time_axis="key (time step)")
    return plot_heatmap(summary.matrix, head=head, title=title, dpi=dpi, path=path)
