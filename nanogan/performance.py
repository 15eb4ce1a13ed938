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
``omp_passive``    ``OMP_WAIT_POLICY=PASSIVE`` unless set: OpenMP threads that finished a
                   compiled kernel sleep instead of spinning, so they do not starve the
                   BLAS product that follows (a DCGAN-28 iteration ran 2x slower on 2
                   threads than on 1 without it). OpenMP reads it once, when the compiled
                   kernels load (at the first kernel call), so ``configure`` must come
                   before that; :func:`settings` says whether it took effect.
``adaptive_blas``  small products on one BLAS thread, large ones on all
                   (:mod:`nanogan._kernels._threads`): switches OpenBLAS's thread count,
                   which every other ``@`` in the process shares.
``reuse_memory``   glibc keeps freed blocks up to 1 GiB for reuse (:mod:`nanogan._memory`):
                   each iteration's large temporaries are recycled instead of being
                   page-faulted and zeroed again; the process keeps its peak heap.
=================  =====================================================================
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


def configure(*, omp_passive: bool = True, adaptive_blas: bool = True,
              reuse_memory: bool = True) -> dict[str, Any]:
    """Apply the process-wide speed settings (each can be left out); returns :func:`settings`.

    Parameters
    ----------
    omp_passive : set ``OMP_WAIT_POLICY=PASSIVE`` if the variable is unset (an explicit setting
        is kept)
    adaptive_blas : switch the BLAS thread count per product size
    reuse_memory : keep freed memory for reuse (glibc; ``NANOGAN_REUSE_MEMORY=0`` refuses)
    """
    from ._kernels import _threads
    from ._memory import reuse_freed_memory

    if omp_passive:
        if "OMP_WAIT_POLICY" not in os.environ:
            _applied["omp_wait_policy_late"] = _openmp_loaded()
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _threads.adaptive_blas(adaptive_blas)
    if reuse_memory:
        _applied["reuse_memory"] = reuse_freed_memory()
    _applied["configured"] = True
    return settings()


def settings() -> dict[str, Any]:
    """What is set: ``configured`` (whether :func:`configure` ran), ``omp_wait_policy`` (the
    variable's value, and ``omp_wait_policy_effective``: False when it was set after the OpenMP
    runtime had loaded), ``adaptive_blas``, ``blas_threads`` (the library's own count) and
    ``reuse_memory``."""
    from ._kernels import _threads

    return {
        "configured": bool(_applied.get("configured")),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_effective": not _applied.get("omp_wait_policy_late", False),
        "adaptive_blas": _threads.adaptive_blas_on(),
        "blas_threads": _threads.BLAS_THREADS,
        "reuse_memory": bool(_applied.get("reuse_memory", False)),
    }


def describe() -> str:
    """One line for ``python -m nanogan info``."""
    s = settings()
    if not s["configured"]:
        return ("performance: not configured (nanogan.performance.configure() was not called: "
                "nothing process-wide is changed)")
    omp = s["omp_wait_policy"] or "unset"
    if not s["omp_wait_policy_effective"]:
        omp += " (set after OpenMP loaded: not in effect)"
    return (f"performance: OMP_WAIT_POLICY={omp}, adaptive BLAS threads "
            f"{'on' if s['adaptive_blas'] else 'off'} (library count {s['blas_threads']}), "
            f"memory reuse {'on' if s['reuse_memory'] else 'off'}")
