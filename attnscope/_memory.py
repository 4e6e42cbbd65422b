"""How much memory is free, so that sizes too big to allocate are refused with numbers
instead of being left to the kernel's OOM killer (which gives no message at all)."""

from __future__ import annotations

import math
import os

from attnscope.errors import MapTooLargeError

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


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def too_big(nbytes: int) -> tuple[bool, int]:
    """``(refuse, available)`` for one allocation of ``nbytes``."""
    free = available_memory()
    return nbytes > FRACTION * free, free


def size_text(shape: tuple[int, ...], itemsize: int) -> str:
    """``(1, 8, 25000, 25000) x 4 bytes = 20.0 GB``."""
    return f"{tuple(int(d) for d in shape)} x {itemsize} bytes = " \
           f"{gb(itemsize * math.prod(int(d) for d in shape))}"


def check_map(module: str, shape: tuple[int, ...], itemsize: int) -> None:
    """Refuse to allocate a ``(batch, head, query, key)`` map that cannot fit, naming
    the selections that would: fewer heads or samples, float16."""
    batch, heads, q, k = (int(d) for d in shape)
    nbytes = batch * heads * q * k * itemsize
    refuse, free = too_big(nbytes)
    if not refuse:
        return
    budget = FRACTION * free
    per_head = max(1, q * k * itemsize)  # one head of one sample
    options = []
    if budget // (per_head * batch) >= 1:
        options.append(f"heads= (at most {int(budget // (per_head * batch))} of {heads})")
    if batch > 1 and budget // (per_head * heads) >= 1:
        options.append(f"samples= (at most {int(budget // (per_head * heads))} of {batch} "
                       "per call)")
    if budget // per_head >= 1 and not options:
        options.append("heads=[0] with samples=[0]")
    if itemsize > 2 and nbytes // 2 <= budget:
        options.append("dtype='float16' (half the size)")
    if not options:
        options.append(f"a shorter sequence (one head of one sample is {gb(per_head)})")
    raise MapTooLargeError(
        f"attention of {module!r} would be {size_text(shape, itemsize)} but only "
        f"{gb(free)} of memory is available; capture it with " + " or ".join(options) +
        "; a store (store=...) keeps memory flat across calls, not within one")
