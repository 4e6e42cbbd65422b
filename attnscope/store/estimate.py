"""Will the capture fit? Estimated from the first batch actually written (so compression
is measured, not guessed) and the number of samples the caller expects."""

from __future__ import annotations

import shutil
from pathlib import Path

from attnscope.store.errors import DiskSpaceError

MARGIN = 1.05  # compression of later batches drifts a little; keep 5% headroom


def human(n: float) -> str:
    """Bytes as a short human string (``1.2 GB``)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def estimate_total(batch_bytes: int, batch_samples: int, expected_samples: int) -> int:
    """Bytes for ``expected_samples`` at the rate of the first batch."""
    return int(batch_bytes * expected_samples / max(1, batch_samples) * MARGIN)


def check_disk(root: Path, batch_bytes: int, batch_samples: int, expected_samples: int) -> int:
    """Raise :class:`DiskSpaceError` (one line) when the rest of the capture will not fit.

    ``batch_bytes`` are already on disk, so only the remainder must still be free.
    """
    total = estimate_total(batch_bytes, batch_samples, expected_samples)
    free = shutil.disk_usage(root).free
    if total - batch_bytes > free:
        raise DiskSpaceError(
            f"capture needs ~{human(total)} ({expected_samples} samples at "
            f"{human(batch_bytes / max(1, batch_samples))} each) but only {human(free)} is free "
            f"at '{root}'; select fewer heads/samples/modules (heads=, samples=, include=), "
            "use reduce='mean', dtype='float16', or a lossy keepbits"
        )
    return total
