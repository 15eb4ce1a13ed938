"""The CBLAS ``gemm`` of the OpenBLAS that NumPy loaded, for products split over nanogan's threads.

OpenBLAS runs a product on its own worker threads, and a worker that finished keeps spinning on
its core for about 2^28 cycles (a tenth of a second) before it sleeps, waiting for the next
product. A compiled kernel that runs in parallel in that window shares a core with the spinning
worker, so it gains nothing from its second thread (measured on DCGAN-28 b256, 2 cores: im2col
65 ms per iteration on one thread or two). The spin time can only be set before NumPy loads
OpenBLAS (``OPENBLAS_THREAD_TIMEOUT``).

So nanogan can run its products on its own threads instead: OpenBLAS stays on one thread, and a
large product ``C = A B`` is cut into as many blocks of rows (or of columns) of ``C`` as the
compiled kernel set has threads, each block one single-threaded CBLAS call from one of the set's
threads (``gemm`` of :mod:`nanogan._kernels._common`). One pool of threads then does every
parallel step of an iteration, products and kernels alike; see
:func:`nanogan._kernels._threads.matmul`.

This module lists the OpenBLAS libraries NumPy loaded (:func:`loaded_openblas`, also where
:mod:`nanogan._kernels._threads` finds the thread-count switch), finds ``cblas_sgemm`` and
``cblas_dgemm`` among them (the ``scipy_openblas64_`` names of NumPy's wheels, 64-bit
integers, or the plain names, 32-bit integers) and describes an operand's layout as CBLAS wants
it.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator

import numpy as np

#: CBLAS enums: row-major storage, no transpose, transpose.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

_NAMES = (("scipy_cblas_{}gemm64_", True), ("cblas_{}gemm64_", True),
          ("scipy_cblas_{}gemm", False), ("cblas_{}gemm", False))


def loaded_openblas() -> Iterator[ctypes.CDLL]:
    """The OpenBLAS libraries loaded in this process (NumPy's), found in ``/proc/self/maps``
    (Linux; none elsewhere), opened with ``ctypes``."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if re.search(r"openblas[^/]*\.so", line)})
    except OSError:
        return
    for path in paths:
        try:
            yield ctypes.CDLL(path)
        except OSError:
            continue


def _find() -> dict[np.dtype, tuple[int, bool]]:
    """``{dtype: (address of cblas_?gemm, whether its integers are 64-bit)}`` for float32 and
    float64; empty when no OpenBLAS with both functions is loaded."""
    for lib in loaded_openblas():
        for pattern, wide in _NAMES:
            s, d = pattern.format("s"), pattern.format("d")
            if hasattr(lib, s) and hasattr(lib, d):
                fns = {np.dtype(np.float32): getattr(lib, s),
                       np.dtype(np.float64): getattr(lib, d)}
                return {dt: (ctypes.cast(fn, ctypes.c_void_p).value, wide)
                        for dt, fn in fns.items()}
    return {}


#: ``{dtype: (function address, 64-bit integers)}`` (empty: products stay with ``np.matmul``).
GEMM: dict[np.dtype, tuple[int, bool]] = _find()


def layout(x: np.ndarray) -> tuple[int, int] | None:
    """How CBLAS reads the 2-D array ``x`` in row-major mode: ``(TRANS or NO_TRANS, leading
    dimension)``, or None when its layout is neither rows nor columns of unit stride (such an
    operand goes to ``np.matmul``, which copies it)."""
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        return None
    (s0, s1), size = x.strides, x.itemsize
    if s1 == size and s0 % size == 0 and s0 >= size * max(x.shape[1], 1):
        return NO_TRANS, s0 // size
    if s0 == size and s1 % size == 0 and s1 >= size * max(x.shape[0], 1):
        return TRANS, s1 // size
    return None
