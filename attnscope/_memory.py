"""How much memory is free, so that sizes too big to allocate are refused with numbers
instead of being left to the kernel's OOM killer (which gives no message at all)."""

from __future__ import annotations

import os

from attnscope.store.estimate import human

FRACTION = 0.8  # of the available memory one allocation may take


def available_memory() -> int:
    """Bytes the system can still hand out without swapping (``MemAvailable``)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def too_big(nbytes: int) -> tuple[bool, int]:
    """``(refuse, available)`` for one allocation of ``nbytes``."""
    free = available_memory()
    return nbytes > FRACTION * free, free


def size_text(shape: tuple[int, ...], itemsize: int) -> str:
    """``(1, 8, 25000, 25000) float32 = 20.0 GB``."""
    n = itemsize
    for d in shape:
        n *= int(d)
    return f"{tuple(int(d) for d in shape)} x {itemsize} bytes = {human(n)}"
