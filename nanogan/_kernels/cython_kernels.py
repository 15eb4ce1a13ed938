"""Cython kernel set: the reference ops on top of the compiled extension ``_cython_kernels``.

The extension (``nanogan/_kernels/_cython_kernels.pyx``, built by ``pip install -e .``) holds
low-level kernels over the fused type float/double that run without the GIL, with OpenMP
``prange`` loops (``OMP_NUM_THREADS`` threads); this module gives them the reference signatures
through the shared front end :class:`nanogan._kernels._common.CompiledOps`. When the extension
is not built, importing this module raises ``ImportError`` and the dispatcher falls back to the
next kernel set.
"""

from __future__ import annotations

import numpy as np

from . import _cblas
from . import _cython_kernels as _ext  # ImportError when the extension is not built
from ._common import CompiledOps

NAME = "cython"

_f32, _f64 = _cblas.GEMM.get(np.dtype(np.float32)), _cblas.GEMM.get(np.dtype(np.float64))
_ext.set_cblas(_f32[0] if _f32 else 0, _f64[0] if _f64 else 0, bool(_f32 and _f32[1]))
_OPS = CompiledOps(_ext)

im2col = _OPS.im2col
col2im = _OPS.col2im
im2col_matmul = _OPS.im2col_matmul
matmul_col2im = _OPS.matmul_col2im
matmul_im2col_t = _OPS.matmul_im2col_t
window_forward = _OPS.window_forward
window_weight_grad = _OPS.window_weight_grad
window_input_grad = _OPS.window_input_grad
leaky_relu = _OPS.leaky_relu
leaky_relu_backward = _OPS.leaky_relu_backward
tanh_backward = _OPS.tanh_backward
sigmoid = _OPS.sigmoid
softplus = _OPS.softplus
bias_leaky_relu = _OPS.bias_leaky_relu
bias_leaky_relu_backward = _OPS.bias_leaky_relu_backward
bias_tanh = _OPS.bias_tanh
batchnorm_forward = _OPS.batchnorm_forward
batchnorm_backward = _OPS.batchnorm_backward
batchnorm_leaky_relu = _OPS.batchnorm_leaky_relu
batchnorm_leaky_relu_backward = _OPS.batchnorm_leaky_relu_backward
bce_with_logits = _OPS.bce_with_logits
sgd_update = _OPS.sgd_update
adam_update = _OPS.adam_update
adam_update_many = _OPS.adam_update_many
rmsprop_update = _OPS.rmsprop_update
normal_from_bits = _OPS.normal_from_bits
gemm = _OPS.gemm


def num_threads() -> int:
    """Threads the parallel kernels of this set use (OpenMP's ``omp_get_max_threads``)."""
    return int(_ext.max_threads())


def gemm_pair(a1: np.ndarray, b1: np.ndarray, out1: np.ndarray | None, a2: np.ndarray,
              b2: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(a1 @ b1, a2 @ b2)`` side by side on two threads, each product one single-threaded CBLAS
    call (see :func:`nanogan._kernels._threads.matmul_pair`); None where the set has not exactly
    two threads or the operands do not suit CBLAS (the caller then multiplies them one by one)."""
    if _ext.max_threads() != 2:
        return None
    return _ext.gemm_pair_arrays(a1, b1, out1, a2, b2, None)
