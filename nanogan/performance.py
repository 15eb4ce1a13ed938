"""The speed settings that change the whole process, in one opt-in place.

Importing nanogan, building layers or a :class:`~nanogan.GAN` changes nothing outside nanogan: no
environment variable, no allocator setting, no BLAS thread count. Three process-wide settings make
training faster on a CPU, and :func:`configure` applies them; the examples, ``nanogan train`` /
``bench`` and the benchmarks call it first thing, and ``python -m nanogan info`` shows what is set
(:func:`settings`). A library user decides for their own process::

    import nanogan.performance
    nanogan.performance.configure()          # before the first training step

=================  =====================================================================
setting            what it does, and why
=================  =====================================================================
``adaptive_blas``  small products on one thread; large ones cut into blocks over the
                   compiled kernel set's own threads, one single-threaded BLAS call per
                   block, with OpenBLAS kept on one thread (``own_threads``; where the
                   CBLAS of NumPy's OpenBLAS is found, :mod:`nanogan._kernels._cblas`),
                   else on all of OpenBLAS's threads. One pool then runs the products and
                   the kernels: OpenBLAS's idle workers spin for about 0.1 s, so a kernel
                   run in parallel after a product shared its core with one (DCGAN-28 b256
                   and b64 on 2 threads: 15-19% faster). Switches OpenBLAS's thread count,
                   which every other ``@`` in the process shares: with ``own_threads``
                   they run on one thread (the plain layers' ``x @ W.T`` included; nanogan's
                   metrics call the same ``matmul`` as the plan). Restoring the count after
                   each product instead let the plain ``@`` of a plan's Maxout layers wake
                   OpenBLAS's spinning workers again: the 2014 example's iteration ran
                   112-120 ms instead of 39-41 ms on 2 threads.
``omp_passive``    ``OMP_WAIT_POLICY=PASSIVE`` (unless the variable is set), only where the
                   products run on OpenBLAS's threads: OpenMP threads that finished a
                   compiled kernel then sleep instead of spinning, so they do not starve
                   the BLAS product that follows. With ``own_threads`` the same threads
                   run the next product's blocks, and OpenMP's default (spin a moment,
                   then sleep) starts them sooner (MLP b64 on 2 threads: 6.6 ms passive,
                   5.6 default). OpenMP reads the variable once, when the compiled kernels
                   load (at the first kernel call), so ``configure`` must come before that;
                   :func:`settings` says whether it took effect.
``reuse_memory``   glibc keeps freed blocks up to 1 GiB for reuse (:mod:`nanogan._memory`):
                   each iteration's large temporaries are recycled instead of being
                   page-faulted and zeroed again; the process keeps its peak heap.
=================  =====================================================================

Unconfigured, the products run on OpenBLAS's own threads and the compiled kernels run serially
wherever OpenBLAS has more than one thread (:func:`nanogan._kernels._threads.blas_may_spin`):
beside its spinning workers a parallel kernel waited for the scheduler at every barrier, 3-6x
slower per iteration. Configured or not, a training step's large arrays come from nanogan's own
memory pool (:class:`nanogan._memory.workspace`), which is NumPy's memory handler only while the
step runs: no other allocation of the process goes through it.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["configure", "settings"]

_applied: dict[str, Any] = {}


def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already loaded in this process (Linux; False elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            return any(("libgomp" in line or "libomp" in line or "libiomp" in line)
                       for line in f)
    except OSError:
        return False


def configure(*, omp_passive: bool | None = None, adaptive_blas: bool = True,
              reuse_memory: bool = True) -> dict[str, Any]:
    """Apply the process-wide speed settings (each can be left out); returns :func:`settings`.

    Parameters
    ----------
    omp_passive : set ``OMP_WAIT_POLICY=PASSIVE`` if the variable is unset (an explicit setting
        is kept); None (the default): only where the large products will not run on the kernel
        set's own threads (no CBLAS found, or ``adaptive_blas=False``)
    adaptive_blas : one BLAS thread for small products, the large ones on nanogan's threads
        (or on all of OpenBLAS's)
    reuse_memory : keep freed memory for reuse (glibc; ``NANOGAN_REUSE_MEMORY=0`` refuses)
    """
    from ._kernels import _threads
    from ._memory import reuse_freed_memory

    if omp_passive is None:
        omp_passive = not (adaptive_blas and _own_threads_possible())
    if omp_passive:
        if "OMP_WAIT_POLICY" not in os.environ:
            _applied["omp_wait_policy_late"] = _openmp_loaded()
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _threads.adaptive_blas(adaptive_blas)
    if reuse_memory:
        _applied["reuse_memory"] = reuse_freed_memory()
    _applied["configured"] = True
    return settings()


def _own_threads_possible() -> bool:
    """Whether a compiled kernel set is chosen and NumPy's OpenBLAS offers CBLAS (without
    loading the set, which would start OpenMP before its settings are made)."""
    from . import _kernels
    from ._kernels import _cblas

    return bool(_cblas.GEMM) and _kernels._active[0] in ("cython", "numba")


def settings() -> dict[str, Any]:
    """What is set: ``configured`` (whether :func:`configure` ran), ``omp_wait_policy`` (the
    variable's value, and ``omp_wait_policy_effective``: False when it was set after the OpenMP
    runtime had loaded), ``adaptive_blas``, ``own_threads`` (the large products run on the kernel
    set's threads), ``blas_threads`` (the library's own count), ``reuse_memory`` (glibc keeps
    freed memory, process-wide) and ``memory_pool`` (nanogan's training steps take their large
    arrays from nanogan's own pool of freed blocks, :class:`nanogan._memory.workspace`: not
    process-wide, and on without :func:`configure`)."""
    from ._kernels import _threads
    from ._memory import pool_on

    return {
        "configured": bool(_applied.get("configured")),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_effective": not _applied.get("omp_wait_policy_late", False),
        "adaptive_blas": _threads.adaptive_blas_on(),
        "own_threads": _threads.adaptive_blas_on() and _own_threads_possible(),
        "blas_threads": _threads.BLAS_THREADS,
        "reuse_memory": bool(_applied.get("reuse_memory", False)),
        "memory_pool": pool_on(),
    }


def describe() -> str:
    """One line for ``python -m nanogan info``."""
    s = settings()
    if not s["configured"]:
        from ._kernels import _threads

        serial = (f"; products on BLAS's {s['blas_threads']} threads, kernels serial"
                  if _threads.blas_may_spin() else "")
        pool = "; training steps on nanogan's memory pool" if s["memory_pool"] else ""
        return ("performance: not configured (nanogan.performance.configure() was not called: "
                f"nothing process-wide is changed{serial}{pool})")
    omp = s["omp_wait_policy"] or "unset"
    if not s["omp_wait_policy_effective"]:
        omp += " (set after OpenMP loaded: not in effect)"
    products = ("large products on nanogan's threads, BLAS on 1" if s["own_threads"] else
                f"library count {s['blas_threads']}")
    return (f"performance: OMP_WAIT_POLICY={omp}, adaptive BLAS threads "
            f"{'on' if s['adaptive_blas'] else 'off'} ({products}), "
            f"memory reuse {'on' if s['reuse_memory'] else 'off'}, "
            f"memory pool {'on' if s['memory_pool'] else 'off'}")
