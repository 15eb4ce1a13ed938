"""Helpers shared by the benchmark scripts: thread settings, timing, machine facts, tables.

Nothing here imports NumPy at module level: the thread-count environment variables must be set
before NumPy (OpenBLAS), Numba, the OpenMP runtime of the Cython kernels and PyTorch are loaded,
so every script calls :func:`set_threads` first and imports the numerical libraries afterwards.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

#: Thread-count variables read by OpenBLAS, MKL, OpenMP (Cython kernels, PyTorch) and Numba.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def use_checkout() -> None:
    """Put the repository root first on ``sys.path`` so that the checkout's nanogan is measured."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


def set_threads(threads: int | None, passive: bool = True) -> int:
    """Fix the thread count of every numerical library; call before importing any of them.

    Parameters
    ----------
    threads : the count, or None for ``os.cpu_count()``
    passive : set ``OMP_WAIT_POLICY=PASSIVE`` (unless set) for a process where several
        frameworks take turns; False leaves it to ``nanogan.performance.configure()``

    Returns
    -------
    threads : the count in effect
    """
    t = int(threads or os.cpu_count() or 1)
    for var in THREAD_VARS:
        os.environ[var] = str(t)
    # Every framework in the process shares the cores between its OpenMP and BLAS threads; with
    # OpenMP's active waiting, one library's spinning threads starve the next one's (interleaved
    # here). Passive waiting for all of them.
    if passive:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if t == 1:  # XLA's CPU client has no thread-count flag; one thread is the one it can honour
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    if any(m in sys.modules for m in ("numpy", "torch", "jax")):
        print("warning: a numerical library was imported before the thread count was set",
              file=sys.stderr)
    return t


def time_call(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_ms(seconds: Sequence[float]) -> float:
    return 1e3 * statistics.median(seconds)


def sgemm_peak(threads: int, n: int = 1024, repeats: int = 10) -> float:
    """Best float32 ``n x n x n`` NumPy matmul rate in GFLOP/s (``2 n^3`` per product), with
    OpenBLAS on ``threads`` threads for the measurement (put back as it was after it): a process
    where ``nanogan.performance.configure()`` ran keeps OpenBLAS on one thread, and a peak taken
    there at two threads was the one-thread peak (an iteration then read 117-145% of it)."""
    import numpy as np

    from nanogan._kernels import _threads

    # OpenBLAS's own setter, not _threads.blas_threads: that one skips a count equal to the last
    # it set itself, which may not be the library's count now.
    before = _threads.current_blas_threads()
    if before:
        _threads._BLAS[0](threads)
    try:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), dtype=np.float32)
        np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
        best = min(time_call(lambda: np.matmul(a, b, out=c)) for _ in range(repeats))
    finally:
        if before:
            _threads._BLAS[0](before)
    return 2.0 * n ** 3 / best / 1e9


def real_batch(shape: Sequence[int], batch: int, seed: int = 0) -> Any:
    """Random "real" data, float32 ``(batch, *shape)`` in [-1, 1] (its content does not change
    the work done)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(batch, *shape)).astype(np.float32)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def openblas_core() -> str | None:
    """The kernel family OpenBLAS chose (``Haswell``, ``SkylakeX``, ...), or None without it.

    A machine may pin it with ``OPENBLAS_CORETYPE``; on an AVX-512 CPU pinned to ``Haswell``,
    sgemm runs at about half speed, so the benchmarks record it.
    """
    import ctypes
    import re

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if re.search(r"openblas[^/]*\.so", ln)})
    except OSError:
        return None
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                     "scipy_openblas_get_corename", "openblas_get_corename"):
            if hasattr(lib, name):
                fn = getattr(lib, name)
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, core and thread counts, library versions, nanogan's kernel set, BLAS, load."""
    import numpy as np

    import nanogan

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nanogan": nanogan.__version__,
        "kernel_set": nanogan.kernel_backend(),
        "kernel_sets_available": nanogan.available_kernels(),
    }
    try:
        cfg = np.show_config(mode="dicts")
        info["blas"] = cfg["Build Dependencies"]["blas"].get("name")
    except Exception:  # older NumPy: show_config prints only
        info["blas"] = None
    info["openblas_core"] = openblas_core()
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    info["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")
    try:
        info["loadavg_1min_at_start"] = os.getloadavg()[0]
    except OSError:
        pass
    for mod in ("torch", "jax", "jaxlib", "optax", "numba"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    return info


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (it reads as plain text on a terminal too)."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for raw, r in zip(rows, cells[1:]):
        lines.append("| " + " | ".join(c.ljust(w) if isinstance(v, str) else c.rjust(w)
                                       for v, c, w in zip(raw, r, widths)) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 100:
            return f"{v:,.0f}"
        if v >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return str(v)
