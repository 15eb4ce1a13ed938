"""The Python front end shared by the compiled kernel sets (``numba`` and ``cython``).

A compiled set provides *low-level kernels* that write into preallocated, C-contiguous arrays of
one floating dtype (float32 or float64), with every scalar already converted. :class:`CompiledOps`
wraps them with exactly the signatures and results of :mod:`nanogan._kernels.reference`:

* it checks dtypes and layouts and allocates the outputs (in the input dtype, never converting);
* it converts scalars to the array dtype wherever the reference computes in that dtype;
* it picks the serial or the parallel loop of every kernel by array size (``par``, true from
  :data:`PARALLEL_MIN` elements on a machine with cores to spare), so that small arrays do not
  pay for waking the thread pool;
* anything unusual (integer or mixed dtypes, broadcasting, non-contiguous arrays updated in place,
  empty outputs) is handed to the reference, so the semantics never differ.

Low-level kernel table (what a compiled set must define, all outputs written in place)::

    im2col(x, cols, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, par)
                                    image (N, C, H, W) -> cols (C*kh*kw, N*OH*OW); the image's
                                    plane (n, c) is the H*W values of the 1-D x from n*sN + c*sC
    col2im(cols, x, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, par)
                                    cols -> image, every pixel written (x need not be zeroed)
    optional, the convolution products fused by tiles of B images (else CompiledOps composes
    them from im2col, col2im and gemm, tile by tile); each returns False where it does not
    apply (the caller then composes):
      im2col_gemm(a, x, out, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, B, par) -> bool
                                    out (M, N*OH*OW) = a @ im2col(x)
      gemm_col2im(a, b, x, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, B, par) -> bool
                                    image planes of x = col2im(a @ b)
      gemm_im2col_t(a, x, acc, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, B, swap, par) -> bool
                                    acc[thread] += a_tile @ cols_tile^T (swap: transposed)
    window_weight_grad(dy, x, dw, acc, par)                 dw (O, C, P) = sum_n dy x,
                                    x (C, N, P); acc (threads, P) float64 scratch
    window_input_grad(dy, w, dx, par)                       dx (C, N, P) = sum_o dy w
                                    (window_forward: the reference's products, in every set)
    leaky_relu(x, out, slope, par)                          1-D
    leaky_relu_backward(dy, x, out, slope, par)             1-D
    tanh_backward(dy, y, out, one, par)                     1-D (one: 1 in the array dtype)
    sigmoid(x, out, par), softplus(x, out, par)             1-D
    bias_leaky_relu(z, b, slope, par)                       z (N, C, M) in place
    bias_leaky_relu_backward(dy, y, slope, du, db, par)     db (C,) in the array dtype
    bias_tanh(z, b, par)                                    z (N, C, M) in place
    batchnorm_forward(x, gamma, beta, eps, slope, y, mean, var, inv_std, par)
    batchnorm_backward(dy, y, slope, x, mean, inv_std, gamma, mf, dx, dgamma, dbeta, par)
    bce_with_logits(s, t, c1, ct, n, grad) -> float        1-D; returns the float64 sum
    sgd_update(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first, par)
    adam_update(p, g, m, v, beta1, c1, beta2, c2, eps, weight_decay, step_size, sqrt_bc2, par)
    optional: adam_update_many(ps, gs, ms, vs, beta1, c1, beta2, c2, eps, weight_decay,
              step_size, sqrt_bc2, par) -> bool   lists of arrays, one parallel loop over all;
                                    False where it does not apply (else one call per array)
    rmsprop_update(p, g, sq, lr, alpha, c, eps, weight_decay, par)
    optional: normal_from_bits(words, out, step, par) -> bool   Box-Muller, False where it
                                    does not serve out's dtype (else the reference runs)
    gemm(fn, dbl, wide, ta, tb, M, N, K, a, lda, b, ldb, c, ldc, blocks)
                                                            C = op(A) op(B), by CBLAS, in blocks
      or gemm_arrays(a, b, out, blocks) -> out or None      the same on the arrays, with the
                                                            checks of CompiledOps.gemm (Cython)
    max_threads()                                           the threads a parallel loop uses

(``c1 = 1 - beta1``, ``c2 = 1 - beta2``, ``c = 1 - alpha`` and ``dampening`` enters SGD as
``1 - dampening``: the reference computes these in Python and rounds them to the array dtype.)
The batch-norm kernels carry a fused leaky ReLU on their output: ``slope = 1`` is none
(``u * 1 == u`` exactly), and the backward kernel reads the activation's mask from ``y``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _cblas, _threads, reference
from ._threads import KERNEL_PARALLEL_MIN
from .reference import conv_output_size

#: The dtypes the compiled kernels are built for.
FLOATS: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.float64))

#: Arrays with fewer elements than this run the serial loop of an elementwise kernel (see
#: :mod:`nanogan._kernels._threads` for how the threshold was chosen).
PARALLEL_MIN: int = KERNEL_PARALLEL_MIN


def _par(size: int) -> bool:
    """Run a kernel on ``size`` elements in parallel? (:data:`PARALLEL_MIN`, machine load)"""
    return _threads.parallel(size, PARALLEL_MIN)


def _same_float(*arrays: Any) -> bool:
    """True when every argument is an ndarray of one and the same dtype, float32 or float64."""
    first = arrays[0]
    if not isinstance(first, np.ndarray) or first.dtype not in FLOATS:
        return False
    return all(isinstance(a, np.ndarray) and a.dtype == first.dtype for a in arrays[1:])


def _ndims(*pairs: tuple[Any, int]) -> bool:
    """True when each ``(array, rank)`` pair is an ndarray of that rank."""
    return all(isinstance(a, np.ndarray) and a.ndim == r for a, r in pairs)


def _flat_out(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A C-contiguous 1-D view of ``x`` (copying only if ``x`` is not contiguous) and an empty
    output of ``x``'s shape and dtype, also as a 1-D view."""
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=x.dtype)
    return x.reshape(-1), out.reshape(-1)


def _planes(x: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """``(flat, sN, sC)`` for the low-level im2col/col2im: ``x (N, C, H, W)`` as the 1-D view of
    its memory from its first element, and the offsets (in elements) at which its plane ``(n, c)``
    starts, ``n*sN + c*sC``; None unless each ``(H, W)`` plane is contiguous and the planes lie
    apart, in the order of images then channels (NCHW, or a batch slice of it) or of channels
    then images (the plans' CNHW layout, or a batch slice of it)."""
    N, C, H, W = x.shape
    size, hw = x.itemsize, H * W
    s_n, s_c, s_h, s_w = (st // size if st % size == 0 else -1 for st in x.strides)
    if min(N, C, hw) == 0 or (W > 1 and s_w != 1) or (H > 1 and s_h != W):
        return None
    s_n, s_c = (s_n if N > 1 else 0), (s_c if C > 1 else 0)  # a stride of no step: unused
    nchw = (C == 1 or s_c == hw) and (N == 1 or s_n >= C * hw)
    cnhw = (N == 1 or s_n == hw) and (C == 1 or s_c >= N * hw)
    if not (nchw or cnhw):
        return None
    span = (N - 1) * s_n + (C - 1) * s_c + hw
    return _flat_span(x, span), s_n, s_c


def _flat_span(x: np.ndarray, span: int) -> np.ndarray:
    """The 1-D view of the ``span`` elements of memory from ``x``'s first one on: a slice of the
    array that owns the memory when that is C-contiguous (a few microseconds; ``as_strided``,
    the general way, takes about ten times longer, per tile of a convolution)."""
    if x.flags.c_contiguous and x.size == span:
        return x.reshape(-1)
    root = x
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.flags.c_contiguous and root.dtype == x.dtype:
        start, rem = divmod(x.ctypes.data - root.ctypes.data, x.itemsize)
        if rem == 0 and 0 <= start and start + span <= root.size:
            return root.reshape(-1)[start:start + span]
    return np.lib.stride_tricks.as_strided(x, (span,), (x.itemsize,))


def _inplace_ok(*arrays: Any) -> bool:
    """Same float dtype, same shape, all C-contiguous (so 1-D views alias the arrays)."""
    return (_same_float(*arrays) and all(a.flags.c_contiguous for a in arrays)
            and all(a.shape == arrays[0].shape for a in arrays[1:]))


class CompiledOps:
    """The reference op table implemented on top of a low-level kernel table ``k``.

    Parameters
    ----------
    k : object with the low-level kernels listed in this module's docstring as attributes
    """

    def __init__(self, k: Any) -> None:
        self._k = k
        #: The set's ``gemm_arrays(a, b, out, blocks)``, if it has one: :meth:`gemm` with its
        #: checks and layout descriptions done in compiled code, returning None where
        #: :meth:`gemm` would run ``np.matmul``.
        self._gemm_arrays = getattr(k, "gemm_arrays", None)

    # ------------------------------------------------------------------------ im2col / col2im
    def im2col(self, x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int,
               pw: int) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.im2col`: ``(N, C, H, W)`` ->
        ``(C*kh*kw, N*OH*OW)``."""
        kh, kw, sh, sw, ph, pw = int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)
        if not _same_float(x) or x.ndim != 4 or min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
            return reference.im2col(x, kh, kw, sh, sw, ph, pw)
        N, C, H, W = x.shape
        OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
        if OH <= 0 or OW <= 0:
            return reference.im2col(x, kh, kw, sh, sw, ph, pw)
        cols = np.empty((C * kh * kw, N * OH * OW), dtype=x.dtype)
        if cols.size:
            planes = _planes(x) or _planes(np.ascontiguousarray(x))
            self._k.im2col(planes[0], cols, N, C, H, W, planes[1], planes[2], kh, kw, sh, sw,
                           ph, pw, _par(cols.size))
        return cols

    def col2im(self, cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int,
               sh: int, sw: int, ph: int, pw: int, out: np.ndarray | None = None) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.col2im`: ``(C*kh*kw, N*OH*OW)`` ->
        ``(N, C, H, W)`` (C-contiguous, or ``out``), summing overlapping windows. An ``out``
        whose planes the kernel can write in place (see :func:`_planes`) is written directly;
        any other gets the result copied in."""
        kh, kw, sh, sw, ph, pw = int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)
        N, C, H, W = (int(s) for s in x_shape)
        OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
        if (not _same_float(cols) or cols.ndim != 2 or min(kh, kw, sh, sw) < 1
                or min(ph, pw) < 0 or OH <= 0 or OW <= 0
                or cols.shape != (C * kh * kw, N * OH * OW)):
            return reference.col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, out)
        planes = None
        if out is not None:
            if tuple(out.shape) != (N, C, H, W):
                raise ValueError(f"col2im: argument 'out' expected shape {(N, C, H, W)}, got "
                                 f"{tuple(out.shape)}")
            if (isinstance(out, np.ndarray) and out.dtype == cols.dtype
                    and out.flags.writeable and not np.may_share_memory(out, cols)):
                planes = _planes(out)
            if planes is None:
                out[...] = self.col2im(cols, x_shape, kh, kw, sh, sw, ph, pw)
                return out
        x = out if out is not None else np.empty((N, C, H, W), dtype=cols.dtype)
        if x.size == 0:  # (else cols, of C*kh*kw rows and N*OH*OW columns, is not empty)
            return x
        planes = planes or _planes(x)
        self._k.col2im(np.ascontiguousarray(cols), planes[0], N, C, H, W, planes[1], planes[2],
                       kh, kw, sh, sw, ph, pw, _par(cols.size))
        return x

    # ------------------------------------------------------------------------ convolution products
    @staticmethod
    def _conv_geometry(x_shape: tuple[int, ...], kh: int, kw: int, sh: int, sw: int, ph: int,
                       pw: int) -> tuple[int, int, int, int, int, int] | None:
        """``(N, C, H, W, L, K)`` (``L = OH*OW``, ``K = C*kh*kw``) when the compiled path applies,
        None where the reference must run (odd geometry, empty arrays)."""
        if len(x_shape) != 4 or min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
            return None
        N, C, H, W = (int(v) for v in x_shape)
        OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
        if OH <= 0 or OW <= 0 or min(N, C, H, W) == 0:
            return None
        return N, C, H, W, OH * OW, C * kh * kw

    def _fused(self, name: str) -> Any:
        """The set's fused convolution kernel ``name``, if it has one and the products run on the
        set's threads with BLAS on one thread (:func:`nanogan._kernels._threads.own_threads`):
        each thread of a fused kernel makes single-threaded BLAS calls."""
        fn = getattr(self._k, name, None)
        if fn is None or not _threads.own_threads():
            return None
        _threads.blas_threads(1)
        return fn

    def _tile(self, per_image: int, N: int, fused: bool) -> int:
        """Images per tile of the fused kernels (one tile per thread at a time) or of the
        composition (im2col, then a product on all threads)."""
        if fused:
            return _threads.conv_tile_images(per_image, N, _threads.CONV_THREAD_TILE_ELEMENTS,
                                             int(self._k.max_threads()))
        return _threads.conv_tile_images(per_image, N, _threads.CONV_TILE_ELEMENTS)

    def im2col_matmul(self, a: np.ndarray, x: np.ndarray, kh: int, kw: int, sh: int, sw: int,
                      ph: int, pw: int, out: np.ndarray | None = None,
                      slope: float | None = None) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.im2col_matmul`: ``a @ im2col(x)`` by tiles
        of the batch, each tile's product written into its columns of the result (with
        ``slope``, its leaky ReLU too). With the set's fused kernel (``im2col_gemm``) each thread
        unfolds and multiplies whole tiles, and applies the activation while a tile is in cache;
        else each tile is ``im2col`` then a product on all threads, and the activation one pass
        at the end."""
        kh, kw, sh, sw, ph, pw = int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)
        geo = (self._conv_geometry(x.shape, kh, kw, sh, sw, ph, pw)
               if _same_float(a, x) and a.ndim == 2 else None)
        if geo is None:
            return reference.im2col_matmul(a, x, kh, kw, sh, sw, ph, pw, out, slope)
        N, C, H, W, L, K = geo
        M = a.shape[0]
        reference.expect_shape("im2col_matmul", "a", a, (M, K))
        if out is not None:
            reference.expect_shape("im2col_matmul", "out", out, (M, N * L))
        y = out
        if not (isinstance(out, np.ndarray) and out.dtype == x.dtype and out.flags.c_contiguous
                and out.flags.writeable and not np.may_share_memory(out, a)
                and not np.may_share_memory(out, x)):
            y = np.empty((M, N * L), dtype=x.dtype)
        fused = self._fused("im2col_gemm")
        planes = _planes(x) or _planes(np.ascontiguousarray(x))
        act = slope is not None
        if not (fused and fused(a, planes[0], y, N, C, H, W, planes[1], planes[2], kh, kw, sh, sw,
                                ph, pw, self._tile(K * L, N, True), _par(N * K * L), act,
                                float(slope) if act else 0.0)):
            tile = self._tile(K * L, N, False)
            for s in range(0, N, tile):
                n = min(tile, N - s)
                _threads.matmul(a, self.im2col(x[s:s + n], kh, kw, sh, sw, ph, pw),
                                y[:, s * L:(s + n) * L])
            if act:
                flat = y.reshape(-1)
                self._k.leaky_relu(flat, flat, y.dtype.type(slope), _par(flat.size))
        if out is not None and y is not out:
            out[...] = y
            return out
        return y

    def matmul_col2im(self, a: np.ndarray, b: np.ndarray, x_shape: tuple[int, int, int, int],
                      kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                      out: np.ndarray | None = None, y: np.ndarray | None = None,
                      slope: float | None = None) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.matmul_col2im`: ``col2im(a @ b)`` by tiles
        of the batch (each tile's columns of ``b``, one product, folded into the tile's images;
        with the set's fused kernel ``gemm_col2im``, whole tiles per thread). An ``out`` whose
        planes the kernels can write (see :func:`_planes`) is written directly. With ``y``, the
        fused kernel takes ``b`` through the leaky ReLU's gradient as it reads it, where it can
        (thin columns); else that gradient is formed first (``leaky_relu_backward``)."""
        kh, kw, sh, sw, ph, pw = int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)
        geo = (self._conv_geometry(tuple(x_shape), kh, kw, sh, sw, ph, pw)
               if _same_float(a, b) and a.ndim == 2 and b.ndim == 2 else None)
        if geo is None:
            return reference.matmul_col2im(a, b, x_shape, kh, kw, sh, sw, ph, pw, out, y, slope)
        N, C, H, W, L, K = geo
        M = a.shape[1]
        reference.expect_shape("matmul_col2im", "a", a, (K, M))
        reference.expect_shape("matmul_col2im", "b", b, (M, N * L))
        if out is not None:
            reference.expect_shape("matmul_col2im", "out", out, (N, C, H, W))
        if y is not None:
            reference.check_leaky("matmul_col2im", b, y, slope)
        x = out
        planes = None
        if (isinstance(out, np.ndarray) and out.dtype == b.dtype and out.flags.writeable
                and not np.may_share_memory(out, a) and not np.may_share_memory(out, b)
                and (y is None or not np.may_share_memory(out, y))):
            planes = _planes(out)
        if planes is None:
            x = np.empty((N, C, H, W), dtype=b.dtype)
            planes = _planes(x)
        fused = self._fused("gemm_col2im")
        args = (planes[0], N, C, H, W, planes[1], planes[2], kh, kw, sh, sw, ph, pw,
                self._tile(K * L, N, True), _par(N * K * L))
        done = bool(fused and y is not None and _same_float(b, y)
                    and fused(a, b, *args, y, float(slope)))
        if y is not None and not done:
            b = self.leaky_relu_backward(b, y, slope)
        if not (done or (fused and fused(a, b, *args))):
            tile = self._tile(K * L, N, False)
            for s in range(0, N, tile):
                n = min(tile, N - s)
                self.col2im(_threads.matmul(a, b[:, s * L:(s + n) * L]), (n, C, H, W), kh, kw,
                            sh, sw, ph, pw, out=x[s:s + n])
        if out is not None and x is not out:
            out[...] = x
            return out
        return x

    def matmul_im2col_t(self, a: np.ndarray, x: np.ndarray, kh: int, kw: int, sh: int, sw: int,
                        ph: int, pw: int, y: np.ndarray | None = None,
                        slope: float | None = None) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.matmul_im2col_t`: ``a @ im2col(x)^T``, the
        sum of one product per tile of the batch. With the set's fused kernel
        (``gemm_im2col_t``) each thread adds its tiles' products into its own accumulator and
        the accumulators are summed in thread order (tile ``t`` goes to thread ``t %
        threads``: the same sums on every run); else the tiles' products are summed in order.
        When ``C*kh*kw`` exceeds ``M`` the products are formed transposed, ``im2col(x) @ a^T``
        (BLAS runs them about a fifth faster with the operand of more rows first), and the
        result is a transposed view. With ``y``, the fused kernel takes ``a`` through the leaky
        ReLU's gradient as it reads it, where it can (thin columns); else that gradient is formed
        first (``leaky_relu_backward``)."""
        kh, kw, sh, sw, ph, pw = int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)
        geo = (self._conv_geometry(x.shape, kh, kw, sh, sw, ph, pw)
               if _same_float(a, x) and a.ndim == 2 else None)
        if geo is None:
            return reference.matmul_im2col_t(a, x, kh, kw, sh, sw, ph, pw, y, slope)
        N, C, H, W, L, K = geo
        M = a.shape[0]
        reference.expect_shape("matmul_im2col_t", "a", a, (M, N * L))
        if y is not None:
            reference.check_leaky("matmul_im2col_t", a, y, slope)
        swap = K > M
        fused = self._fused("gemm_im2col_t")
        if fused is not None:
            par = _par(N * K * L)
            acc = np.zeros((int(self._k.max_threads()) if par else 1,
                            *((K, M) if swap else (M, K))), dtype=x.dtype)
            planes = _planes(x) or _planes(np.ascontiguousarray(x))
            args = (planes[0], acc, N, C, H, W, planes[1], planes[2], kh, kw, sh, sw, ph, pw,
                    self._tile(K * L, N, True), swap, par)
            done = bool(y is not None and _same_float(a, y) and fused(a, *args, y, float(slope)))
            if y is not None and not done:
                a, y = self.leaky_relu_backward(a, y, slope), None
            if done or fused(a, *args):
                g = acc[0]
                for part in acc[1:]:
                    g += part
                return g.T if swap else g
        if y is not None:
            a = self.leaky_relu_backward(a, y, slope)
        tile = self._tile(K * L, N, False)
        g = None
        for s in range(0, N, tile):
            n = min(tile, N - s)
            cols = self.im2col(x[s:s + n], kh, kw, sh, sw, ph, pw)
            a_t = a[:, s * L:(s + n) * L]
            p = _threads.matmul(cols, a_t.T) if swap else _threads.matmul(a_t, cols.T)
            if g is None:
                g = p
            else:
                g += p
        return g.T if swap else g

    # ------------------------------------------------------------------------ whole-window products
    #: Output channels up to which the whole-window gradients run the set's kernels; beyond, the
    #: reference's products per channel (BLAS). The input gradient's loop makes one pass over
    #: ``dx`` per output channel (C, N, P = 128, 256, 49 on two threads: 0.17 against 2.0 ms for
    #: the reference at 1 output, 0.33 against 0.38 at 4, 1.3 against 0.5 at 16).
    WINDOW_MAX_OUT = 4

    def _window_loops(self, O: int, *arrays: np.ndarray) -> bool:
        """Whether the set's loops take arrays of one float dtype, none of them empty, for ``O``
        output channels (at most :data:`WINDOW_MAX_OUT`); the shapes are checked by the op."""
        return _same_float(*arrays) and all(a.size for a in arrays) and \
            0 < O <= self.WINDOW_MAX_OUT

    def _scratch(self, P: int, par: bool) -> np.ndarray:
        return np.empty((int(self._k.max_threads()) if par else 1, P), dtype=np.float64)

    def window_forward(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        """:func:`nanogan._kernels.reference.window_forward` itself: its products per channel
        (BLAS's dot products) ran faster than a loop of the set's over the images (DCGAN-28's
        last layer at batch 256: 1.6 against 1.9 ms per iteration on two threads, 1.9 against
        3.0 on one)."""
        return reference.window_forward(w, x)

    def window_weight_grad(self, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.window_weight_grad`."""
        if not (_ndims((dy, 2), (x, 3)) and self._window_loops(dy.shape[0], dy, x)
                and dy.shape[1] == x.shape[1]):
            return reference.window_weight_grad(dy, x)
        (O, _), (C, _, P) = dy.shape, x.shape
        dw = np.empty((O, C, P), dtype=x.dtype)
        par = _par(x.size * O)
        self._k.window_weight_grad(np.ascontiguousarray(dy), np.ascontiguousarray(x), dw,
                                   self._scratch(P, par), par)
        return dw

    def window_input_grad(self, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.window_input_grad`."""
        if not (_ndims((dy, 2), (w, 3)) and self._window_loops(w.shape[0], dy, w)
                and dy.shape[0] == w.shape[0]):
            return reference.window_input_grad(dy, w)
        (O, C, P), N = w.shape, dy.shape[1]
        dx = np.empty((C, N, P), dtype=w.dtype)
        self._k.window_input_grad(np.ascontiguousarray(dy), np.ascontiguousarray(w), dx,
                                  _par(dx.size * O))
        return dx

    # ------------------------------------------------------------------------ activations
    def leaky_relu(self, x: np.ndarray, slope: float) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.leaky_relu`, any shape."""
        if not _same_float(x):
            return reference.leaky_relu(x, slope)
        xf, out = _flat_out(x)
        self._k.leaky_relu(xf, out, x.dtype.type(slope), _par(xf.size))
        return out.reshape(x.shape)

    def leaky_relu_backward(self, dy: np.ndarray, x: np.ndarray, slope: float) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.leaky_relu_backward`, any shape."""
        if not _same_float(dy, x) or dy.shape != x.shape:
            return reference.leaky_relu_backward(dy, x, slope)
        dyf, out = _flat_out(dy)
        xf = np.ascontiguousarray(x).reshape(-1)
        self._k.leaky_relu_backward(dyf, xf, out, dy.dtype.type(slope), _par(xf.size))
        return out.reshape(x.shape)

    def tanh_backward(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.tanh_backward`, any shape."""
        if not _same_float(dy, y) or dy.shape != y.shape:
            return reference.tanh_backward(dy, y)
        dyf, out = _flat_out(dy)
        yf = np.ascontiguousarray(y).reshape(-1)
        self._k.tanh_backward(dyf, yf, out, y.dtype.type(1), _par(yf.size))
        return out.reshape(y.shape)

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.sigmoid`, any shape."""
        if not _same_float(x):
            return reference.sigmoid(x)
        xf, out = _flat_out(x)
        self._k.sigmoid(xf, out, _par(xf.size))
        return out.reshape(x.shape)

    def softplus(self, x: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.softplus`, any shape."""
        if not _same_float(x):
            return reference.softplus(x)
        xf, out = _flat_out(x)
        self._k.softplus(xf, out, _par(xf.size))
        return out.reshape(x.shape)

    # ------------------------------------------------------------------------ fused bias + act
    def bias_leaky_relu(self, z: np.ndarray, b: np.ndarray, slope: float) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.bias_leaky_relu`, in place on
        ``z (N, C, M)``."""
        if not (_same_float(z, b) and z.ndim == 3 and z.flags.c_contiguous
                and z.flags.writeable and b.shape == (z.shape[1],) and z.size):
            return reference.bias_leaky_relu(z, b, slope)
        self._k.bias_leaky_relu(z, np.ascontiguousarray(b), z.dtype.type(slope), _par(z.size))
        return z

    def bias_tanh(self, z: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.bias_tanh`, in place on ``z (N, C, M)``."""
        if not (_same_float(z, b) and z.ndim == 3 and z.flags.c_contiguous
                and z.flags.writeable and b.shape == (z.shape[1],) and z.size):
            return reference.bias_tanh(z, b)
        self._k.bias_tanh(z, np.ascontiguousarray(b), _par(z.size))
        return z

    def bias_leaky_relu_backward(self, dy: np.ndarray, y: np.ndarray, slope: float
                                 ) -> tuple[np.ndarray, np.ndarray]:
        """Compiled :func:`nanogan._kernels.reference.bias_leaky_relu_backward`, ``(N, C, M)``."""
        if not (_same_float(dy, y) and y.ndim == 3 and dy.shape == y.shape and y.size):
            return reference.bias_leaky_relu_backward(dy, y, slope)
        du = np.empty(y.shape, dtype=y.dtype)
        db = np.empty(y.shape[1], dtype=y.dtype)
        self._k.bias_leaky_relu_backward(np.ascontiguousarray(dy), np.ascontiguousarray(y),
                                         y.dtype.type(slope), du, db, _par(y.size))
        return du, db

    # ------------------------------------------------------------------------ batch norm
    def batchnorm_forward(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compiled :func:`nanogan._kernels.reference.batchnorm_forward`, ``x (N, C, M)``."""
        return self._bn_forward(x, gamma, beta, eps, None)

    def batchnorm_leaky_relu(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                             eps: float, slope: float
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compiled :func:`nanogan._kernels.reference.batchnorm_leaky_relu`, ``x (N, C, M)``."""
        return self._bn_forward(x, gamma, beta, eps, slope)

    def _bn_forward(self, x, gamma, beta, eps, slope):
        if (not _same_float(x, gamma, beta) or x.ndim != 3 or gamma.shape != (x.shape[1],)
                or beta.shape != (x.shape[1],) or x.size == 0):
            if slope is None:
                return reference.batchnorm_forward(x, gamma, beta, eps)
            return reference.batchnorm_leaky_relu(x, gamma, beta, eps, slope)
        C, dt = x.shape[1], x.dtype
        y = np.empty(x.shape, dtype=dt)
        mean, var, inv_std = (np.empty(C, dtype=dt) for _ in range(3))
        self._k.batchnorm_forward(np.ascontiguousarray(x), np.ascontiguousarray(gamma),
                                  np.ascontiguousarray(beta), dt.type(eps),
                                  dt.type(1 if slope is None else slope), y, mean, var, inv_std,
                                  _par(x.size))
        return y, mean, var, inv_std

    def batchnorm_backward(self, dy: np.ndarray, x: np.ndarray, mean: np.ndarray,
                           inv_std: np.ndarray, gamma: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compiled :func:`nanogan._kernels.reference.batchnorm_backward`, ``x (N, C, M)``."""
        return self._bn_backward(dy, None, x, mean, inv_std, gamma, None)

    def batchnorm_leaky_relu_backward(self, dy: np.ndarray, y: np.ndarray, x: np.ndarray,
                                      mean: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray,
                                      slope: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compiled :func:`nanogan._kernels.reference.batchnorm_leaky_relu_backward`."""
        return self._bn_backward(dy, y, x, mean, inv_std, gamma, slope)

    def _bn_backward(self, dy, y, x, mean, inv_std, gamma, slope):
        C = x.shape[1] if getattr(x, "ndim", 0) == 3 else -1
        mask = dy if y is None else y
        if (not _same_float(dy, mask, x, mean, inv_std, gamma) or x.ndim != 3
                or dy.shape != x.shape or mask.shape != x.shape
                or any(a.shape != (C,) for a in (mean, inv_std, gamma))
                or x.size == 0):
            if slope is None:
                return reference.batchnorm_backward(dy, x, mean, inv_std, gamma)
            return reference.batchnorm_leaky_relu_backward(dy, y, x, mean, inv_std, gamma,
                                                           slope)
        dt = x.dtype
        dx = np.empty(x.shape, dtype=dt)
        dgamma, dbeta = np.empty(C, dtype=dt), np.empty(C, dtype=dt)
        c = np.ascontiguousarray
        self._k.batchnorm_backward(c(dy), c(mask), dt.type(1 if slope is None else slope),
                                   c(x), c(mean), c(inv_std), c(gamma),
                                   dt.type(x.shape[0] * x.shape[2]), dx, dgamma, dbeta,
                                   _par(x.size))
        return dx, dgamma, dbeta

    # ------------------------------------------------------------------------ loss
    def bce_with_logits(self, s: np.ndarray, t: float) -> tuple[float, np.ndarray]:
        """Compiled :func:`nanogan._kernels.reference.bce_with_logits`, any shape."""
        if not _same_float(s) or s.size == 0:
            return reference.bce_with_logits(s, t)
        sf = np.ascontiguousarray(s).reshape(-1)
        grad = np.empty(sf.shape, dtype=s.dtype)
        d, t = s.dtype.type, float(t)
        total = self._k.bce_with_logits(sf, t, d(1 - t), d(t), d(s.size), grad)
        return float(total) / s.size, grad.reshape(s.shape)

    # ------------------------------------------------------------------------ optimizer updates
    def sgd_update(self, p: np.ndarray, g: np.ndarray, buf: np.ndarray, lr: float,
                   momentum: float, dampening: float, nesterov: bool, weight_decay: float,
                   first: bool) -> None:
        """Compiled :func:`nanogan._kernels.reference.sgd_update`, in place on ``p``, ``buf``."""
        if not (_inplace_ok(p, buf) and _same_float(p, g) and g.shape == p.shape and p.size):
            return reference.sgd_update(p, g, buf, lr, momentum, dampening, nesterov,
                                        weight_decay, first)
        t = p.dtype.type
        self._k.sgd_update(p.reshape(-1), np.ascontiguousarray(g).reshape(-1), buf.reshape(-1),
                           t(lr), t(momentum), t(1 - dampening), bool(nesterov), t(weight_decay),
                           bool(first), _par(p.size))
        return None

    def adam_update(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                    step: int) -> None:
        """Compiled :func:`nanogan._kernels.reference.adam_update`, in place on ``p``, ``m``,
        ``v``."""
        if not (_inplace_ok(p, m, v) and _same_float(p, g) and g.shape == p.shape and p.size):
            return reference.adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)
        t = p.dtype.type
        bc1 = 1 - beta1 ** step
        bc2 = 1 - beta2 ** step
        # As in the reference (and PyTorch): every scalar rounded to the array dtype first.
        self._k.adam_update(p.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1),
                            v.reshape(-1), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2),
                            t(eps), t(weight_decay), t(lr / bc1), t(math.sqrt(bc2)),
                            _par(p.size))
        return None

    def adam_update_many(self, ps: list[np.ndarray], gs: list[np.ndarray],
                         ms: list[np.ndarray], vs: list[np.ndarray], lr: float, beta1: float,
                         beta2: float, eps: float, weight_decay: float, step: int) -> None:
        """Compiled :func:`nanogan._kernels.reference.adam_update_many`: the set's
        many-parameter kernel where it has one and the arrays suit it (one parallel loop over
        all elements, results equal to one :meth:`adam_update` per parameter), else
        :meth:`adam_update` on each."""
        if not len(ps) == len(gs) == len(ms) == len(vs):
            return reference.adam_update_many(ps, gs, ms, vs, lr, beta1, beta2, eps,
                                              weight_decay, step)
        many = getattr(self._k, "adam_update_many", None)
        if (many is not None and ps and all(isinstance(p, np.ndarray) for p in ps)
                and ps[0].dtype in FLOATS):
            t = ps[0].dtype.type
            bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
            # the scalars rounded to the array dtype as adam_update rounds them
            if many(list(ps), list(gs), list(ms), list(vs), float(t(beta1)), float(t(1 - beta1)),
                    float(t(beta2)), float(t(1 - beta2)), float(t(eps)), float(t(weight_decay)),
                    float(t(lr / bc1)), float(t(math.sqrt(bc2))),
                    _par(sum(p.size for p in ps))):
                return None
        for p, g, m, v in zip(ps, gs, ms, vs):
            self.adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)
        return None

    # ------------------------------------------------------------------------ noise
    def normal_from_bits(self, words: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.normal_from_bits`, in place on ``out``:
        the set's kernel where it has one (its values are the reference's to the bit: it runs
        NumPy's own log, sin and cos loops), else the reference."""
        kern = getattr(self._k, "normal_from_bits", None)
        if (kern is not None and isinstance(words, np.ndarray) and words.dtype == np.uint64
                and words.ndim == 1 and words.flags.c_contiguous and isinstance(out, np.ndarray)
                and out.ndim == 1 and out.dtype in FLOATS and out.flags.c_contiguous
                and out.flags.writeable and words.shape[0] == (out.shape[0] + 1) // 2
                and kern(words, out, out.dtype.type(reference.ANGLE_STEP),
                         _threads.parallel(out.size, _threads.NOISE_PARALLEL_MIN))):
            return out
        return reference.normal_from_bits(words, out)

    def rmsprop_update(self, p: np.ndarray, g: np.ndarray, sq: np.ndarray, lr: float,
                       alpha: float, eps: float, weight_decay: float) -> None:
        """Compiled :func:`nanogan._kernels.reference.rmsprop_update`, in place on ``p``,
        ``sq``."""
        if not (_inplace_ok(p, sq) and _same_float(p, g) and g.shape == p.shape and p.size):
            return reference.rmsprop_update(p, g, sq, lr, alpha, eps, weight_decay)
        t = p.dtype.type
        self._k.rmsprop_update(p.reshape(-1), np.ascontiguousarray(g).reshape(-1),
                               sq.reshape(-1), t(lr), t(alpha), t(1 - alpha), t(eps),
                               t(weight_decay),
                               _par(p.size))
        return None

    # ------------------------------------------------------------------------ products
    def gemm(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
             par: bool = True, blocks: int | None = None) -> np.ndarray:
        """Compiled :func:`nanogan._kernels.reference.gemm`: ``a @ b`` for 2-D ``a (m, k)``,
        ``b (k, n)``; with ``par``, the rows (or the columns, when ``n > m``) of the result cut
        into one block per thread of this set, each block a single-threaded CBLAS product
        (:mod:`nanogan._kernels._cblas`). The cut depends on the shape and the thread count only;
        a block may round differently from one whole call (BLAS picks its inner kernels by block
        shape), as BLAS's own threaded products do. ``blocks`` sets the number of blocks
        (default: the set's thread count; the tests use it). Anything else is ``np.matmul``: no
        CBLAS found, other dtypes or ranks, an operand of neither row nor column layout, or an
        ``out`` that is not a writeable array of the result's shape and dtype, stored by rows
        (C-contiguous, or rows of a wider array: a column slice), sharing no memory with ``a``
        or ``b``."""
        blocks = (int(self._k.max_threads()) if blocks is None else int(blocks)) if par else 1
        if self._gemm_arrays is not None and blocks >= 2:  # the checks below, done in C
            c = self._gemm_arrays(a, b, out, blocks)
            return np.matmul(a, b, out=out) if c is None else c
        fn = _cblas.GEMM.get(a.dtype) if isinstance(a, np.ndarray) else None
        if (blocks < 2 or fn is None or not _same_float(a, b) or a.ndim != 2 or b.ndim != 2
                or a.shape[1] != b.shape[0]):
            return np.matmul(a, b, out=out)
        (M, K), N = a.shape, b.shape[1]
        la, lb = _cblas.layout(a), _cblas.layout(b)
        if out is None:
            out = np.empty((M, N), dtype=a.dtype)
        elif not (isinstance(out, np.ndarray) and out.dtype == a.dtype and out.shape == (M, N)
                  and (_cblas.layout(out) or (0,))[0] == _cblas.NO_TRANS and out.flags.writeable
                  and not np.may_share_memory(out, a)
                  and not np.may_share_memory(out, b)):
            return np.matmul(a, b, out=out)
        address, wide = fn
        if la is None or lb is None or (not wide and max(M, N, K, la[1], lb[1]) >= 2**31):
            return np.matmul(a, b, out=out)
        self._k.gemm(address, a.dtype == np.float64, wide, la[0], lb[0], M, N, K,
                     a.ctypes.data, la[1], b.ctypes.data, lb[1], out.ctypes.data,
                     out.strides[0] // out.itemsize, blocks)
        return out
