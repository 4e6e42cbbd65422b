"""Which rows of each validation or test batch belong to the callback's fixed sample
subset: by dataset index where the loader's batch sampler says it (the same samples
every epoch, whatever the shuffling or the DDP rank), by position in the stream else."""

from __future__ import annotations

from typing import Any

from attnscope.data import batch_size


class SampleSubset:
    """The first ``limit`` samples (dataset order; ``None``: all) of one loader."""

    def __init__(self, loader: Any, limit: int | None) -> None:
        self.limit, self.seen = limit, 0
        self.batches = batch_indices(loader)

    def ids(self) -> list[int] | None:
        """Dataset indices of the captured samples, in capture order (None: unknown)."""
        if self.batches is None:
            return None
        return [i for b in self.batches for i in b if self.limit is None or i < self.limit]

    def rows(self, batch: Any, batch_idx: int, dataloader_idx: int) -> list[int]:
        """Rows of this batch inside the subset (the first loader only)."""
        if dataloader_idx != 0:
            return []
        if self.batches is not None and batch_idx < len(self.batches):
            ids = self.batches[batch_idx]
        else:  # iterable datasets: position in the stream
            size = batch_size(batch)
            ids = list(range(self.seen, self.seen + size))
            self.seen += size
        return [r for r, i in enumerate(ids) if self.limit is None or i < self.limit]


def batch_indices(loader: Any) -> list[list[int]] | None:
    """Dataset indices of every batch, in order, from the loader's batch sampler (a
    DistributedSampler inside gives this rank's share)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    if batch_sampler is None:
        return None
    try:
        return [list(b) for b in batch_sampler]
    except TypeError:
        return None
