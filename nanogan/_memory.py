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

What nanogan does on its own is narrower: :class:`workspace`, entered by every ``GAN.step``,
makes the compiled extension's pool (``nanogan/_kernels/_pool.h``) NumPy's memory handler for
the duration of the step, so that the step's large arrays reuse the blocks that earlier steps
freed. It touches no other allocation of the process; ``NANOGAN_REUSE_MEMORY=0`` turns it off
too, and :func:`release_pool` gives its blocks back.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

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


# ------------------------------------------------------------------------ nanogan's own pool
# The compiled extension's NumPy memory handler (nanogan/_kernels/_pool.h): while a training step
# runs, large arrays come from a pool of blocks freed by earlier steps, so that an iteration does
# not pay a page fault and a zero-fill per page of every temporary. It is set for the duration of
# the step only (NumPy's handler is a context variable): the rest of the process, and every array
# allocated outside a step, keeps NumPy's default allocator. Without the extension it does
# nothing.
_pool_state: dict[str, object] = {}


def _pool_module() -> object | None:
    if "module" not in _pool_state:
        mod = None
        if os.environ.get("NANOGAN_REUSE_MEMORY", "1") != "0":
            try:
                from ._kernels import _cython_kernels as mod  # type: ignore[no-redef]
            except ImportError:
                mod = None
            if mod is not None and not hasattr(mod, "pool_enter"):
                mod = None
        _pool_state["module"] = mod
        _pool_state.setdefault("on", mod is not None)
        _pool_state["on"] = bool(_pool_state["on"]) and mod is not None
    return _pool_state["module"]


def pool_available() -> bool:
    """True where the compiled extension provides the pool (and ``NANOGAN_REUSE_MEMORY`` is not
    ``0``)."""
    return _pool_module() is not None


def use_pool(on: bool) -> bool:
    """Turn the pool of :class:`workspace` on or off; returns whether it is on (off where it is
    not available)."""
    _pool_state["on"] = bool(on) and pool_available()
    if not _pool_state["on"] and _pool_module() is not None:
        _pool_module().pool_release()  # type: ignore[attr-defined]
    return bool(_pool_state["on"])


def pool_on() -> bool:
    """Whether :class:`workspace` uses the pool."""
    _pool_module()
    return bool(_pool_state["on"])


def pool_stats() -> dict[str, int]:
    """The pool's ``blocks`` and ``bytes`` kept, its byte ``limit``, and its ``hits`` and
    ``misses`` (allocations of 64 KiB or more served from it, or not); empty without it."""
    mod = _pool_module()
    return dict(mod.pool_stats()) if mod is not None else {}  # type: ignore[attr-defined]


def release_pool() -> int:
    """Give the pool's kept blocks back to the C library; returns the bytes released."""
    mod = _pool_module()
    return int(mod.pool_release()) if mod is not None else 0  # type: ignore[attr-defined]


class workspace:
    """``with workspace():`` NumPy allocations of 64 KiB or more inside the block come from (and
    go back to) nanogan's pool of freed blocks, where :func:`pool_on`; else nothing changes.
    Arrays allocated inside stay valid after the block: each is freed through the pool whenever
    its last reference goes."""

    __slots__ = ("_previous",)

    def __enter__(self) -> workspace:
        self._previous = None
        if "module" not in _pool_state:
            _pool_module()
        if _pool_state["on"]:
            self._previous = _pool_state["module"].pool_enter()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            _pool_state["module"].pool_exit(self._previous)  # type: ignore[attr-defined]
            self._previous = None


def pooled(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a training step so that it runs inside :class:`workspace` (about half a
    microsecond a call): ``GAN.d_step``, ``g_step`` and their subclasses' overrides."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with workspace():
            return method(*args, **kwargs)

    return wrapper
