"""Numba kernel set: the reference ops as ``@njit`` loops, float32 and float64.

Each op is a low-level kernel that writes into preallocated arrays (see
:mod:`nanogan._kernels._common`) plus the shared Python front end that gives it the reference
signature. Kernels compute in the array dtype wherever the reference does (scalars arrive already
converted), accumulate sums in float64, and never copy. ``parallel=True`` loops (``prange``) run
where the work is large: im2col and col2im over (channel, block of images) units (images
innermost when the output is tiny), batch norm over channels, elementwise ops and optimizer updates
over big arrays (small ones run the serial twin, or the ``prange`` loop on one thread; see
``PARALLEL_MIN``).

Threads: Numba's pool honours ``NUMBA_NUM_THREADS``; when only ``OMP_NUM_THREADS`` is set, it is
honoured too, so one variable limits every compiled kernel. Kernels run between BLAS calls, never
at the same time, so both may use every core. Compiled code is cached on disk (``cache=True``):
only the first import on a machine pays for compilation, one op and dtype at a time, on first use.
"""

from __future__ import annotations

import ctypes
import functools
import os
import types

import numba
import numpy as np
from numba import njit, prange

from ._common import CompiledOps

NAME = "numba"

#: ``error_model="numpy"``: a float division by zero gives inf or NaN as in NumPy (not Python's
#: ZeroDivisionError), which also lets LLVM vectorise the loops that divide (Adam: 5x faster).
_JIT = {"cache": True, "fastmath": False, "error_model": "numpy"}


def _honour_omp_num_threads() -> None:
    """Use ``OMP_NUM_THREADS`` as the thread count when ``NUMBA_NUM_THREADS`` is not set."""
    if os.environ.get("NUMBA_NUM_THREADS"):
        return
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return
    if n >= 1:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


_honour_omp_num_threads()


# ---------------------------------------------------------------------------- im2col / col2im
@njit(inline="always")
def _valid_range(k_off: int, pad: int, stride: int, out: int, size: int) -> tuple[int, int]:
    """Output positions ``o`` in ``[lo, hi)`` read an input pixel ``o*stride + k_off - pad`` inside
    ``[0, size)``; the others read zero padding."""
    lo = 0
    if pad > k_off:
        lo = (pad - k_off + stride - 1) // stride
    last = size - 1 + pad - k_off  # o*stride <= last
    hi = last // stride + 1 if last >= 0 else 0
    hi = min(hi, out)
    lo = min(lo, out)
    return lo, max(hi, lo)


@njit(inline="always")
def _valid_ranges(k: int, pad: int, stride: int, out: int, size: int):
    """:func:`_valid_range` for every window offset ``0 <= k_off < k``, as two arrays."""
    lo = np.empty(k, dtype=np.int64)
    hi = np.empty(k, dtype=np.int64)
    for k_off in range(k):
        lo[k_off], hi[k_off] = _valid_range(k_off, pad, stride, out, size)
    return lo, hi


#: Below this many output positions per image (``OH*OW``), im2col/col2im work on blocks of
#: ``_NB`` images at a time, so that each store fills cache lines (the 1x1-output convolutions).
_SMALL_L = 16
_NB = 16


#: The planes path of im2col/col2im works on blocks of images whose unfolded planes take at most
#: this many values (so that the scratch buffer of a thread stays in its L2 cache).
_PLANES_BUF = 32768
#: ... and, where the images allow, at least this many work units (for the thread pool).
_MIN_UNITS = 16


@njit(inline="always")
def _image_block(N: int, C: int, P: int) -> int:
    """Images per work unit of the planes path of im2col/col2im: as many as fit
    :data:`_PLANES_BUF` values (``P`` per image), but few enough to make :data:`_MIN_UNITS`
    (channel, block of images) units where the images allow.

    A unit unfolds the planes of its images along their width, into ``kw*sh`` row-phase planes
    of ``PH x OW`` values each (``PH = ceil((H + 2 ph) / sh)``)::

        S[j, a][r, ow] = xpad[r*sh + a, ow*sw + j]          (xpad: the zero-padded plane)

    so that the chunk of window offset ``(i, j)``, ``chunk[oh*OW + ow] = S[j, i % sh][oh + i //
    sh, ow]``, is one contiguous run of ``OH*OW`` values: each cols row is then written (col2im:
    read) from left to right in long vectorised copies, instead of ``OH`` short strided gathers
    with padding tests per chunk. The padding entries of ``S`` are never written: zero.
    """
    B = max(1, min(N, _PLANES_BUF // P))
    while B > 1 and C * ((N + B - 1) // B) < _MIN_UNITS:
        B = (B + 1) // 2
    return B


@njit(parallel=True, **_JIT)
def _im2col(xf, cols, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw):
    # The image's plane (n, c) is the H*W values of the 1-D xf from n*sN + c*sC on.
    # Indices are cast to unsigned (np.uintp) in the inner loops: Numba then skips the
    # negative-index wraparound test, which otherwise costs about a third of the time.
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    L = OH * OW
    NL = N * L
    cf = cols.reshape(-1)
    oh_lo, oh_hi = _valid_ranges(kh, ph, sh, OH, H)
    ow_lo, ow_hi = _valid_ranges(kw, pw, sw, OW, W)
    if L >= _SMALL_L:
        # One unit per (channel, block of images): unfold the planes along their width into a
        # scratch buffer (see _image_block), then fill the unit's part of its kh*kw rows, each
        # from left to right, one contiguous run of the buffer per image.
        PH = (H + 2 * ph + sh - 1) // sh
        P = kw * sh * PH * OW
        B = _image_block(N, C, P)
        nbk = (N + B - 1) // B
        for t in prange(C * nbk):
            c = t // nbk
            n0 = (t - c * nbk) * B
            n1 = min(N, n0 + B)
            buf = np.zeros(B * P, dtype=xf.dtype)
            for n in range(n0, n1):
                for h in range(H):
                    hp = h + ph
                    src = n * sN + c * sC + h * W - pw
                    for j in range(kw):
                        b0 = (n - n0) * P + ((j * sh + hp % sh) * PH + hp // sh) * OW
                        for ow in range(ow_lo[j], ow_hi[j]):
                            buf[np.uintp(b0 + ow)] = xf[np.uintp(src + ow * sw + j)]
            for i in range(kh):
                for j in range(kw):
                    o = ((c * kh + i) * kw + j) * NL + n0 * L
                    b0 = ((j * sh + i % sh) * PH + i // sh) * OW
                    for _m in range(n1 - n0):
                        for k in range(L):
                            cf[np.uintp(o + k)] = buf[np.uintp(b0 + k)]
                        o += L
                        b0 += P
    else:
        # One unit per (channel, block of _NB images), images innermost.
        nb = (N + _NB - 1) // _NB
        for t in prange(C * nb):
            c = t // nb
            n0 = (t - c * nb) * _NB
            n1 = min(N, n0 + _NB)
            for i in range(kh):
                for j in range(kw):
                    rb = ((c * kh + i) * kw + j) * NL
                    for oh in range(OH):
                        valid_h = oh >= oh_lo[i] and oh < oh_hi[i]
                        for ow in range(OW):
                            o = rb + oh * OW + ow
                            if valid_h and ow >= ow_lo[j] and ow < ow_hi[j]:
                                src = c * sC + (oh * sh + i - ph) * W + ow * sw + j - pw
                                for n in range(n0, n1):
                                    cf[np.uintp(o + n * L)] = xf[np.uintp(src + n * sN)]
                            else:
                                for n in range(n0, n1):
                                    cf[o + n * L] = 0


@njit(parallel=True, **_JIT)
def _col2im(cols, xf, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw):
    # The image's plane (n, c) is the H*W values of the 1-D xf from n*sN + c*sC on; each unit
    # zeroes its own planes first (xf need not be zeroed). Units own whole (channel, image)
    # planes, so no two threads add into the same pixel.
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    L = OH * OW
    NL = N * L
    HW = H * W
    cf = cols.reshape(-1)
    oh_lo, oh_hi = _valid_ranges(kh, ph, sh, OH, H)
    ow_lo, ow_hi = _valid_ranges(kw, pw, sw, OW, W)
    if L >= _SMALL_L:
        # The adjoint of im2col's planes path: add the unit's part of its kh*kw rows into the
        # zeroed buffer (contiguous runs), then fold the buffer into the planes.
        PH = (H + 2 * ph + sh - 1) // sh
        P = kw * sh * PH * OW
        B = _image_block(N, C, P)
        nbk = (N + B - 1) // B
        for t in prange(C * nbk):
            c = t // nbk
            n0 = (t - c * nbk) * B
            n1 = min(N, n0 + B)
            buf = np.zeros(B * P, dtype=xf.dtype)
            for i in range(kh):
                for j in range(kw):
                    o = ((c * kh + i) * kw + j) * NL + n0 * L
                    b0 = ((j * sh + i % sh) * PH + i // sh) * OW
                    for _m in range(n1 - n0):
                        for k in range(L):
                            buf[np.uintp(b0 + k)] += cf[np.uintp(o + k)]
                        o += L
                        b0 += P
            for n in range(n0, n1):
                p0 = n * sN + c * sC
                for k in range(HW):
                    xf[np.uintp(p0 + k)] = 0
                for h in range(H):
                    hp = h + ph
                    d = p0 + h * W - pw
                    for j in range(kw):
                        b0 = (n - n0) * P + ((j * sh + hp % sh) * PH + hp // sh) * OW
                        for ow in range(ow_lo[j], ow_hi[j]):
                            xf[np.uintp(d + ow * sw + j)] += buf[np.uintp(b0 + ow)]
    else:
        nb = (N + _NB - 1) // _NB
        for t in prange(C * nb):
            c = t // nb
            n0 = (t - c * nb) * _NB
            n1 = min(N, n0 + _NB)
            for n in range(n0, n1):
                p0 = n * sN + c * sC
                for k in range(HW):
                    xf[np.uintp(p0 + k)] = 0
            for i in range(kh):
                for j in range(kw):
                    rb = ((c * kh + i) * kw + j) * NL
                    for oh in range(oh_lo[i], oh_hi[i]):
                        for ow in range(ow_lo[j], ow_hi[j]):
                            o = rb + oh * OW + ow
                            d = c * sC + (oh * sh + i - ph) * W + ow * sw + j - pw
                            for n in range(n0, n1):
                                xf[np.uintp(d + n * sN)] += cf[np.uintp(o + n * L)]


# ---------------------------------------------------------------------------- whole-window products
# The gradients as loops (the Cython set's fallback without CBLAS; see there): the weight
# gradient's sums in double, each position in its own accumulator (the serial loop's in ``acc[0]``,
# each channel of the parallel loop its own), in a fixed order, so both loops give the same bits.
@njit(**_JIT)
def _window_weight_grad_s(dy, x, dw, acc):
    for c in range(x.shape[0]):
        _window_wgrad(dy, x, dw, acc[0], c)


@njit(parallel=True, **_JIT)
def _window_weight_grad_p(dy, x, dw, acc):
    for c in prange(x.shape[0]):
        _window_wgrad(dy, x, dw, np.zeros(x.shape[2], np.float64), c)


@njit(**_JIT)
def _window_wgrad(dy, x, dw, a, c):
    O, N, P = dy.shape[0], x.shape[1], x.shape[2]
    for o in range(O):
        for p in range(P):
            a[p] = 0.0
        for n in range(N):
            d = np.float64(dy[o, n])
            for p in range(P):
                a[p] += d * np.float64(x[c, n, p])
        for p in range(P):
            dw[o, c, p] = a[p]


@njit(**_JIT)
def _window_igrad(dy, w, dx, c):
    O, P, N = w.shape[0], w.shape[2], dx.shape[1]
    for n in range(N):
        d = dy[0, n]
        for p in range(P):
            dx[c, n, p] = d * w[0, c, p]
        for o in range(1, O):
            d = dy[o, n]
            for p in range(P):
                dx[c, n, p] = dx[c, n, p] + d * w[o, c, p]


@njit(**_JIT)
def _window_input_grad_s(dy, w, dx):
    for c in range(w.shape[1]):
        _window_igrad(dy, w, dx, c)


@njit(parallel=True, **_JIT)
def _window_input_grad_p(dy, w, dx):
    for c in prange(w.shape[1]):
        _window_igrad(dy, w, dx, c)


# ---------------------------------------------------------------------------- activations
@njit(inline="always")
def _sigmoid1(v):
    e = np.exp(-abs(np.float64(v)))
    return 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)


@njit(inline="always")
def _softplus1(v):
    d = np.float64(v)
    return max(d, 0.0) + np.log1p(np.exp(-abs(d)))


@njit(**_JIT)
def _leaky_relu_s(x, out, slope):
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope


@njit(parallel=True, **_JIT)
def _leaky_relu_p(x, out, slope):
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope


@njit(**_JIT)
def _leaky_relu_backward_s(dy, x, out, slope):
    for i in range(x.size):
        out[i] = dy[i] if x[i] > 0 else dy[i] * slope


@njit(parallel=True, **_JIT)
def _leaky_relu_backward_p(dy, x, out, slope):
    for i in prange(x.size):
        out[i] = dy[i] if x[i] > 0 else dy[i] * slope


@njit(**_JIT)
def _tanh_backward_s(dy, y, out, one):
    for i in range(y.size):  # one: 1 in the array dtype (an integer 1 would widen to float64)
        out[i] = dy[i] * (one - y[i] * y[i])


@njit(parallel=True, **_JIT)
def _tanh_backward_p(dy, y, out, one):
    for i in prange(y.size):
        out[i] = dy[i] * (one - y[i] * y[i])


@njit(**_JIT)
def _sigmoid_s(x, out):
    for i in range(x.size):
        out[i] = _sigmoid1(x[i])


@njit(parallel=True, **_JIT)
def _sigmoid_p(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid1(x[i])


@njit(**_JIT)
def _softplus_s(x, out):
    for i in range(x.size):
        out[i] = _softplus1(x[i])


@njit(parallel=True, **_JIT)
def _softplus_p(x, out):
    for i in prange(x.size):
        out[i] = _softplus1(x[i])


# ---------------------------------------------------------------------------- fused bias + act
@njit(**_JIT)
def _bias_tanh_s(z, b):
    N, C, M = z.shape
    for n in range(N):
        for c in range(C):
            bc = b[c]
            for k in range(M):
                z[n, c, k] = np.tanh(z[n, c, k] + bc)


@njit(parallel=True, **_JIT)
def _bias_tanh_p(z, b):
    N, C, M = z.shape
    if N == 1:  # the plans' CNHW layout: one image, channels to the threads
        for c in prange(C):
            bc = b[c]
            for k in range(M):
                z[0, c, k] = np.tanh(z[0, c, k] + bc)
        return
    for n in prange(N):
        for c in range(C):
            bc = b[c]
            for k in range(M):
                z[n, c, k] = np.tanh(z[n, c, k] + bc)


@njit(**_JIT)
def _bias_leaky_relu_s(z, b, slope):
    N, C, M = z.shape
    for n in range(N):
        for c in range(C):
            bc = b[c]
            for k in range(M):
                u = z[n, c, k] + bc
                z[n, c, k] = u if u > 0 else u * slope


@njit(parallel=True, **_JIT)
def _bias_leaky_relu_p(z, b, slope):
    N, C, M = z.shape
    if N == 1:  # the plans' CNHW layout: one image, channels to the threads
        for c in prange(C):
            bc = b[c]
            for k in range(M):
                u = z[0, c, k] + bc
                z[0, c, k] = u if u > 0 else u * slope
        return
    for n in prange(N):
        for c in range(C):
            bc = b[c]
            for k in range(M):
                u = z[n, c, k] + bc
                z[n, c, k] = u if u > 0 else u * slope


#: Accumulators of one channel's run in :func:`_lrelu_grad_run` (as the Cython set's).
RUN_LANES = 32


@njit(**_JIT)
def _lrelu_grad_run(dy, y, slope, du, c):
    # du[0, c] = dy * (1 if y > 0 else slope) over one run; returns its sum in RUN_LANES
    # accumulators (value k into k % RUN_LANES, then the accumulators in order): one accumulator
    # would be a chain of dependent additions. A function of the run alone.
    M = y.shape[2]
    acc = np.zeros(RUN_LANES, du.dtype)
    ML = M - M % RUN_LANES
    for k0 in range(0, ML, RUN_LANES):
        for j in range(RUN_LANES):
            g = dy[0, c, k0 + j]
            g = g if y[0, c, k0 + j] > 0 else g * slope
            du[0, c, k0 + j] = g
            acc[j] += g
    for k in range(ML, M):
        g = dy[0, c, k]
        g = g if y[0, c, k] > 0 else g * slope
        du[0, c, k] = g
        acc[k - ML] += g
    total = acc[0]
    for j in range(1, RUN_LANES):
        total += acc[j]
    return total


@njit(**_JIT)
def _bias_leaky_relu_backward(dy, y, slope, du, db):
    # Serial, summing in the array dtype in the order of NumPy's ``du.sum(axis=0)`` for Dense
    # layers (M = 1), so that a fused Dense + LeakyReLU gives the unfused layers' bias gradient;
    # with one image (the plans' CNHW layout) each channel's run by _lrelu_grad_run.
    N, C, M = y.shape
    if N == 1 and M > 1:
        for c in range(C):
            db[c] = _lrelu_grad_run(dy, y, slope, du, c)
        return
    db[:] = 0
    for n in range(N):
        for c in range(C):
            for k in range(M):
                g = dy[n, c, k]
                g = g if y[n, c, k] > 0 else g * slope
                du[n, c, k] = g
                db[c] += g


@njit(parallel=True, **_JIT)
def _bias_leaky_relu_backward_p(dy, y, slope, du, db):
    # With one image (the plans' CNHW layout) channels go to the threads, each channel's sum the
    # same run as the serial loop's; otherwise the serial loop.
    N, C, M = y.shape
    if N != 1 or M == 1:
        _bias_leaky_relu_backward(dy, y, slope, du, db)
        return
    for c in prange(C):
        db[c] = _lrelu_grad_run(dy, y, slope, du, c)


# ---------------------------------------------------------------------------- batch norm
# One sweep over the data gathers the channels' statistics (sums shifted by each channel's first
# value, in float64, so that var = E[(x-K)^2] - E[x-K]^2 does not cancel), a second writes the
# output. Both go through memory in order (all channels of an image, then the next image) by
# blocks of images whose size the shape alone sets; each block's sums are added in block order,
# so one thread and several give the same bits. ``slope`` is the fused leaky ReLU's (1 for none:
# ``u * 1 == u`` exactly). ``reassoc`` lets LLVM vectorize the float64 sums of a run (their order
# changes, not their precision).
_SUMS = {"cache": True, "fastmath": {"reassoc"}}


@njit(inline="always")
def _images_per_block(N, C, M):
    """Images per block of the batch-norm sums: enough for 65,536 values (the shape alone sets
    it, so the result does not depend on the thread count)."""
    per = max(C * M, 1)
    return min(max(N, 1), max(1, (65536 + per - 1) // per))


@njit(inline="always")
def _bn_stats_run(x, n, c, M):
    """The sums of ``x[n, c, :] - K`` and of their squares (``K = x[0, c, 0]``), in float64."""
    K = np.float64(x[0, c, 0])
    s1 = 0.0
    s2 = 0.0
    for k in range(M):
        d = np.float64(x[n, c, k]) - K
        s1 += d
        s2 += d * d
    return s1, s2


@njit(inline="always")
def _bn_output_run(x, y, n, c, M, mc, sc, b, slope):
    for k in range(M):
        u = (x[n, c, k] - mc) * sc + b
        y[n, c, k] = u if u > 0 else u * slope


@njit(inline="always")
def _bn_grad_sums_run(dy, y, slope, x, n, c, M, mc, ic):
    """``sum g`` and ``sum g * xhat`` over ``[n, c, :]`` (``g = dy`` through the activation)."""
    sb = 0.0
    sg = 0.0
    for k in range(M):
        g = dy[n, c, k]
        g = g if y[n, c, k] > 0 else g * slope
        sb += g
        sg += g * ((x[n, c, k] - mc) * ic)
    return sb, sg


@njit(inline="always")
def _bn_dx_run(dy, y, slope, x, dx, n, c, M, mc, ic, db, dg, sc, mf):
    for k in range(M):
        g = dy[n, c, k]
        g = g if y[n, c, k] > 0 else g * slope
        xhat = (x[n, c, k] - mc) * ic
        dx[n, c, k] = sc * (mf * g - db - xhat * dg)


# When the images make one block (the plans' CNHW layout passes N = 1: each channel one run), the
# channels go to the threads instead of the blocks: each channel's sums are the same runs added in
# the same order.
@njit(parallel=True, **_SUMS)
def _batchnorm_forward(x, gamma, beta, eps, slope, y, mean, var, inv_std):
    N, C, M = x.shape
    m = N * M
    B = _images_per_block(N, C, M)
    nblk = (N + B - 1) // B
    p1 = np.zeros((nblk, C))
    p2 = np.zeros((nblk, C))
    if nblk == 1:
        for c in prange(C):
            for n in range(N):
                s1, s2 = _bn_stats_run(x, n, c, M)
                p1[0, c] += s1
                p2[0, c] += s2
    else:
        for blk in prange(nblk):  # each block's sums, image by image in memory order
            for n in range(blk * B, min(N, blk * B + B)):
                for c in range(C):
                    s1, s2 = _bn_stats_run(x, n, c, M)
                    p1[blk, c] += s1
                    p2[blk, c] += s2
    scale = np.empty(C, dtype=x.dtype)
    for c in range(C):  # the blocks added in block order
        s1 = 0.0
        s2 = 0.0
        for blk in range(nblk):
            s1 += p1[blk, c]
            s2 += p2[blk, c]
        e1 = s1 / m
        mean[c] = np.float64(x[0, c, 0]) + e1
        var[c] = max(s2 / m - e1 * e1, 0.0)
        inv_std[c] = 1.0 / np.sqrt(var[c] + eps)
        scale[c] = gamma[c] * inv_std[c]  # mean, inv_std read back: the array dtype
    if nblk == 1:
        for c in prange(C):
            for n in range(N):
                _bn_output_run(x, y, n, c, M, mean[c], scale[c], beta[c], slope)
    else:
        for blk in prange(nblk):
            for n in range(blk * B, min(N, blk * B + B)):
                for c in range(C):
                    _bn_output_run(x, y, n, c, M, mean[c], scale[c], beta[c], slope)


@njit(parallel=True, **_SUMS)
def _batchnorm_backward(dy, y, slope, x, mean, inv_std, gamma, mf, dx, dgamma, dbeta):
    N, C, M = x.shape
    B = _images_per_block(N, C, M)
    nblk = (N + B - 1) // B
    pb = np.zeros((nblk, C))
    pg = np.zeros((nblk, C))
    if nblk == 1:
        for c in prange(C):
            for n in range(N):
                sb, sg = _bn_grad_sums_run(dy, y, slope, x, n, c, M, mean[c], inv_std[c])
                pb[0, c] += sb
                pg[0, c] += sg
    else:
        for blk in prange(nblk):
            for n in range(blk * B, min(N, blk * B + B)):
                for c in range(C):
                    sb, sg = _bn_grad_sums_run(dy, y, slope, x, n, c, M, mean[c], inv_std[c])
                    pb[blk, c] += sb
                    pg[blk, c] += sg
    scale = np.empty(C, dtype=x.dtype)
    for c in range(C):
        sb = 0.0
        sg = 0.0
        for blk in range(nblk):
            sb += pb[blk, c]
            sg += pg[blk, c]
        dbeta[c] = sb
        dgamma[c] = sg
        scale[c] = gamma[c] * inv_std[c] / mf
    if nblk == 1:
        for c in prange(C):
            for n in range(N):
                _bn_dx_run(dy, y, slope, x, dx, n, c, M, mean[c], inv_std[c], dbeta[c],
                           dgamma[c], scale[c], mf)
    else:
        for blk in prange(nblk):
            for n in range(blk * B, min(N, blk * B + B)):
                for c in range(C):
                    _bn_dx_run(dy, y, slope, x, dx, n, c, M, mean[c], inv_std[c], dbeta[c],
                               dgamma[c], scale[c], mf)


# ---------------------------------------------------------------------------- loss
@njit(**_JIT)
def _bce_with_logits(s, t, c1, ct, n, grad):
    # ``c1 = 1 - t``, ``ct = t`` and ``n`` arrive in the array dtype; ``tmp`` rounds the
    # double-precision softplus and sigmoid values to it, as the reference's arrays do.
    tmp = np.empty_like(s[:2])
    total = 0.0
    for i in range(s.size):
        v = np.float64(s[i])
        tmp[0] = _softplus1(-v)
        tmp[1] = _softplus1(v)
        total += t * np.float64(tmp[0]) + (1.0 - t) * np.float64(tmp[1])
        tmp[0] = _sigmoid1(v)
        tmp[1] = _sigmoid1(-v)
        if t == 1.0:
            grad[i] = -tmp[1] / n
        elif t == 0.0:
            grad[i] = tmp[0] / n
        else:
            grad[i] = (c1 * tmp[0] - ct * tmp[1]) / n
    return total


# ---------------------------------------------------------------------------- optimizer updates
@njit(inline="always")
def _sgd1(p, g, buf, i, lr, momentum, damp1, nesterov, wd, first):
    d = g[i]
    if wd != 0:
        d = d + wd * p[i]
    if momentum != 0:
        if first:
            buf[i] = d
        else:
            buf[i] = buf[i] * momentum + damp1 * d
        if nesterov:
            d = d + momentum * buf[i]
        else:
            d = buf[i]
    p[i] -= lr * d


@njit(**_JIT)
def _sgd_s(p, g, buf, lr, momentum, damp1, nesterov, wd, first):
    for i in range(p.size):
        _sgd1(p, g, buf, i, lr, momentum, damp1, nesterov, wd, first)


@njit(parallel=True, **_JIT)
def _sgd_p(p, g, buf, lr, momentum, damp1, nesterov, wd, first):
    for i in prange(p.size):
        _sgd1(p, g, buf, i, lr, momentum, damp1, nesterov, wd, first)


@njit(inline="always")
def _adam1(p, g, m, v, i, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2):
    gi = g[i]
    if wd != 0:
        gi = gi + wd * p[i]
    m[i] = m[i] * beta1 + c1 * gi
    v[i] = v[i] * beta2 + c2 * gi * gi
    denom = np.sqrt(v[i]) / sqrt_bc2 + eps  # all in the array dtype, as the reference
    p[i] -= (step_size * m[i]) / denom


@njit(**_JIT)
def _adam_s(p, g, m, v, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2):
    for i in range(p.size):
        _adam1(p, g, m, v, i, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2)


@njit(parallel=True, **_JIT)
def _adam_p(p, g, m, v, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2):
    for i in prange(p.size):
        _adam1(p, g, m, v, i, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2)


@njit(inline="always")
def _rmsprop1(p, g, sq, i, lr, alpha, c, eps, wd):
    gi = g[i]
    if wd != 0:
        gi = gi + wd * p[i]
    sq[i] = sq[i] * alpha + c * gi * gi
    p[i] -= lr * gi / (np.sqrt(sq[i]) + eps)


@njit(**_JIT)
def _rmsprop_s(p, g, sq, lr, alpha, c, eps, wd):
    for i in range(p.size):
        _rmsprop1(p, g, sq, i, lr, alpha, c, eps, wd)


@njit(parallel=True, **_JIT)
def _rmsprop_p(p, g, sq, lr, alpha, c, eps, wd):
    for i in prange(p.size):
        _rmsprop1(p, g, sq, i, lr, alpha, c, eps, wd)


# ---------------------------------------------------------------------------- split products
_I = ctypes.c_int
_P = ctypes.c_size_t  # an address: passed in an integer register, as a pointer is (LP64)


@functools.cache
def _gemm_kernel(fn: int, dbl: bool, wide: bool):
    """A ``prange`` loop that computes one block of rows (or columns) of ``C = op(A) op(B)`` per
    thread by the CBLAS function at address ``fn`` (see :mod:`nanogan._kernels._cblas`); compiled
    once per process, as the address is only known at run time."""
    real = ctypes.c_double if dbl else ctypes.c_float
    n = ctypes.c_int64 if wide else ctypes.c_int
    cblas = ctypes.CFUNCTYPE(None, _I, _I, _I, n, n, n, real, _P, n, _P, n, real, _P, n)(fn)
    size = 8 if dbl else 4

    @njit(parallel=True, error_model="numpy")
    def gemm(ta, tb, M, N, K, a, lda, b, ldb, c, ldc, blocks):
        rows = M >= N
        total = M if rows else N
        step = ((total + blocks - 1) // blocks + 15) // 16 * 16
        for t in prange(blocks):
            lo = t * step
            hi = min(lo + step, total)
            if hi > lo:
                if rows:  # rows lo:hi of C need rows lo:hi of op(A)
                    off = lo if ta == 112 else lo * lda
                    cblas(101, ta, tb, hi - lo, N, K, 1.0, a + size * off, lda, b, ldb, 0.0,
                          c + size * lo * ldc, ldc)
                else:     # columns lo:hi of C need columns lo:hi of op(B)
                    off = lo * ldb if tb == 112 else lo
                    cblas(101, ta, tb, M, hi - lo, K, 1.0, a, lda, b + size * off, ldb, 0.0,
                          c + size * lo, ldc)
    return gemm


def _gemm(fn, dbl, wide, ta, tb, M, N, K, a, lda, b, ldb, c, ldc, blocks):
    """Low-level ``gemm`` (see :mod:`nanogan._kernels._common`)."""
    _gemm_kernel(fn, bool(dbl), bool(wide))(ta, tb, M, N, K, a, lda, b, ldb, c, ldc, blocks)


# ---------------------------------------------------------------------------- op table
def _pick(serial, parallel):
    """One low-level kernel whose last argument chooses the serial or the parallel loop."""
    def run(*args):
        return (parallel if args[-1] else serial)(*args[:-1])
    return run


def _on_one_thread_unless(parallel):
    """One low-level kernel whose last argument ``par=False`` runs the ``prange`` loops of
    ``parallel`` on the calling thread alone."""
    def run(*args):
        if args[-1]:
            return parallel(*args[:-1])
        n = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return parallel(*args[:-1])
        finally:
            numba.set_num_threads(n)
    return run


_LOW_LEVEL = types.SimpleNamespace(
    im2col=_on_one_thread_unless(_im2col), col2im=_on_one_thread_unless(_col2im),
    window_weight_grad=_pick(_window_weight_grad_s, _window_weight_grad_p),
    window_input_grad=_pick(_window_input_grad_s, _window_input_grad_p),
    leaky_relu=_pick(_leaky_relu_s, _leaky_relu_p),
    leaky_relu_backward=_pick(_leaky_relu_backward_s, _leaky_relu_backward_p),
    tanh_backward=_pick(_tanh_backward_s, _tanh_backward_p),
    sigmoid=_pick(_sigmoid_s, _sigmoid_p), softplus=_pick(_softplus_s, _softplus_p),
    bias_leaky_relu=_pick(_bias_leaky_relu_s, _bias_leaky_relu_p),
    bias_leaky_relu_backward=_pick(_bias_leaky_relu_backward, _bias_leaky_relu_backward_p),
    bias_tanh=_pick(_bias_tanh_s, _bias_tanh_p),
    batchnorm_forward=_on_one_thread_unless(_batchnorm_forward),
    batchnorm_backward=_on_one_thread_unless(_batchnorm_backward),
    sgd_update=_pick(_sgd_s, _sgd_p), adam_update=_pick(_adam_s, _adam_p),
    rmsprop_update=_pick(_rmsprop_s, _rmsprop_p),
    bce_with_logits=_bce_with_logits,
    gemm=_gemm, max_threads=numba.get_num_threads,
)

_OPS = CompiledOps(_LOW_LEVEL)

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
    """Threads the parallel kernels of this set use."""
    return numba.get_num_threads()
