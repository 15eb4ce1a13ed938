"""Reusing freed memory across training iterations.

A training iteration allocates the same large temporaries every time (im2col columns, layer
outputs, gradients: tens of MB for DCGAN-28). By default glibc serves blocks above 128 KiB to
32 MiB with fresh ``mmap`` pages and returns them to the kernel on free, so every iteration pays
a page fault and a zero-fill for every page of every temporary again: about a fifth of a DCGAN-28
iteration. :func:`reuse_freed_memory` raises glibc's mmap and trim thresholds so that freed blocks
stay in the heap and the next iteration reuses them: the workspaces are recycled across
iterations by the allocator, without any layer holding on to a buffer (so every cache stays
valid for as long as its owner keeps it).

It is process-wide (it applies to every allocation of the process, not only nanogan's) and the
process keeps its peak heap instead of shrinking after a large free. So nanogan does not do it on
its own: :func:`nanogan.performance.configure` calls it (the examples, ``nanogan train`` and the
benchmarks do); ``NANOGAN_REUSE_MEMORY=0`` refuses it. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: list[bool] = []


def reuse_freed_memory(threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks up to ``threshold`` bytes for reuse; True if it took effect.

    Called once per process (later calls return the first result).
    """
    if _done:
        return _done[0]
    ok = False
    if os.environ.get("NANOGAN_REUSE_MEMORY", "1") != "0" and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold)
                      and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
        except (OSError, AttributeError):  # not glibc
            ok = False
    _done.append(ok)
    return ok
