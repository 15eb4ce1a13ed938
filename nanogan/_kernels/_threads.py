"""Thread policy: when a matrix product or a compiled kernel runs on one core or on all of them.

A parallel region pays only when its work is large next to the cost of handing it out and waiting
for the slowest thread. On an idle machine that cost is microseconds; on a shared one, where
another process may hold the second core, a thread that is not scheduled makes every barrier wait
for a whole scheduler time slice (milliseconds). Measured on a loaded 2-core machine, an MLP GAN
iteration of ~20 small products took 19 ms with one BLAS thread and ~380 ms with two. So nanogan
parallelises only work that is large enough to hide that wait:

* :func:`matmul` runs a product on one BLAS thread below :data:`BLAS_PARALLEL_MIN_FLOPS`
  floating-point operations; above it, cut into blocks over the compiled kernel set's threads,
  one single-threaded BLAS call each (:func:`use_gemm`, :mod:`nanogan._kernels._cblas`: then
  one pool of threads runs products and kernels, and no idle BLAS worker spins on a core that
  a kernel needs), or, without a compiled set or CBLAS, on the BLAS library's own threads;
* the compiled kernels run their serial loop below :data:`KERNEL_PARALLEL_MIN` elements
  (see :mod:`nanogan._kernels._common`);

and only while the machine has cores to spare: :func:`machine_is_free` is true while the 1-minute
load average is at most :data:`MAX_LOAD` (default: the number of cores plus one half; checked at
most once a second). On the loaded machine above, even the large products of DCGAN-28 ran 2-3x
faster on one thread than on two; on an idle one, two threads are faster for large work.

Switching the BLAS library's thread count is process-wide, so it is off until asked for:
:func:`nanogan.performance.configure` (which the examples, ``nanogan train`` and the benchmarks
call) turns it on with :func:`adaptive_blas`; until then :func:`matmul` is plain ``np.matmul`` on
the BLAS library's own thread count, nothing of the process is changed, and the compiled kernels
run serially while that count is above one (:func:`blas_may_spin`).

The thresholds can be set with the environment variables ``NANOGAN_BLAS_PARALLEL_MIN_FLOPS``,
``NANOGAN_KERNEL_PARALLEL_MIN`` and ``NANOGAN_PARALLEL_MAX_LOAD`` (read at import; ``0`` for the
first two and ``inf`` for the third parallelise everything the thread counts allow), and the
convolution tiles with ``NANOGAN_CONV_THREAD_TILE_ELEMENTS`` and
``NANOGAN_CONV_TILE_ELEMENTS``. The BLAS
thread count is switched through OpenBLAS's ``openblas_set_num_threads`` (found with ``ctypes``
among the libraries loaded by NumPy); with another BLAS, :func:`matmul` is plain ``np.matmul``.
That switch is process-wide: after a small nanogan product, NumPy's own ``@`` elsewhere in the
process also runs on one thread until the next large one (:func:`blas_threads` sets it back).
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from collections.abc import Callable

import numpy as np

from . import _cblas

__all__ = ["BLAS_PARALLEL_MIN_FLOPS", "KERNEL_PARALLEL_MIN", "MAX_LOAD", "adaptive_blas",
           "adaptive_blas_on", "blas_threads",
           "machine_is_free", "matmul", "matmul_pair", "own_threads", "use_gemm"]


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return default if math.isnan(value) else max(0.0, value)


def _env_int(name: str, default: int) -> int:
    value = _env_float(name, default)
    return int(value) if math.isfinite(value) else 2**62


#: Matrix products of fewer floating-point operations (``2 m n k``) run on one thread. 5 MFLOP:
#: with the products cut over the kernel set's own threads (:func:`use_gemm`), two threads pay
#: from about there on an idle 2-core machine (20 -> 5 MFLOP: MLP b64 4.68 -> 4.43 ms, MLP b256
#: 10.83 -> 10.65 ms, DCGAN-28 b64 87 -> 86 ms; 50 MFLOP was slower on all three;
#: ``benchmarks/sweep_thresholds.py --threads 2 --blas 5e6,2e7,5e7 --kernel 65536``). On a loaded
#: machine :func:`machine_is_free` keeps them serial.
BLAS_PARALLEL_MIN_FLOPS: int = _env_int("NANOGAN_BLAS_PARALLEL_MIN_FLOPS", 5_000_000)

#: Elementwise and data-movement kernels on fewer elements run their serial loop. 65,536: with
#: the products on the kernel set's own threads (:func:`use_gemm`), no spinning BLAS worker
#: holds the second core, and parallel kernels pay from there (2 threads, 1M -> 64k elements:
#: DCGAN-28 b64 116 -> 93 ms, MLP b64 5.5 -> 5.0 ms, MLP b256 11.3 -> 10.9 ms;
#: ``benchmarks/sweep_thresholds.py --threads 2 --blas 2e7 --kernel 1048576,262144,65536,16384``).
KERNEL_PARALLEL_MIN: int = _env_int("NANOGAN_KERNEL_PARALLEL_MIN", 1 << 16)

#: Normal noise (``normal_from_bits``) costs about 1.6 ns a value on one core, several times an
#: elementwise kernel's, so it runs in parallel from far fewer values: 2,048 float32 values take
#: 0.0042 ms on one thread and 0.0035 on two, 25,600 (an MLP batch of 256 x 100) 0.041 and 0.022
#: (the Cython set, 2 cores).
NOISE_PARALLEL_MIN: int = _env_int("NANOGAN_NOISE_PARALLEL_MIN", 1 << 11)

#: A convolution product (``im2col_matmul``, ``matmul_col2im``, ``matmul_im2col_t``) whose column
#: matrix holds more elements than this runs by tiles of the batch, each tile's columns made, used
#: and dropped while they are in the cache, never the whole column matrix (DCGAN-28's 64 -> 128
#: convolution at batch 256: 51 MB). This is the tile of the kernel sets that unfold a tile and
#: then run its product on all threads (Numba); 4 MB in float32 (measured on the DCGAN-28
#: iteration at batch 256, each setting in its own process, ``benchmarks/sweep_thresholds.py
#: --configs dcgan256 --tiles 1e12,1048576 --rounds 3``: 628 -> 568 ms on one thread; on two,
#: 449 -> 442, and 450 at 2^19).
CONV_TILE_ELEMENTS: int = _env_int("NANOGAN_CONV_TILE_ELEMENTS", 1 << 20)

#: The tile of the Cython set, whose threads each take whole tiles (unfold, then a
#: single-threaded product) while the products run on nanogan's threads: at most this many
#: column-matrix elements per tile, 2 MB in float32, so that a tile stays in its core's L2 cache
#: (2 MB on the machine measured). ``benchmarks/sweep_thresholds.py --configs dcgan256,dcgan64
#: --blas 5e6 --kernel 65536 --tiles 262144,524288,1048576 --rounds 3``, medians in ms:
#: 2 threads, b256 314 / 307 / 333, b64 86 / 82 / 83; 1 thread, b256 605 / 588 / 578, b64 155 /
#: 145 / 142 (2^18 / 2^19 / 2^20); again with the AVX-512 unfolding (2^18 / 2^19): 2 threads
#: b256 273 / 260, b64 72 / 67; 1 thread b256 486 / 467, b64 124 / 122.
CONV_THREAD_TILE_ELEMENTS: int = _env_int("NANOGAN_CONV_THREAD_TILE_ELEMENTS", 1 << 19)


def conv_tile_images(per_image: int, n: int, limit: int, threads: int = 1) -> int:
    """Images per tile: tiles of at most ``limit`` column-matrix elements (``per_image`` per
    image; one image at least), their number rounded up to a multiple of ``threads`` so that
    the threads get equal shares."""
    tiles = -(-max(1, per_image) * n // max(1, limit))
    tiles = -(-tiles // threads) * threads
    return max(1, -(-n // max(1, tiles)))


#: Parallel regions run only while the 1-minute load average is at most this.
MAX_LOAD: float = _env_float("NANOGAN_PARALLEL_MAX_LOAD", (os.cpu_count() or 1) + 0.5)

_load = [-math.inf, True]  # time of the last look at the load average, and its verdict


def machine_is_free() -> bool:
    """True while the 1-minute load average is at most :data:`MAX_LOAD` (looked up at most once a
    second; always true where the load average is unavailable)."""
    now = time.monotonic()
    if now - _load[0] >= 1.0:
        _load[0] = now
        try:
            _load[1] = os.getloadavg()[0] <= MAX_LOAD
        except OSError:
            _load[1] = True
    return _load[1]


def parallel(size: int, threshold: int) -> bool:
    """Whether work of ``size`` (elements or operations) runs in parallel: at least
    ``threshold`` of it, on a machine with cores to spare, and no BLAS worker spinning on the
    cores it would use (:func:`blas_may_spin`)."""
    return size >= threshold and machine_is_free() and not blas_may_spin()


_spin = [-math.inf, False]  # time of the last look at the BLAS thread count, and the verdict


def blas_may_spin() -> bool:
    """True while the products run on a multi-threaded OpenBLAS's own workers: adaptive BLAS off
    (:func:`nanogan.performance.configure` not called) and OpenBLAS on more than one thread
    (looked up at most once a second, so that a count the user changes is seen).

    After each product such a worker spins on its core for about a tenth of a second
    (:mod:`nanogan._kernels._cblas`), so a compiled kernel run in parallel then shares a core
    with it, and every barrier of the kernel waits for the scheduler to hand the core back.
    Measured on an idle 2-core machine without ``configure()``, kernels in parallel against
    kernels serial (one process each, alternated three times, medians in ms per iteration): MLP
    b64 24-36 against 7.4-8.0, MLP b256 92-108 against 17.6-18.6, DCGAN-28 b64 600-674 against
    111-168. So there the kernels run their serial loops and the products keep BLAS's threads;
    nothing of the process is changed.
    """
    if _adaptive[0] or _BLAS is None:
        return False
    now = time.monotonic()
    if now - _spin[0] >= 1.0:
        _spin[0] = now
        _spin[1] = int(_BLAS[1]()) > 1
    return _spin[1]


_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
            "scipy_openblas_get_num_threads", "openblas_get_num_threads")


def _find_openblas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """``(set_num_threads, get_num_threads)`` of the OpenBLAS that NumPy loaded, else None."""
    for lib in _cblas.loaded_openblas():
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, s) for s in _GETTERS if hasattr(lib, s)), None)
        if setter is None or getter is None:
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], None
        getter.argtypes, getter.restype = [], ctypes.c_int
        return setter, getter
    return None


_BLAS = _find_openblas()
_adaptive = [False]  # switch the BLAS thread count per product (adaptive_blas)
#: The BLAS library's thread count when nanogan was imported (used for large products).
BLAS_THREADS: int = int(_BLAS[1]()) if _BLAS else 0
_current = [BLAS_THREADS]


def current_blas_threads() -> int:
    """The BLAS library's thread count right now (0 without OpenBLAS)."""
    return int(_BLAS[1]()) if _BLAS else 0


def blas_threads(n: int) -> None:
    """Make the BLAS library use ``n`` threads from now on (no-op without OpenBLAS)."""
    if _BLAS is not None and n != _current[0]:
        _BLAS[0](n)
        _current[0] = n


def adaptive_blas(on: bool = True) -> bool:
    """Let :func:`matmul` run small products on one BLAS thread (process-wide: see the module
    docstring); ``on=False`` restores the library's own thread count. Returns whether the switch
    is available (OpenBLAS found) and on."""
    _adaptive[0] = bool(on)
    if not on:
        blas_threads(BLAS_THREADS)
    elif _gemm[0] is not None:
        blas_threads(1)
    return _adaptive[0] and _BLAS is not None


def adaptive_blas_on() -> bool:
    """Whether :func:`matmul` switches the BLAS thread count (see :func:`adaptive_blas`)."""
    return _adaptive[0] and _BLAS is not None


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (``np.matmul``); with :func:`adaptive_blas` on, on one BLAS thread when the
    product is small.

    Parameters
    ----------
    a : (..., m, k); b : (..., k, n); out : optional (..., m, n) array to write into

    Returns
    -------
    c : (..., m, n)

    A product over ``k = 1`` (an outer product: a Dense layer of one output unit sends
    ``dz (N, 1) @ W (1, in)`` back; a whole-window convolution of one output channel, one outer
    product per input channel) is the broadcast ``a * b``, the same values (one product per
    entry, no sum), which NumPy's multiply writes about 3x faster than BLAS does the product
    ((512, 1) @ (1, 256): 0.05 against 0.16 ms, one core; (128, 256, 1) @ (128, 1, 49): 0.9
    against 2.1 ms).
    """
    if (a.shape[-1] == 1 and min(a.ndim, b.ndim) >= 2 and b.shape[-2] == 1
            and a.dtype == b.dtype):
        return np.multiply(a, b, out=out)
    if _adaptive[0] and _BLAS is not None:
        flops = 2 * a.size * b.shape[-1]  # 2 m n k (times the batch size of a)
        par = parallel(flops, BLAS_PARALLEL_MIN_FLOPS)
        if _gemm[0] is not None:  # nanogan's threads run the large products; BLAS keeps one
            blas_threads(1)
            if par and a.ndim == 2 and b.ndim == 2:
                return _gemm[0](a, b, out, True)
        else:
            blas_threads(BLAS_THREADS if par else 1)
    return np.matmul(a, b, out=out)


#: The active compiled kernel set's ``gemm`` (None: the reference set, a device backend, or no
#: CBLAS found); see :func:`use_gemm`.
_gemm: list[Callable | None] = [None]


#: The active set's ``gemm_pair(a1, b1, out1, a2, b2) -> (c1, c2) or None``, if it has one;
#: see :func:`matmul_pair`.
_gemm_pair: list[Callable | None] = [None]


def use_gemm(gemm: Callable | None, gemm_pair: Callable | None = None) -> None:
    """Let :func:`matmul`, while :func:`adaptive_blas` is on, cut its large products over the
    threads of a compiled kernel set (``gemm``, see :mod:`nanogan._kernels._cblas`), with BLAS on
    one thread, and :func:`matmul_pair` run two products side by side (``gemm_pair``): called by
    :func:`nanogan._kernels.set_backend`. None: BLAS's own threads."""
    _gemm[0] = gemm if _cblas.GEMM else None
    _gemm_pair[0] = gemm_pair if _gemm[0] is not None else None
    if _adaptive[0] and _BLAS is not None:
        blas_threads(1 if _gemm[0] is not None else BLAS_THREADS)


def own_threads() -> bool:
    """Whether :func:`matmul` runs its large products on the kernel set's threads."""
    return adaptive_blas_on() and _gemm[0] is not None


def matmul_pair(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray,
                out1: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(a1 @ b1, a2 @ b2)``, two independent products (a layer's weight and input gradients).

    On two threads of the kernel set (:func:`own_threads`, a set with ``gemm_pair``) the two run
    side by side, each one single-threaded BLAS call on its own thread: one meeting of the
    threads instead of two, and each product whole instead of cut in halves (a Dense layer's two
    backward products at batch 64-512: 9-21% faster than one after the other, each over both
    threads). Otherwise, and where the set refuses them, :func:`matmul` twice. ``out1``: where
    to write ``a1 @ b1``.
    """
    pair = _gemm_pair[0]
    if (pair is not None and _adaptive[0] and a1.ndim == b1.ndim == a2.ndim == b2.ndim == 2
            and a1.shape[1] > 1 and a2.shape[1] > 1
            and parallel(2 * (a1.size * b1.shape[1] + a2.size * b2.shape[1]),
                         BLAS_PARALLEL_MIN_FLOPS)):
        blas_threads(1)
        res = pair(a1, b1, out1, a2, b2)
        if res is not None:
            return res
    return matmul(a1, b1, out1), matmul(a2, b2)
