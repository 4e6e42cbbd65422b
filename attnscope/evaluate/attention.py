"""The test-set attention of one module: streamed from the store into
``attention_test.npy`` (in the dtype it was captured in) and reduced for the figure: the
first few samples and the mean over the test set, or one chosen sample.

Memory stays bounded however large the test set: the store's exporter reads samples in
chunks of about ``chunk_bytes`` into a memory-mapped ``.npy``, and the mean is summed
from the same chunks. Batches of
different lengths are NaN-padded to the longest by the store, and the mean skips NaN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.entries import base_name, is_effective
from attnscope.evaluate.batches import EvaluationError
from attnscope.maps import is_one_d
from attnscope.store.exports import CHUNK_BYTES

SAMPLES_SHOWN = 4  # test samples drawn before their mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure



@dataclass
class AttentionSummary:
    """What was exported, and the matrix the figure shows.

    Attributes:
        matrix: ``(head, query, key)``: the mean over samples, or one sample.
        shape: shape of the ``.npy``: ``(sample, key)`` for 1-D attention, else
            ``(sample, head, query, key)``.
        what: ``"test samples 0-3 and the mean over all N"`` or ``"test sample i"``.
        panels: what the figure draws, ``(title, (head, query, key))``: the first few
            test samples and then their mean over the whole test set, or one sample.
        dtype: the dtype of the ``.npy`` (the store's: what was captured).
    """

    module: str
    kind: str
    matrix: np.ndarray
    shape: tuple[int, ...]
    what: str
    panels: list[tuple[str, np.ndarray]] = field(default_factory=list)
    dtype: str = "float32"

    @property
    def one_d(self) -> bool:
        """One weight per key in one query row: drawn as bars."""
        return is_one_d(self.matrix.shape)

    def describe(self) -> dict[str, Any]:
        return {"module": self.module, "kind": self.kind, "shape": list(self.shape),
                "dtype": self.dtype, "figure": self.what}


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
    plain = [m for m in dense if not is_effective(m)]
    if not plain:
        raise EvaluationError("only graph attention was captured; evaluate draws dense maps "
                              "(use 'attnscope export' for edge weights)")
    return plain[-1]


def export_attention(store: Any, module: str, step: str, path: str | os.PathLike,
                     sample: int | None = None, chunk_bytes: int = CHUNK_BYTES
                     ) -> AttentionSummary:
    """Write all samples of ``module`` to ``path`` (``.npy``, streamed by the store's one
    exporter) and reduce them on the way."""
    from attnscope.store.exports import write_npy

    n = store.num_samples(module, step)
    sums: list[np.ndarray] = []  # [total, count] over samples, per (head, query, key)

    def accumulate(block: np.ndarray) -> None:
        valid = ~np.isnan(block)
        if not sums:
            sums.extend([np.zeros(block.shape[1:]), np.zeros(block.shape[1:], np.int64)])
        sums[0] += np.where(valid, block, 0.0).sum(axis=0)
        sums[1] += valid.sum(axis=0)

    if sample is not None and not -n <= sample < n:
        raise EvaluationError(f"attention sample {sample} out of range: the test set "
                              f"has {n} samples")
    dtype = str(store.meta["steps"].get(step, {}).get("dtype", "float32"))
    shape = write_npy(store, module, step, path, chunk_bytes=chunk_bytes, each=accumulate,
                      dtype=dtype)
    total, count = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)
    if sample is None:
        shown = list(range(min(SAMPLES_SHOWN, n)))
        panels = [(f"test sample {i}", store.read(module, step, samples=[i])[0])
                  for i in shown]
        if n > 1:
            panels.append((f"MEAN over all {n} test samples (not a sample)", mean))
        what = (f"test samples {shown[0]}-{shown[-1]} and the mean over all {n}" if n > 1
                else "test sample 0")
        matrix = mean
    else:
        matrix = store.read(module, step, samples=[sample])[0]
        what = f"test sample {sample % n}"
        panels = [(what, matrix)]
    kind = str(store.module_info(module).get("kind", "self"))
    return AttentionSummary(module, kind, matrix.astype(np.float32), shape, what,
                            [(t, m.astype(np.float32)) for t, m in panels], dtype)


def plot_attention(summary: AttentionSummary, path: str | os.PathLike | None = None,
                   dpi: float = 150) -> Figure:
    """The first few test samples and their mean over the test set (titled as a mean),
    or the one chosen sample: bars for 1-D attention, head-mean heatmaps otherwise."""
    from attnscope.evaluate.attention_figure import plot_attention_panels

    panels = summary.panels or [(summary.what, summary.matrix)]
    return plot_attention_panels(panels, summary.module, summary.one_d,
                                 summary.matrix.shape[0], path, dpi)
