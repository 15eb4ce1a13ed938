# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, nonecheck=False
"""Cython low-level kernels of nanogan (compiled extension ``nanogan._kernels._cython_kernels``).

Every function writes into preallocated, C-contiguous arrays of one floating dtype (the fused
type ``floating``: float32 or float64); :mod:`nanogan._kernels.cython_kernels` gives them the
reference signatures. Loops run without the GIL; ``prange`` (OpenMP, ``OMP_NUM_THREADS``
threads) splits im2col and col2im over (channel, block of images) units (images innermost
when the output is tiny), a convolution's products with its column matrix over tiles of images
(each thread unfolds a tile and multiplies it by single-threaded BLAS), batch norm over
channels, and elementwise ops over big arrays;
every kernel takes a last argument ``par``: with ``par=False`` its loop runs on one thread (the
caller decides by size, see :mod:`nanogan._kernels._threads`).
Arithmetic is done in the array dtype wherever the reference does it (scalars arrive converted),
sums are accumulated in double.
"""

from cython.parallel cimport prange
from libc.math cimport exp, fabs, log1p, sqrt, tanh
from libc.stdint cimport uint64_t
from libc.string cimport memset

cimport numpy as cnp
cimport openmp
from cython cimport floating

import numpy as np

cnp.import_array()


def max_threads():
    """The number of threads a ``prange`` loop uses (``OMP_NUM_THREADS``, else all cores)."""
    return openmp.omp_get_max_threads()


# ---------------------------------------------------------------------------- im2col / col2im
cdef extern from "_simd.h" nogil:
    # AVX-512 or AVX2 unfold/fold of the float32 planes of one channel (nanogan/_kernels/_simd.h);
    # where nanogan_simd_im2col_ok / _col2im_ok say no (or the build targets neither, or Zen 1)
    # the loops below run
    int nanogan_simd_im2col_ok(Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,
                               Py_ssize_t OW)
    int nanogan_simd_col2im_ok(Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,
                               Py_ssize_t OW)
    void nanogan_im2col_f32(const float* x, Py_ssize_t sN, Py_ssize_t nimg, float* cols,
                            Py_ssize_t rowstride, Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh,
                            Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                            Py_ssize_t pw, Py_ssize_t OH, Py_ssize_t OW)
    void nanogan_col2im_f32(const float* cols, Py_ssize_t rowstride, float* x, Py_ssize_t sN,
                            Py_ssize_t nimg, Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh,
                            Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                            Py_ssize_t pw, Py_ssize_t OH, Py_ssize_t OW)

cdef extern from "_tanh.h" nogil:
    # float32 tanh, vectorised, within one ulp of the correctly rounded value (_tanh.h)
    void nanogan_tanh_f32(float* p, Py_ssize_t n)
    void nanogan_bias_tanh_f32(float* p, Py_ssize_t n, const float* b, Py_ssize_t bstep)


cdef extern from "_thin.h" nogil:
    # AVX-512 or AVX2 products of a thin column matrix (C*kh*kw <= 16 rows;
    # nanogan/_kernels/_thin.h); nanogan_thin_abt_ok: the weight gradient (AVX-512 only)
    int nanogan_thin_ok(Py_ssize_t K)
    int nanogan_thin_abt_ok(Py_ssize_t K)
    void nanogan_thin_ab(const float* a, Py_ssize_t lda, const float* cols, Py_ssize_t K,
                         Py_ssize_t L, float* out, Py_ssize_t ldo, Py_ssize_t M, int act,
                         float slope)
    void nanogan_thin_atb(const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb,
                          Py_ssize_t M, float* cols, Py_ssize_t K, Py_ssize_t L, const float* y,
                          float slope)
    void nanogan_thin_abt(const float* a, Py_ssize_t lda, Py_ssize_t M, const float* cols,
                          Py_ssize_t K, Py_ssize_t L, float* lanes, const float* y, float slope)

cdef bint _SIMD = True
cdef bint _THIN = True


def use_simd(bint on):
    """Let the float32 planes of im2col/col2im take the SIMD paths of ``_simd.h`` where they apply
    (the default); False runs the portable loops (the tests compare the two). Returns whether the
    extension was built with one (AVX-512 or AVX2, each for im2col and col2im)."""
    global _SIMD
    _SIMD = on
    return bool(nanogan_simd_im2col_ok(1, 1, 0, 0, 1))


def simd_applies(Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t OW):
    """``(im2col, col2im)``: whether a plane of that geometry takes the SIMD path of each (for
    the tests)."""
    return (bool(nanogan_simd_im2col_ok(H, W, ph, pw, OW)),
            bool(nanogan_simd_col2im_ok(H, W, ph, pw, OW)))


def use_thin(bint on):
    """Let float32 convolution products whose column matrix is thin (``C*kh*kw <= 16`` rows: a
    one-channel image) take the AVX-512 or AVX2 loops of ``_thin.h`` (the default; with AVX2 the
    weight gradient stays with BLAS); False runs BLAS products on them as on the others (the
    tests compare the two). Returns whether the extension was built with those loops."""
    global _THIN
    _THIN = on
    return bool(nanogan_thin_ok(1))


cdef inline bint _thin(Py_ssize_t K) noexcept:
    """Whether a float32 product of ``K`` column rows takes the thin loops."""
    return _THIN and nanogan_thin_ok(K)


#: The thin loops take a tile's images in blocks of columns of at most this many values (128 KB
#: of float32: L2-resident; DCGAN-28's one-channel layers at batch 256 on one thread, 3K to 128K
#: values: the forward product 1.29-1.42 ms, level, the input gradient 1.28-1.66, best at 32K).
cdef enum:
    THIN_COLS = 32768


cdef inline Py_ssize_t _thin_block(Py_ssize_t per_image, Py_ssize_t B) noexcept:
    """Images per block of the thin loops (at least one, at most the tile's ``B``)."""
    return max(1, min(B, THIN_COLS // per_image))


# Planes path (``OH*OW >= SMALL_L``): a work unit is one channel of a block of ``B`` images.
# Each of its planes is first unfolded along its width only, into a per-thread buffer of
# ``kw*sh`` *row-phase planes* of ``PH x OW`` values (``PH = ceil((H + 2 ph) / sh)``):
#
#     S[j, a][r, ow] = xpad[r*sh + a, ow*sw + j]          (xpad: the zero-padded plane)
#
# (one zero-padded input row at a time, so that no bounds are tested; rows of xpad that are
# padding are never written and stay zero). The chunk of the window offset ``(i, j)`` is then one
# contiguous run of the buffer, ``chunk[oh*OW + ow] = S[j, i % sh][oh + i // sh, ow]``: ``OH*OW``
# values starting at row ``i // sh``. So every cols row is written from left to right in long
# vectorised copies, instead of ``OH`` short strided gathers with padding tests per chunk.
# col2im is the adjoint: each cols row is read from left to right and added into the zeroed
# buffer, which is then folded back into the planes one padded row at a time.
cdef inline void _valid_range(Py_ssize_t k_off, Py_ssize_t pad, Py_ssize_t stride,
                              Py_ssize_t out, Py_ssize_t size,
                              Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output positions in ``[lo, hi)`` read an input pixel ``o*stride + k_off - pad`` inside
    ``[0, size)``; the others read zero padding."""
    cdef Py_ssize_t a = 0, b, last = size - 1 + pad - k_off
    if pad > k_off:
        a = (pad - k_off + stride - 1) // stride
    b = last // stride + 1 if last >= 0 else 0
    if b > out:
        b = out
    if a > out:
        a = out
    if b < a:
        b = a
    lo[0] = a
    hi[0] = b


cdef inline void _im2col_planes(const floating* x, floating* cols, floating* buf, Py_ssize_t t,
                                Py_ssize_t B, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                                Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t OH,
                                Py_ssize_t OW, Py_ssize_t PH) noexcept nogil:
    """Unit ``t = c*nbk + blk``: unfold the planes ``x[n, c]`` of the images ``n0 = blk*B <= n <
    n1`` along their width into ``buf`` (``kw*sh*PH*OW`` values per image), then fill the
    columns ``n0*OH*OW ... n1*OH*OW`` of the ``kh*kw`` rows of channel ``c`` (row ``(c*kh + i)*kw
    + j``), each row from left to right, one contiguous run of ``buf`` per image."""
    cdef Py_ssize_t nbk = (N + B - 1) // B, L = OH * OW, P = kw * sh * PH * OW
    cdef Py_ssize_t c = t // nbk, n0 = (t % nbk) * B, n1 = min(N, n0 + B)
    cdef Py_ssize_t n, h, hp, i, j, ow, k
    cdef const floating* src
    cdef floating* dst
    cdef Py_ssize_t JS = sh * PH * OW, w
    cdef floating* prow = buf + B * P  # one zero-padded input row; the padding stays zero
    cdef const floating* v
    if floating is float:
        if _SIMD and nanogan_simd_im2col_ok(H, W, ph, pw, OW):
            nanogan_im2col_f32(x + n0 * sN + c * sC, sN, n1 - n0, cols + c * kh * kw * (N * L)
                               + n0 * L, N * L, H, W, kh, kw, sh, sw, ph, pw, OH, OW)
            return
    for n in range(n0, n1):
        for h in range(H):
            hp = h + ph
            src = x + n * sN + c * sC + h * W
            for w in range(W):
                prow[pw + w] = src[w]
            dst = buf + (n - n0) * P + ((hp % sh) * PH + hp // sh) * OW  # S[0, a][r, :]
            if kw == 4:  # the DCGAN kernel: one pass over the row for all four offsets
                for ow in range(OW):
                    v = prow + ow * sw
                    dst[ow] = v[0]
                    dst[JS + ow] = v[1]
                    dst[2 * JS + ow] = v[2]
                    dst[3 * JS + ow] = v[3]
            else:
                for j in range(kw):
                    for ow in range(OW):
                        dst[j * JS + ow] = prow[ow * sw + j]
    for i in range(kh):
        for j in range(kw):
            dst = cols + ((c * kh + i) * kw + j) * (N * L) + n0 * L
            src = buf + ((j * sh + i % sh) * PH + i // sh) * OW
            for n in range(n1 - n0):
                for k in range(L):
                    dst[k] = src[k]
                dst += L
                src += P


cdef inline void _col2im_planes(const floating* cols, floating* x, floating* buf, Py_ssize_t t,
                                Py_ssize_t B, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                                Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t OH,
                                Py_ssize_t OW, Py_ssize_t PH) noexcept nogil:
    """Unit ``t = c*nbk + blk``: add the columns of the images ``n0 <= n < n1`` of the ``kh*kw``
    rows of channel ``c`` into the zeroed ``buf``, each row read from left to right, then fold
    ``buf`` into the planes ``x[n, c]`` (the adjoint of :func:`_im2col_planes`), each row of a
    plane written once (not added to: ``x`` need not be zeroed)."""
    cdef Py_ssize_t nbk = (N + B - 1) // B, L = OH * OW, P = kw * sh * PH * OW
    cdef Py_ssize_t c = t // nbk, n0 = (t % nbk) * B, n1 = min(N, n0 + B)
    cdef Py_ssize_t n, h, hp, i, j, ow, k
    cdef const floating* src
    cdef floating* dst
    # The offsets i < sh are the first to reach S[j, i]: they store their chunk (rows 0 .. OH-1)
    # and zero the rows below it, instead of adding into a zeroed buffer. If kh < sh, some S[j, a]
    # are reached by no offset at all, and the buffer is zeroed first.
    cdef bint store = kh >= sh
    if floating is float:
        if _SIMD and nanogan_simd_col2im_ok(H, W, ph, pw, OW):
            nanogan_col2im_f32(cols + c * kh * kw * (N * L) + n0 * L, N * L, x + n0 * sN + c * sC,
                               sN, n1 - n0, H, W, kh, kw, sh, sw, ph, pw, OH, OW)
            return
    if not store:
        memset(buf, 0, (n1 - n0) * P * sizeof(floating))
    for i in range(kh):
        for j in range(kw):
            src = cols + ((c * kh + i) * kw + j) * (N * L) + n0 * L
            dst = buf + ((j * sh + i % sh) * PH + i // sh) * OW
            for n in range(n1 - n0):
                if store and i < sh:
                    for k in range(L):
                        dst[k] = src[k]
                    for k in range(L, PH * OW):
                        dst[k] = 0
                else:
                    for k in range(L):
                        dst[k] += src[k]
                src += L
                dst += P
    cdef Py_ssize_t JS = sh * PH * OW, w
    cdef floating* prow = buf + B * P  # one zero-padded row of sums
    for n in range(n0, n1):
        for h in range(H):
            hp = h + ph
            memset(prow, 0, (W + 2 * pw + kw) * sizeof(floating))
            src = buf + (n - n0) * P + ((hp % sh) * PH + hp // sh) * OW  # S[0, a][r, :]
            if kw == 4 and sw == 2:
                # the DCGAN geometry: prow[2m + b] = S[b][m] + S[b + 2][m - 1], without
                # read-modify-writes that would wait for one another
                prow[0] += src[0]
                prow[1] += src[JS]
                for ow in range(1, OW):
                    prow[2 * ow] += src[ow] + src[2 * JS + ow - 1]
                    prow[2 * ow + 1] += src[JS + ow] + src[3 * JS + ow - 1]
                prow[2 * OW] += src[2 * JS + OW - 1]
                prow[2 * OW + 1] += src[3 * JS + OW - 1]
            else:
                for j in range(kw):
                    for ow in range(OW):
                        prow[ow * sw + j] += src[j * JS + ow]
            dst = x + n * sN + c * sC + h * W
            for w in range(W):
                dst[w] = prow[pw + w]


#: The planes path of im2col/col2im works on blocks of images whose unfolded planes take at most
#: this many values (so the scratch buffer of a thread stays in its L2 cache).
cdef enum:
    PLANES_BUF = 32768


cdef Py_ssize_t _image_block(Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, int nt) noexcept:
    """Images per work unit of the planes path: as many as fit ``PLANES_BUF``, but small enough
    to give every thread several units."""
    cdef Py_ssize_t B = max(1, min(N, PLANES_BUF // P))
    while B > 1 and C * ((N + B - 1) // B) < 4 * nt:
        B = (B + 1) // 2
    return B


#: Below this many output positions per image (``OH*OW``), im2col/col2im work on blocks of
#: ``NB`` images at a time, so that each store fills cache lines (the 1x1-output convolutions).
cdef enum:
    SMALL_L = 16
    NB = 16


cdef inline void _im2col_block(const floating* x, floating* cols, Py_ssize_t t,
                               Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                               Py_ssize_t sN, Py_ssize_t sC,
                               Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                               Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t OH, Py_ssize_t OW,
                               const Py_ssize_t* oh_lo, const Py_ssize_t* oh_hi,
                               const Py_ssize_t* ow_lo, const Py_ssize_t* ow_hi) noexcept nogil:
    """Unit ``t = c*nb + b``: channel ``c`` of the images ``b*NB ...``, images innermost."""
    cdef Py_ssize_t nb = (N + NB - 1) // NB, L = OH * OW
    cdef Py_ssize_t c = t // nb, n0 = (t % nb) * NB, n1 = min(N, n0 + NB)
    cdef Py_ssize_t i, j, oh, ow, n, src
    cdef floating* dst
    cdef bint valid_h
    for i in range(kh):
        for j in range(kw):
            for oh in range(OH):
                valid_h = oh_lo[i] <= oh < oh_hi[i]
                for ow in range(OW):
                    dst = cols + ((c * kh + i) * kw + j) * (N * L) + oh * OW + ow
                    if valid_h and ow_lo[j] <= ow < ow_hi[j]:
                        src = c * sC + (oh * sh + i - ph) * W + ow * sw + j - pw
                        for n in range(n0, n1):
                            dst[n * L] = x[src + n * sN]
                    else:
                        for n in range(n0, n1):
                            dst[n * L] = 0


cdef inline void _col2im_block(const floating* cols, floating* x, Py_ssize_t t,
                               Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                               Py_ssize_t sN, Py_ssize_t sC,
                               Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                               Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t OH, Py_ssize_t OW,
                               const Py_ssize_t* oh_lo, const Py_ssize_t* oh_hi,
                               const Py_ssize_t* ow_lo, const Py_ssize_t* ow_hi) noexcept nogil:
    """Unit ``t = c*nb + b``: zero the planes ``x[b*NB ..., c]``, then add into them, images
    innermost."""
    cdef Py_ssize_t nb = (N + NB - 1) // NB, L = OH * OW, HW = H * W
    cdef Py_ssize_t c = t // nb, n0 = (t % nb) * NB, n1 = min(N, n0 + NB)
    cdef Py_ssize_t i, j, oh, ow, n, d
    cdef const floating* src
    for n in range(n0, n1):
        memset(x + n * sN + c * sC, 0, HW * sizeof(floating))
    for i in range(kh):
        for j in range(kw):
            for oh in range(oh_lo[i], oh_hi[i]):
                for ow in range(ow_lo[j], ow_hi[j]):
                    src = cols + ((c * kh + i) * kw + j) * (N * L) + oh * OW + ow
                    d = c * sC + (oh * sh + i - ph) * W + ow * sw + j - pw
                    for n in range(n0, n1):
                        x[d + n * sN] += src[n * L]


cdef void _ranges(Py_ssize_t k, Py_ssize_t pad, Py_ssize_t stride, Py_ssize_t out,
                  Py_ssize_t size, Py_ssize_t[::1] lo, Py_ssize_t[::1] hi) noexcept:
    cdef Py_ssize_t k_off
    for k_off in range(k):
        _valid_range(k_off, pad, stride, out, size, &lo[k_off], &hi[k_off])


def im2col(const floating[::1] x, floating[:, ::1] cols, Py_ssize_t N, Py_ssize_t C,
           Py_ssize_t H, Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC, Py_ssize_t kh, Py_ssize_t kw,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint par):
    """Fill ``cols (C*kh*kw, N*OH*OW)`` from the image ``(N, C, H, W)`` (see the reference) whose
    plane ``(n, c)`` is the ``H*W`` values of ``x`` from ``n*sN + c*sC`` on, one (channel, block
    of images) per work unit."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t t, PH, nbuf, B
    cdef const floating* xp = &x[0]
    cdef floating* cp = &cols[0, 0]
    cdef Py_ssize_t nb = (N + NB - 1) // NB
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    cdef Py_ssize_t[::1] oh_lo, oh_hi, ow_lo, ow_hi
    cdef floating[:, ::1] bufs
    if OH * OW >= SMALL_L:
        PH = (H + 2 * ph + sh - 1) // sh
        nbuf = kw * sh * PH * OW
        B = _image_block(N, C, nbuf, nt)
        # zeroed once: the padding entries of the buffer are never written
        bufs = np.zeros((nt, B * nbuf + W + 2 * pw + kw),
                        np.float32 if floating is float else np.float64)
        for t in prange(C * ((N + B - 1) // B), nogil=True, schedule="static", num_threads=nt):
            _im2col_planes(xp, cp, &bufs[openmp.omp_get_thread_num(), 0], t, B, N, C, H, W,
                           sN, sC, kh, kw, sh, sw, ph, pw, OH, OW, PH)
    else:
        oh_lo = np.empty(kh, np.intp)
        oh_hi = np.empty(kh, np.intp)
        ow_lo = np.empty(kw, np.intp)
        ow_hi = np.empty(kw, np.intp)
        _ranges(kh, ph, sh, OH, H, oh_lo, oh_hi)
        _ranges(kw, pw, sw, OW, W, ow_lo, ow_hi)
        for t in prange(C * nb, nogil=True, schedule="static", num_threads=nt):
            _im2col_block(xp, cp, t, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, OH, OW,
                          &oh_lo[0], &oh_hi[0], &ow_lo[0], &ow_hi[0])


def col2im(const floating[:, ::1] cols, floating[::1] x, Py_ssize_t N, Py_ssize_t C,
           Py_ssize_t H, Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC, Py_ssize_t kh, Py_ssize_t kw,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint par):
    """Write the sums of the columns ``cols (C*kh*kw, N*OH*OW)`` into the image ``(N, C, H, W)``
    whose plane ``(n, c)`` is the ``H*W`` values of ``x`` from ``n*sN + c*sC`` on (every pixel
    written: ``x`` need not be zeroed), one (channel, block of images) per work unit (no two
    threads write the same pixel)."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t t, PH, nbuf, B
    cdef const floating* cp = &cols[0, 0]
    cdef floating* xp = &x[0]
    cdef Py_ssize_t nb = (N + NB - 1) // NB
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    cdef Py_ssize_t[::1] oh_lo, oh_hi, ow_lo, ow_hi
    cdef floating[:, ::1] bufs
    if OH * OW >= SMALL_L:
        PH = (H + 2 * ph + sh - 1) // sh
        nbuf = kw * sh * PH * OW
        B = _image_block(N, C, nbuf, nt)
        bufs = np.empty((nt, B * nbuf + W + 2 * pw + kw),
                        np.float32 if floating is float else np.float64)
        for t in prange(C * ((N + B - 1) // B), nogil=True, schedule="static", num_threads=nt):
            _col2im_planes(cp, xp, &bufs[openmp.omp_get_thread_num(), 0], t, B, N, C, H, W,
                           sN, sC, kh, kw, sh, sw, ph, pw, OH, OW, PH)
    else:
        oh_lo = np.empty(kh, np.intp)
        oh_hi = np.empty(kh, np.intp)
        ow_lo = np.empty(kw, np.intp)
        ow_hi = np.empty(kw, np.intp)
        _ranges(kh, ph, sh, OH, H, oh_lo, oh_hi)
        _ranges(kw, pw, sw, OW, W, ow_lo, ow_hi)
        for t in prange(C * nb, nogil=True, schedule="static", num_threads=nt):
            _col2im_block(cp, xp, t, N, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, OH, OW,
                          &oh_lo[0], &oh_hi[0], &ow_lo[0], &ow_hi[0])


# ---------------------------------------------------------------------------- activations
cdef inline floating _lrelu1(floating v, floating slope) noexcept nogil:
    # v * 1 == v exactly: the multiply is unconditional, so the loop vectorizes without branches
    return v * (<floating>1 if v > 0 else slope)


cdef inline double _sigmoid1(double v) noexcept nogil:
    cdef double e = exp(-fabs(v))
    return 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)


cdef inline double _softplus1(double v) noexcept nogil:
    return (v if v > 0 else 0.0) + log1p(exp(-fabs(v)))


def leaky_relu(const floating[::1] x, floating[::1] out, floating slope, bint par):
    """``out = x if x > 0 else slope * x``."""
    cdef Py_ssize_t i, n = x.shape[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            out[i] = _lrelu1(x[i], slope)
    else:
        with nogil:
            for i in range(n):
                out[i] = _lrelu1(x[i], slope)


def leaky_relu_backward(const floating[::1] dy, const floating[::1] x, floating[::1] out,
                        floating slope, bint par):
    """``out = dy if x > 0 else slope * dy``."""
    cdef Py_ssize_t i, n = x.shape[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            out[i] = dy[i] * (<floating>1 if x[i] > 0 else slope)
    else:
        with nogil:
            for i in range(n):
                out[i] = dy[i] * (<floating>1 if x[i] > 0 else slope)


def tanh_backward(const floating[::1] dy, const floating[::1] y, floating[::1] out, floating one,
                  bint par):
    """``out = dy * (one - y * y)`` (``y = tanh(x)``, ``one`` = 1: every operation in the array
    dtype, rounded as NumPy's three)."""
    cdef Py_ssize_t i, n = y.shape[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            out[i] = dy[i] * (one - y[i] * y[i])
    else:
        with nogil:
            for i in range(n):
                out[i] = dy[i] * (one - y[i] * y[i])


def sigmoid(const floating[::1] x, floating[::1] out, bint par):
    """Stable logistic, computed in double."""
    cdef Py_ssize_t i, n = x.shape[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            out[i] = <floating>_sigmoid1(x[i])
    else:
        with nogil:
            for i in range(n):
                out[i] = <floating>_sigmoid1(x[i])


def softplus(const floating[::1] x, floating[::1] out, bint par):
    """Stable ``max(x, 0) + log1p(exp(-|x|))``, computed in double."""
    cdef Py_ssize_t i, n = x.shape[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            out[i] = <floating>_softplus1(x[i])
    else:
        with nogil:
            for i in range(n):
                out[i] = <floating>_softplus1(x[i])


# ---------------------------------------------------------------------------- tanh
# float32: nanogan_tanh_f32 (_tanh.h), float32 arithmetic that GCC vectorises, within one ulp of
# the correctly rounded tanh (NumPy's float32 loop is not vectorised on every machine: about
# 2.8 ns a value on an AVX2 one, against 0.8). float64: NumPy's own loop (the one ``np.tanh``
# runs, found in the ufunc's table of loops), called on one run of values at a time from the
# threads: the same bits as ``np.tanh``, on all cores and while the run is in cache. Where the
# table has no such loop, or it does not give np.tanh's values on a test array, libm's tanh runs
# instead (within an ulp or two). The three helpers below (find a loop, run it on a run of
# values, check it on a probe) also serve the normal noise's log, sin and cos further down.
ctypedef void (*_ufunc_loop)(char** args, cnp.npy_intp* dims, cnp.npy_intp* steps,
                             void* data) noexcept nogil

cdef _ufunc_loop _loop_of(object ufunc, int code, void** data):
    """The loop of ``ufunc`` from ``code`` to ``code`` (one input, one output) in its table, or
    NULL; its data pointer goes to ``data``."""
    cdef cnp.ufunc u = <cnp.ufunc>ufunc
    cdef int i
    if u.nin != 1 or u.nout != 1:
        return NULL
    for i in range(u.ntypes):
        if u.types[2 * i] == code and u.types[2 * i + 1] == code:
            data[0] = u.data[i]
            return <_ufunc_loop><void*>u.functions[i]
    return NULL


cdef inline void _apply(_ufunc_loop f, void* data, void* src, void* dst, Py_ssize_t n,
                        Py_ssize_t size) noexcept nogil:
    """``dst[:n] = f(src[:n])``, contiguous runs of items of ``size`` bytes."""
    cdef char* args[2]
    cdef cnp.npy_intp dims[1]
    cdef cnp.npy_intp steps[2]
    args[0] = <char*>src
    args[1] = <char*>dst
    dims[0] = n
    steps[0] = size
    steps[1] = size
    f(args, dims, steps, data)


cdef bint _loop_agrees(_ufunc_loop f, void* data, object ufunc, object probe):
    """Whether ``f`` gives ``ufunc``'s values on ``probe`` (a 1-D contiguous float array)."""
    cdef cnp.ndarray t = probe.copy()
    if f == NULL:
        return False
    _apply(f, data, cnp.PyArray_DATA(t), cnp.PyArray_DATA(t), t.shape[0], t.itemsize)
    return bool(np.array_equal(t, ufunc(probe)))


cdef _ufunc_loop _TANH_LOOP64 = NULL   # NumPy's float64 loop; NULL: libm
cdef void* _TANH_DATA64 = NULL


def tanh_f32(float[::1] p):
    """``p = tanh(p)`` in place, by :c:func:`nanogan_tanh_f32` (for the tests)."""
    with nogil:
        nanogan_tanh_f32(&p[0], p.shape[0])


cdef inline void _tanh_run(floating* run, Py_ssize_t n) noexcept nogil:
    """``run[:n] = tanh(run[:n])`` in place."""
    cdef Py_ssize_t i
    if floating is float:
        nanogan_tanh_f32(run, n)
    elif _TANH_LOOP64 != NULL:
        _apply(_TANH_LOOP64, _TANH_DATA64, run, run, n, sizeof(floating))
    else:
        for i in range(n):
            run[i] = <floating>tanh(run[i])


def _find_tanh_loops():
    """Take ``np.tanh``'s float64 loop from its table, kept only if it gives ``np.tanh``'s values
    on a test array (returns ``['float64']`` if it was kept, else ``[]``)."""
    global _TANH_LOOP64
    _TANH_LOOP64 = _loop_of(np.tanh, cnp.NPY_FLOAT64, &_TANH_DATA64)
    probe = np.concatenate([np.linspace(-20, 20, 997), [0.0, -0.0, 1e-30, -1e-30, 9.1,
                                                          np.inf, -np.inf]])
    if _loop_agrees(_TANH_LOOP64, _TANH_DATA64, np.tanh, probe):
        return ["float64"]
    _TANH_LOOP64 = NULL
    return []


def use_numpy_tanh(bint on):
    """Whether :func:`bias_tanh` runs NumPy's float64 tanh loop (the default, where it passes the
    check of ``_find_tanh_loops``) or libm's ``tanh`` (the tests compare the two). Returns the
    dtypes that take NumPy's loop (float32 always takes ``nanogan_tanh_f32``)."""
    global TANH_FROM_NUMPY, _TANH_LOOP64
    if on:
        TANH_FROM_NUMPY = _find_tanh_loops()
    else:
        _TANH_LOOP64 = NULL
        TANH_FROM_NUMPY = []
    return list(TANH_FROM_NUMPY)


#: The dtypes whose tanh is NumPy's own loop (see :func:`use_numpy_tanh`).
TANH_FROM_NUMPY = _find_tanh_loops()


# ---------------------------------------------------------------------------- normal noise
# Box-Muller on 64-bit words (reference.normal_from_bits): the same operations on runs of CHUNK
# words that stay in L1, the log, sin and cos being NumPy's own loops (found and checked by the
# helpers of the tanh section above), so the values are the reference's to the bit.
# Where a loop is missing or fails its check the op returns False and the reference runs.
cdef enum:
    CHUNK = 256

cdef _ufunc_loop _LOG64 = NULL
cdef void* _LOG64_DATA = NULL
cdef _ufunc_loop _COS[2]
cdef _ufunc_loop _SIN[2]
cdef void* _COS_DATA[2]
cdef void* _SIN_DATA[2]
_COS[0] = _COS[1] = _SIN[0] = _SIN[1] = NULL


def _find_noise_loops():
    """Take ``np.log``'s float64 loop and ``np.cos``/``np.sin``'s float32 and float64 loops from
    their tables, each kept only if it gives the ufunc's values on a test array; returns the
    dtypes :func:`normal_from_bits` serves."""
    global _LOG64
    cdef int k
    _LOG64 = _loop_of(np.log, cnp.NPY_FLOAT64, &_LOG64_DATA)
    u = np.concatenate([np.linspace(2.0 ** -40, 1.0, 1999), [2.0 ** -40, 0.5, 1.0]])
    if not _loop_agrees(_LOG64, _LOG64_DATA, np.log, u):
        _LOG64 = NULL
    kept = []
    for k, (dt, code) in enumerate(((np.float32, cnp.NPY_FLOAT32), (np.float64, cnp.NPY_FLOAT64))):
        _COS[k] = _loop_of(np.cos, code, &_COS_DATA[k])
        _SIN[k] = _loop_of(np.sin, code, &_SIN_DATA[k])
        theta = (np.arange(0, 2 ** 24, 4099, dtype=np.uint64).astype(dt)
                 * dt(2 * np.pi / 2 ** 24))
        if not _loop_agrees(_COS[k], _COS_DATA[k], np.cos, theta):
            _COS[k] = NULL
        if not _loop_agrees(_SIN[k], _SIN_DATA[k], np.sin, theta):
            _SIN[k] = NULL
        if _LOG64 != NULL and _COS[k] != NULL and _SIN[k] != NULL:
            kept.append(np.dtype(dt).name)
    return kept


def use_numpy_noise(bint on):
    """Whether :func:`normal_from_bits` runs (with NumPy's loops, where they pass the check of
    ``_find_noise_loops``) or returns False so that the reference runs (the tests check both).
    Returns the dtypes it serves."""
    global NOISE_FROM_NUMPY, _LOG64
    if on:
        NOISE_FROM_NUMPY = _find_noise_loops()
    else:
        _LOG64 = NULL
        NOISE_FROM_NUMPY = []
    return list(NOISE_FROM_NUMPY)


#: The dtypes :func:`normal_from_bits` serves with NumPy's loops (the others: the reference).
NOISE_FROM_NUMPY = _find_noise_loops()


cdef void _normal_chunk(const uint64_t* w, Py_ssize_t m, floating* out, Py_ssize_t nout,
                        floating step) noexcept nogil:
    """``reference.normal_from_bits`` on ``m <= CHUNK`` words into ``out[:min(2m, nout)]``."""
    cdef int which = 0 if floating is float else 1
    cdef double u[CHUNK]
    cdef floating r[CHUNK]
    cdef floating th[CHUNK]
    cdef floating c[CHUNK]
    cdef floating sn[CHUNK]
    cdef Py_ssize_t i
    for i in range(m):
        u[i] = (<double>(w[i] >> 24) + 1.0) * (1.0 / 1099511627776.0)  # 2^-40
        th[i] = <floating>(w[i] & 0xFFFFFF) * step
    _apply(_LOG64, _LOG64_DATA, u, u, m, sizeof(double))
    _apply(_COS[which], _COS_DATA[which], th, c, m, sizeof(floating))
    _apply(_SIN[which], _SIN_DATA[which], th, sn, m, sizeof(floating))
    for i in range(m):
        r[i] = <floating>sqrt(u[i] * -2.0)
    for i in range(m):
        if 2 * i + 1 < nout:
            out[2 * i] = c[i] * r[i]
            out[2 * i + 1] = sn[i] * r[i]
        elif 2 * i < nout:
            out[2 * i] = c[i] * r[i]


def normal_from_bits(const uint64_t[::1] words, floating[::1] out, floating step, bint par):
    """:func:`reference.normal_from_bits` (``step``: ``ANGLE_STEP`` in out's dtype), runs of
    ``CHUNK`` words to the threads (``par``). Returns False, having written nothing, where
    NumPy's loops for out's dtype were not found (the caller then runs the reference)."""
    cdef int which = 0 if floating is float else 1
    cdef Py_ssize_t h = words.shape[0], n = out.shape[0], k, lo
    if _LOG64 == NULL or _COS[which] == NULL or _SIN[which] == NULL:
        return False
    if h == 0:
        return True
    cdef Py_ssize_t chunks = (h + CHUNK - 1) // CHUNK
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    cdef const uint64_t* wp = &words[0]
    cdef floating* op = &out[0]
    for k in prange(chunks, nogil=True, schedule="static", num_threads=nt):
        lo = k * CHUNK
        _normal_chunk(wp + lo, min(<Py_ssize_t>CHUNK, h - lo), op + 2 * lo, n - 2 * lo, step)
    return True


# ---------------------------------------------------------------------------- fused bias + act
def bias_leaky_relu(floating[:, :, ::1] z, const floating[::1] b, floating slope, bint par):
    """In place on ``z (N, C, M)``: ``z = leaky_relu(z + b[c], slope)`` (see :func:`_bias_act`
    for how the work is shared)."""
    _bias_act(&z[0, 0, 0], &b[0], z.shape[0], z.shape[1], z.shape[2], slope, False,
              openmp.omp_get_max_threads() if par else 1)


def bias_tanh(floating[:, :, ::1] z, const floating[::1] b, bint par):
    """In place on ``z (N, C, M)``: ``z = tanh(z + b[c])``, each run's bias added and the run
    then sent through tanh while it is in cache (see :func:`_bias_act`)."""
    _bias_act(&z[0, 0, 0], &b[0], z.shape[0], z.shape[1], z.shape[2], 0, True,
              openmp.omp_get_max_threads() if par else 1)


cdef inline void _bias_act_run(floating* run, Py_ssize_t n, const floating* b, Py_ssize_t bstep,
                               floating slope, bint tanh) noexcept nogil:
    """``run[k] = act(run[k] + b[k * bstep])`` for ``k < n`` (``bstep`` 0: one bias for the run,
    1: one per value); ``act`` is ``tanh`` or the leaky ReLU of ``slope``."""
    cdef Py_ssize_t k
    cdef floating b0 = b[0]
    if floating is float:
        if tanh:
            nanogan_bias_tanh_f32(run, n, b, bstep)
            return
    if tanh:
        if bstep:
            for k in range(n):
                run[k] = run[k] + b[k]
        else:
            for k in range(n):
                run[k] = run[k] + b0
        _tanh_run(run, n)
    elif bstep:
        for k in range(n):
            run[k] = _lrelu1(run[k] + b[k], slope)
    else:
        for k in range(n):
            run[k] = _lrelu1(run[k] + b0, slope)


cdef void _bias_act(floating* zp, const floating* bp, Py_ssize_t N, Py_ssize_t C, Py_ssize_t M,
                    floating slope, bint tanh, int nt) noexcept nogil:
    """The fused bias and activation in place on ``z (N, C, M)``: one image per work unit (for
    ``M = 1``, the Dense layout, one run along the bias), or one channel when there is one image
    (the plans' CNHW layout passes ``N = 1``)."""
    cdef Py_ssize_t n, c
    cdef floating* row
    if N == 1 and M > 1:
        for c in prange(C, schedule="static", num_threads=nt):
            _bias_act_run(zp + c * M, M, bp + c, 0, slope, tanh)
        return
    for n in prange(N, schedule="static", num_threads=nt):
        row = zp + n * C * M
        if M == 1:
            _bias_act_run(row, C, bp, 1, slope, tanh)
        else:
            for c in range(C):
                _bias_act_run(row + c * M, M, bp + c, 0, slope, tanh)


cdef enum:
    RUN_LANES = 32  # accumulators of a run's sum: two AVX-512 registers of floats


cdef inline floating _lrelu_grad_run(const floating* dy, const floating* y, floating slope,
                                     floating* du, Py_ssize_t M) noexcept nogil:
    """``du = dy * (1 if y > 0 else slope)`` over one run of ``M`` values; returns its sum, added
    in the array dtype in ``RUN_LANES`` accumulators (value ``k`` into accumulator
    ``k % RUN_LANES``, then the accumulators in order): a function of the run alone. One
    accumulator would be a chain of dependent additions, one every four cycles: ``(1, 256, 256)``
    took 58-71 us against 20-25 for the same values stored ``(256, 256, 1)``, whose sums
    vectorize across the channels (Zen 4, one thread)."""
    cdef Py_ssize_t k, j, blk, ML = M - M % RUN_LANES
    cdef floating g, total = 0
    cdef floating acc[RUN_LANES]
    for j in range(RUN_LANES):
        acc[j] = 0
    for blk in range(ML // RUN_LANES):
        k = blk * RUN_LANES
        for j in range(RUN_LANES):  # vectorizes: a blend, not a branch or a lookup
            g = dy[k + j] * (<floating>1 if y[k + j] > 0 else slope)
            du[k + j] = g
            acc[j] += g
    for k in range(ML, M):
        g = dy[k] * (<floating>1 if y[k] > 0 else slope)
        du[k] = g
        acc[k - ML] += g
    for j in range(RUN_LANES):
        total += acc[j]
    return total


def bias_leaky_relu_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] y,
                             floating slope, floating[:, :, ::1] du, floating[::1] db, bint par):
    """``du = dy * (1 if y > 0 else slope)`` and ``db[c] = sum du[:, c, :]`` in one serial pass,
    summing in the array dtype in the order of NumPy's ``du.sum(axis=0)`` for Dense layers
    (``M = 1``), so that a fused Dense + LeakyReLU gives the unfused layers' bias gradient. With
    one image (the plans' CNHW layout) channels go to threads (``par``): each channel's sum is
    :func:`_lrelu_grad_run`'s, a function of the run alone, on one thread or many."""
    cdef Py_ssize_t N = y.shape[0], C = y.shape[1], M = y.shape[2], n, c, k, i
    cdef floating g
    cdef floating fac[2]  # the activation's derivative, looked up without a branch
    cdef const floating* dyp = &dy[0, 0, 0]
    cdef const floating* yp = &y[0, 0, 0]
    cdef floating* dup = &du[0, 0, 0]
    cdef floating* dbp = &db[0]
    fac[0] = slope
    fac[1] = 1
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    if N == 1 and M > 1:
        for c in prange(C, nogil=True, schedule="static", num_threads=nt):
            dbp[c] = _lrelu_grad_run(dyp + c * M, yp + c * M, slope, dup + c * M, M)
        return
    with nogil:
        for c in range(C):
            dbp[c] = 0
        for n in range(N):
            i = n * C * M
            if M == 1:
                for c in range(C):  # vectorizes: a blend, not a branch or a lookup
                    g = dyp[i + c] * (<floating>1 if yp[i + c] > 0 else slope)
                    dup[i + c] = g
                    dbp[c] += g
            else:
                for c in range(C):
                    for k in range(M):
                        g = dyp[i + c * M + k] * fac[yp[i + c * M + k] > 0]
                        dup[i + c * M + k] = g
                        dbp[c] += g


# ---------------------------------------------------------------------------- batch norm
# The statistics are sums over the images and positions of each channel (shifted by the channel's
# first value, in double). A run of M values (one image, one channel) is summed in LANES
# independent accumulators: the compiler vectorizes them, where one accumulator would be a long
# chain of dependent additions. 32 of them are four AVX-512 registers of doubles, so that an
# addition need not wait for the one before it: 8 (one register) ran the forward pass at half the
# speed (DCGAN-28's (1, 64, 50176), one thread: 3.4 against 1.6 ms; 16: 2.8, 64: 1.7). The images are taken in blocks of a size that depends on the shape
# alone (at least BN_BLOCK values per block); each block's per-channel sums are formed image by
# image in memory order (all channels of an image, then the next image: one stream the
# prefetcher follows, where a channel at a time would jump C*M values between short runs), and
# the blocks' sums are then added in block order. Threads take whole blocks, so the result does
# not depend on the thread count: one thread and two give the same bits. ``slope`` is the fused
# leaky ReLU's (1 for none: ``u * 1 == u`` exactly).
cdef enum:
    LANES = 32
    SCRATCH = 512  # terms of the batch-norm backward sums computed per vectorised loop
    BN_BLOCK = 65536  # values per block of images, at least


cdef Py_ssize_t _bn_images_per_block(Py_ssize_t N, Py_ssize_t C, Py_ssize_t M) noexcept nogil:
    """Images per block: enough for ``BN_BLOCK`` values (a function of the shape alone)."""
    cdef Py_ssize_t per = C * M
    if per <= 0:
        return N if N > 0 else 1
    return min(max(N, 1), max(<Py_ssize_t>1, (BN_BLOCK + per - 1) // per))


cdef inline void _bn_stats_run(const floating* xr, double K, Py_ssize_t M, double* s1,
                               double* s2) noexcept nogil:
    """Add the sums of ``xr[k] - K`` and of its squares over one run of ``M`` values (in
    ``LANES`` accumulators, as :func:`_bn_forward_channel`) into ``*s1`` and ``*s2``."""
    cdef Py_ssize_t k, j, blk, ML = M - M % LANES
    cdef double d
    cdef double a[LANES]
    cdef double q[LANES]
    for j in range(LANES):
        a[j] = 0.0
        q[j] = 0.0
    for blk in range(ML // LANES):
        k = blk * LANES
        for j in range(LANES):
            d = xr[k + j] - K
            a[j] += d
            q[j] += d * d
    for k in range(ML, M):
        d = xr[k] - K
        a[0] += d
        q[0] += d * d
    for j in range(LANES):
        s1[0] += a[j]
        s2[0] += q[j]


cdef inline void _bn_stats_block(const floating* x, Py_ssize_t n0, Py_ssize_t n1,
                                 Py_ssize_t C, Py_ssize_t M, Py_ssize_t c0, Py_ssize_t c1,
                                 double* s1, double* s2) noexcept nogil:
    """The sums of the channels ``c0 <= c < c1`` over the images ``n0 <= n < n1`` into
    ``s1[c]``, ``s2[c]`` (zeroed here), image by image in memory order."""
    cdef Py_ssize_t n, c
    for c in range(c0, c1):
        s1[c] = 0.0
        s2[c] = 0.0
    for n in range(n0, n1):
        for c in range(c0, c1):
            _bn_stats_run(x + (n * C + c) * M, <double>x[c * M], M, &s1[c], &s2[c])


cdef inline void _bn_output_block(const floating* x, const floating* mean,
                                  const floating* scale, const floating* beta, floating slope,
                                  floating* y, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t C,
                                  Py_ssize_t M, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """``y = leaky_relu((x - mean) * scale + beta)`` for the images ``n0 <= n < n1``, channels
    ``c0 <= c < c1``."""
    cdef Py_ssize_t n, c, k
    cdef const floating* xr
    cdef floating* yr
    cdef floating mc, sc, b
    for n in range(n0, n1):
        for c in range(c0, c1):
            mc = mean[c]
            sc = scale[c]
            b = beta[c]
            xr = x + (n * C + c) * M
            yr = y + (n * C + c) * M
            for k in range(M):
                yr[k] = _lrelu1((xr[k] - mc) * sc + b, slope)


cdef inline void _bn_finish(const floating* x, const floating* gamma, floating eps, double s1,
                            double s2, double m, Py_ssize_t c, Py_ssize_t M, floating* mean,
                            floating* var, floating* inv_std, floating* scale) noexcept nogil:
    """Channel ``c``'s mean, variance, ``1/std`` and ``gamma/std`` from its sums ``s1``, ``s2``
    of ``m`` values shifted by its first value ``x[0, c, 0]`` (see ``_bn_stats_run``)."""
    cdef double e1 = s1 / m
    cdef double v = s2 / m - e1 * e1
    mean[c] = <floating>(x[c * M] + e1)
    var[c] = <floating>(v if v > 0 else 0.0)
    inv_std[c] = <floating>(1.0 / <floating>sqrt(var[c] + eps))
    scale[c] = gamma[c] * inv_std[c]


def batchnorm_forward(const floating[:, :, ::1] x, const floating[::1] gamma,
                      const floating[::1] beta, floating eps, floating slope,
                      floating[:, :, ::1] y, floating[::1] mean, floating[::1] var,
                      floating[::1] inv_std, bint par):
    """Training-mode batch norm of ``x (N, C, M)`` over axes 0 and 2 and a leaky ReLU of
    ``slope``; threads take blocks of images (see above), or channels when the images make one
    block (the plans' CNHW layout passes ``N = 1``: each channel one run of ``M`` values), with
    the same sums in the same order either way."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2], c, blk
    cdef Py_ssize_t B = _bn_images_per_block(N, C, M)
    cdef Py_ssize_t nblk = (N + B - 1) // B
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0]
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    cdef double[:, ::1] p1 = np.empty((nblk, C), np.float64)
    cdef double[:, ::1] p2 = np.empty((nblk, C), np.float64)
    cdef floating[::1] scale = np.empty(C, np.float32 if floating is float else np.float64)
    cdef double s1, s2, m = <double>(N * M)
    if nblk == 1:
        # channels to threads: a channel's statistics, then its output, while its values are
        # still in the cache (the same sums, in the same order, as the two separate passes)
        for c in prange(C, nogil=True, schedule="static", num_threads=nt):
            _bn_stats_block(xp, 0, N, C, M, c, c + 1, &p1[0, 0], &p2[0, 0])
            _bn_finish(xp, &gamma[0], eps, 0.0 + p1[0, c], 0.0 + p2[0, c], m, c, M, &mean[0],
                       &var[0], &inv_std[0], &scale[0])
            _bn_output_block(xp, &mean[0], &scale[0], &beta[0], slope, yp, 0, N, C, M, c, c + 1)
        return
    for blk in prange(nblk, nogil=True, schedule="static", num_threads=nt):
        _bn_stats_block(xp, blk * B, min(N, blk * B + B), C, M, 0, C, &p1[blk, 0], &p2[blk, 0])
    for c in range(C):
        s1 = 0.0
        s2 = 0.0
        for blk in range(nblk):
            s1 = s1 + p1[blk, c]
            s2 = s2 + p2[blk, c]
        _bn_finish(xp, &gamma[0], eps, s1, s2, m, c, M, &mean[0], &var[0], &inv_std[0],
                   &scale[0])
    for blk in prange(nblk, nogil=True, schedule="static", num_threads=nt):
        _bn_output_block(xp, &mean[0], &scale[0], &beta[0], slope, yp, blk * B,
                         min(N, blk * B + B), C, M, 0, C)


cdef inline void _bn_grad_sums_run(const floating* dy, const floating* y, floating slope,
                                   const floating* x, floating mc, floating ic, Py_ssize_t M,
                                   double* sb, double* sg) noexcept nogil:
    """Add one run's ``sum g`` and ``sum g * xhat`` (``g = dy`` through the activation) into
    ``*sb`` and ``*sg``, the terms as :func:`_bn_backward_channel` forms them."""
    cdef Py_ssize_t k, j, blk, k0, cnt, cl
    cdef double ab[LANES]
    cdef double ag[LANES]
    cdef double gs[SCRATCH]
    cdef double hs[SCRATCH]
    cdef floating g
    for j in range(LANES):
        ab[j] = 0.0
        ag[j] = 0.0
    k0 = 0
    while k0 < M:
        cnt = min(<Py_ssize_t>SCRATCH, M - k0)
        for k in range(cnt):
            g = dy[k0 + k] * (<floating>1 if y[k0 + k] > 0 else slope)
            gs[k] = g
            hs[k] = <floating>(g * ((x[k0 + k] - mc) * ic))  # rounded, then widened
        cl = cnt - cnt % LANES
        for blk in range(cl // LANES):
            for j in range(LANES):
                ab[j] += gs[blk * LANES + j]
                ag[j] += hs[blk * LANES + j]
        for k in range(cl, cnt):
            ab[0] += gs[k]
            ag[0] += hs[k]
        k0 += SCRATCH
    for j in range(LANES):
        sb[0] += ab[j]
        sg[0] += ag[j]


cdef inline void _bn_grad_sums_block(const floating* dy, const floating* y, floating slope,
                                     const floating* x, const floating* mean,
                                     const floating* inv_std, Py_ssize_t n0, Py_ssize_t n1,
                                     Py_ssize_t C, Py_ssize_t M, Py_ssize_t c0, Py_ssize_t c1,
                                     double* sb, double* sg) noexcept nogil:
    """The ``sum g`` and ``sum g * xhat`` of the channels ``c0 <= c < c1`` over the images
    ``n0 <= n < n1`` into ``sb[c]``, ``sg[c]`` (zeroed here), image by image in memory order."""
    cdef Py_ssize_t n, c, off
    for c in range(c0, c1):
        sb[c] = 0.0
        sg[c] = 0.0
    for n in range(n0, n1):
        for c in range(c0, c1):
            off = (n * C + c) * M
            _bn_grad_sums_run(dy + off, y + off, slope, x + off, mean[c], inv_std[c], M,
                              &sb[c], &sg[c])


cdef inline void _bn_dx_block(const floating* dy, const floating* y, floating slope,
                              const floating* x, const floating* mean, const floating* inv_std,
                              const floating* scale, const floating* dgamma,
                              const floating* dbeta, floating mf, floating* dx, Py_ssize_t n0,
                              Py_ssize_t n1, Py_ssize_t C, Py_ssize_t M, Py_ssize_t c0,
                              Py_ssize_t c1) noexcept nogil:
    """``dx = scale * (mf g - dbeta - xhat dgamma)`` for the images ``n0 <= n < n1``, channels
    ``c0 <= c < c1``."""
    cdef Py_ssize_t n, c, k, off
    cdef floating mc, ic, g, xhat, db, dg, sc
    for n in range(n0, n1):
        for c in range(c0, c1):
            mc = mean[c]
            ic = inv_std[c]
            db = dbeta[c]
            dg = dgamma[c]
            sc = scale[c]
            off = (n * C + c) * M
            for k in range(off, off + M):
                g = dy[k] * (<floating>1 if y[k] > 0 else slope)
                xhat = (x[k] - mc) * ic
                dx[k] = sc * (mf * g - db - xhat * dg)


def batchnorm_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] y,
                       floating slope, const floating[:, :, ::1] x,
                       const floating[::1] mean, const floating[::1] inv_std,
                       const floating[::1] gamma, floating mf, floating[:, :, ::1] dx,
                       floating[::1] dgamma, floating[::1] dbeta, bint par):
    """Backward of :func:`batchnorm_forward` (``mf = N*M`` in the array dtype; the activation's
    mask is read from its output ``y``); threads take blocks of images, or channels when the
    images make one block (as :func:`batchnorm_forward`)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2], c, blk
    cdef Py_ssize_t B = _bn_images_per_block(N, C, M)
    cdef Py_ssize_t nblk = (N + B - 1) // B
    cdef const floating* dyp = &dy[0, 0, 0]
    cdef const floating* yp = &y[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* dxp = &dx[0, 0, 0]
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    cdef double[:, ::1] pb = np.empty((nblk, C), np.float64)
    cdef double[:, ::1] pg = np.empty((nblk, C), np.float64)
    cdef floating[::1] scale = np.empty(C, np.float32 if floating is float else np.float64)
    cdef double tb, tg
    if nblk == 1:
        # channels to threads: a channel's sums, then its input gradient, while its values are
        # still in the cache (the same sums, in the same order, as the two separate passes)
        for c in prange(C, nogil=True, schedule="static", num_threads=nt):
            _bn_grad_sums_block(dyp, yp, slope, xp, &mean[0], &inv_std[0], 0, N, C, M, c, c + 1,
                                &pb[0, 0], &pg[0, 0])
            dbeta[c] = <floating>(0.0 + pb[0, c])
            dgamma[c] = <floating>(0.0 + pg[0, c])
            scale[c] = gamma[c] * inv_std[c] / mf
            _bn_dx_block(dyp, yp, slope, xp, &mean[0], &inv_std[0], &scale[0], &dgamma[0],
                         &dbeta[0], mf, dxp, 0, N, C, M, c, c + 1)
        return
    for blk in prange(nblk, nogil=True, schedule="static", num_threads=nt):
        _bn_grad_sums_block(dyp, yp, slope, xp, &mean[0], &inv_std[0], blk * B,
                            min(N, blk * B + B), C, M, 0, C, &pb[blk, 0], &pg[blk, 0])
    for c in range(C):
        tb = 0.0
        tg = 0.0
        for blk in range(nblk):
            tb = tb + pb[blk, c]
            tg = tg + pg[blk, c]
        dbeta[c] = <floating>tb
        dgamma[c] = <floating>tg
        scale[c] = gamma[c] * inv_std[c] / mf
    for blk in prange(nblk, nogil=True, schedule="static", num_threads=nt):
        _bn_dx_block(dyp, yp, slope, xp, &mean[0], &inv_std[0], &scale[0], &dgamma[0],
                     &dbeta[0], mf, dxp, blk * B, min(N, blk * B + B), C, M, 0, C)


# ---------------------------------------------------------------------------- loss
def bce_with_logits(const floating[::1] s, double t, floating c1, floating ct, floating n,
                    floating[::1] grad):
    """Sum of ``t softplus(-s) + (1 - t) softplus(s)`` (each term rounded to the array dtype,
    summed in double) and ``grad = ((1 - t) sigmoid(s) - t sigmoid(-s)) / n`` in one pass
    (``c1 = 1 - t``, ``ct = t`` and ``n`` in the array dtype)."""
    cdef Py_ssize_t i, size = s.shape[0]
    cdef double total = 0.0, v
    cdef floating sp_neg, sp_pos, sg_pos, sg_neg
    with nogil:
        for i in range(size):
            v = s[i]
            sp_neg = <floating>_softplus1(-v)
            sp_pos = <floating>_softplus1(v)
            total += t * sp_neg + (1.0 - t) * sp_pos
            sg_pos = <floating>_sigmoid1(v)
            sg_neg = <floating>_sigmoid1(-v)
            if t == 1.0:
                grad[i] = -sg_neg / n
            elif t == 0.0:
                grad[i] = sg_pos / n
            else:
                grad[i] = (c1 * sg_pos - ct * sg_neg) / n
    return total


# ---------------------------------------------------------------------------- optimizer updates
cdef inline void _sgd1(floating* p, const floating* g, floating* buf, Py_ssize_t i,
                       floating lr, floating momentum, floating damp1, bint nesterov,
                       floating wd, bint first) noexcept nogil:
    cdef floating d = g[i], b
    if wd != 0:
        d = d + wd * p[i]
    if momentum != 0:
        b = d if first else buf[i] * momentum + damp1 * d  # kept in a local, as in _adam1
        buf[i] = b
        d = d + momentum * b if nesterov else b
    p[i] = p[i] - lr * d


def sgd_update(floating[::1] p, const floating[::1] g, floating[::1] buf, floating lr,
               floating momentum, floating damp1, bint nesterov, floating wd, bint first,
               bint par):
    """PyTorch's SGD step in place (``damp1 = 1 - dampening``)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating* pp = &p[0]
    cdef const floating* gp = &g[0]
    cdef floating* bp = &buf[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            _sgd1(pp, gp, bp, i, lr, momentum, damp1, nesterov, wd, first)
    else:
        with nogil:
            for i in range(n):
                _sgd1(pp, gp, bp, i, lr, momentum, damp1, nesterov, wd, first)


cdef inline void _adam1(floating* p, const floating* g, floating* m, floating* v, Py_ssize_t i,
                        floating beta1, floating c1, floating beta2, floating c2, floating eps,
                        floating wd, floating step_size, floating sqrt_bc2) noexcept nogil:
    # the new moments are kept in locals: with m[i] read back after the stores of m and v (which
    # the compiler must assume may overlap), the kernel took 0.78-0.85 ns a value on a Zen 4
    # (one thread, arrays in cache), without it 0.48; the values are the same
    cdef floating gi = g[i], mi, vi, denom
    if wd != 0:
        gi = gi + wd * p[i]
    mi = m[i] * beta1 + c1 * gi
    vi = v[i] * beta2 + c2 * gi * gi
    m[i] = mi
    v[i] = vi
    denom = <floating>sqrt(vi) / sqrt_bc2 + eps  # all in the array dtype, as the reference
    p[i] = p[i] - (step_size * mi) / denom


def adam_update(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                floating beta1, floating c1, floating beta2, floating c2, floating eps,
                floating wd, floating step_size, floating sqrt_bc2, bint par):
    """PyTorch's Adam step in place (``c1 = 1 - beta1``, ``c2 = 1 - beta2``,
    ``step_size = lr / (1 - beta1^t)``, ``sqrt_bc2 = sqrt(1 - beta2^t)``)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating* pp = &p[0]
    cdef const floating* gp = &g[0]
    cdef floating* mp = &m[0]
    cdef floating* vp = &v[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            _adam1(pp, gp, mp, vp, i, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2)
    else:
        with nogil:
            for i in range(n):
                _adam1(pp, gp, mp, vp, i, beta1, c1, beta2, c2, eps, wd, step_size, sqrt_bc2)


cdef void _adam_span(const Py_ssize_t* addr, const Py_ssize_t* size, Py_ssize_t k,
                     Py_ssize_t lo, Py_ssize_t hi, floating beta1, floating c1, floating beta2,
                     floating c2, floating eps, floating wd, floating step_size,
                     floating sqrt_bc2) noexcept nogil:
    """:func:`_adam1` on the elements ``lo:hi`` of the ``k`` parameters laid end to end
    (``addr``: the addresses of p, g, m, v of parameter ``j`` at ``4 j`` to ``4 j + 3``)."""
    cdef Py_ssize_t j = 0, base = 0, a, b, i
    while j < k and base + size[j] <= lo:
        base += size[j]
        j += 1
    while j < k and base < hi:
        a = lo - base if lo > base else 0
        b = hi - base if hi - base < size[j] else size[j]
        for i in range(a, b):
            _adam1(<floating*>addr[4 * j], <const floating*>addr[4 * j + 1],
                   <floating*>addr[4 * j + 2], <floating*>addr[4 * j + 3], i, beta1, c1, beta2,
                   c2, eps, wd, step_size, sqrt_bc2)
        base += size[j]
        j += 1


cdef bint _adam_operand(object a, object dtype, object shape, bint write):
    """An array the many-parameter Adam can update through its address: of ``dtype`` and
    ``shape``, C-contiguous, and writeable where it is written."""
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
        return False
    return cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and (
        not write or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a))


def adam_update_many(list ps, list gs, list ms, list vs, double beta1, double c1, double beta2,
                     double c2, double eps, double wd, double step_size, double sqrt_bc2,
                     bint par):
    """:func:`adam_update` on every ``(p, g, m, v)`` of the lists at once: one parallel loop over
    all their elements laid end to end, the threads given equal shares (a model's parameters in
    one call instead of one call, and one meeting of the threads, per parameter). The scalars
    are already rounded to the arrays' dtype. Each element is updated as :func:`adam_update`
    updates it, so the results are the same bit for bit. Returns False, having done nothing,
    unless all arrays are C-contiguous of one float dtype, each parameter's four of one shape,
    ``p``, ``m`` and ``v`` writeable (the caller then updates them one by one)."""
    cdef Py_ssize_t k = len(ps), j, total = 0, t, nt
    if k == 0 or len(gs) != k or len(ms) != k or len(vs) != k:
        return False
    first = ps[0]
    if not isinstance(first, np.ndarray) or first.dtype not in (np.float32, np.float64):
        return False
    dtype = first.dtype
    addr_arr = np.empty(4 * k, dtype=np.intp)
    size_arr = np.empty(k, dtype=np.intp)
    cdef Py_ssize_t[::1] addr = addr_arr, size = size_arr
    for j in range(k):
        shape = getattr(ps[j], "shape", None)
        if not (_adam_operand(ps[j], dtype, shape, True) and _adam_operand(gs[j], dtype, shape, False)
                and _adam_operand(ms[j], dtype, shape, True)
                and _adam_operand(vs[j], dtype, shape, True)):
            return False
        addr[4 * j] = <Py_ssize_t>cnp.PyArray_DATA(<cnp.ndarray>ps[j])
        addr[4 * j + 1] = <Py_ssize_t>cnp.PyArray_DATA(<cnp.ndarray>gs[j])
        addr[4 * j + 2] = <Py_ssize_t>cnp.PyArray_DATA(<cnp.ndarray>ms[j])
        addr[4 * j + 3] = <Py_ssize_t>cnp.PyArray_DATA(<cnp.ndarray>vs[j])
        size[j] = cnp.PyArray_SIZE(<cnp.ndarray>ps[j])
        total += size[j]
    nt = openmp.omp_get_max_threads() if par else 1
    if nt < 1:
        nt = 1
    cdef const Py_ssize_t* ap = &addr[0]
    cdef const Py_ssize_t* sp = &size[0]
    cdef bint dbl = dtype == np.float64
    for t in prange(nt, nogil=True, schedule="static", chunksize=1, num_threads=nt):
        if dbl:
            _adam_span(ap, sp, k, total * t // nt, total * (t + 1) // nt, beta1, c1, beta2, c2,
                       eps, wd, step_size, sqrt_bc2)
        else:
            _adam_span(ap, sp, k, total * t // nt, total * (t + 1) // nt, <float>beta1,
                       <float>c1, <float>beta2, <float>c2, <float>eps, <float>wd,
                       <float>step_size, <float>sqrt_bc2)
    return True


cdef inline void _rmsprop1(floating* p, const floating* g, floating* sq, Py_ssize_t i,
                           floating lr, floating alpha, floating c, floating eps,
                           floating wd) noexcept nogil:
    cdef floating gi = g[i], si, root
    if wd != 0:
        gi = gi + wd * p[i]
    si = sq[i] * alpha + c * gi * gi  # kept in a local, as in _adam1
    sq[i] = si
    root = <floating>sqrt(si)
    p[i] = p[i] - lr * gi / (root + eps)


def rmsprop_update(floating[::1] p, const floating[::1] g, floating[::1] sq, floating lr,
                   floating alpha, floating c, floating eps, floating wd, bint par):
    """PyTorch's RMSprop step in place (``c = 1 - alpha``)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating* pp = &p[0]
    cdef const floating* gp = &g[0]
    cdef floating* sp = &sq[0]
    if par:
        for i in prange(n, nogil=True, schedule="static"):
            _rmsprop1(pp, gp, sp, i, lr, alpha, c, eps, wd)
    else:
        with nogil:
            for i in range(n):
                _rmsprop1(pp, gp, sp, i, lr, alpha, c, eps, wd)


# ---------------------------------------------------------------------------- split products
# A product C = op(A) op(B) (row-major CBLAS, op = transpose or not) cut into blocks of rows of C
# (or of columns, when C is wider than tall), one single-threaded BLAS call per thread: see
# nanogan/_kernels/_cblas.py for why nanogan's threads, not BLAS's, run the large products.
ctypedef long long i64
ctypedef void (*sgemm64_t)(int, int, int, i64, i64, i64, float, const float*, i64, const float*,
                           i64, float, float*, i64) noexcept nogil
ctypedef void (*dgemm64_t)(int, int, int, i64, i64, i64, double, const double*, i64,
                           const double*, i64, double, double*, i64) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float*, int, const float*,
                           int, float, float*, int) noexcept nogil
ctypedef void (*dgemm32_t)(int, int, int, int, int, int, double, const double*, int,
                           const double*, int, double, double*, int) noexcept nogil


cdef void _gemm_block(size_t fn, bint dbl, bint wide, int ta, int tb, i64 m, i64 n, i64 k,
                      size_t a, i64 lda, size_t b, i64 ldb, size_t c, i64 ldc,
                      double beta=0.0) noexcept nogil:
    """``C[m, n] = op(A)[m, k] op(B)[k, n] + beta C`` by the CBLAS function at address ``fn``
    (``beta`` 0: ``C`` is only written; 1: the product is added)."""
    if dbl and wide:
        (<dgemm64_t>fn)(101, ta, tb, m, n, k, 1.0, <const double*>a, lda, <const double*>b, ldb,
                        beta, <double*>c, ldc)
    elif dbl:
        (<dgemm32_t>fn)(101, ta, tb, <int>m, <int>n, <int>k, 1.0, <const double*>a, <int>lda,
                        <const double*>b, <int>ldb, beta, <double*>c, <int>ldc)
    elif wide:
        (<sgemm64_t>fn)(101, ta, tb, m, n, k, 1.0, <const float*>a, lda, <const float*>b, ldb,
                        <float>beta, <float*>c, ldc)
    else:
        (<sgemm32_t>fn)(101, ta, tb, <int>m, <int>n, <int>k, 1.0, <const float*>a, <int>lda,
                        <const float*>b, <int>ldb, <float>beta, <float*>c, <int>ldc)


cdef void _gemm_blocks(size_t fn, bint dbl, bint wide, int ta, int tb, i64 M, i64 N, i64 K,
                       size_t a, i64 lda, size_t b, i64 ldb, size_t c, i64 ldc,
                       int blocks) noexcept nogil:
    """``C (M, N) = op(A) op(B)``, the rows of ``C`` (its columns when ``N > M``) cut into
    ``blocks`` blocks (each a multiple of 16 long, the last one shorter), one per thread;
    ``a``, ``b``, ``c`` are data addresses, ``ta``/``tb`` CBLAS's transpose flags (111 no, 112
    yes), ``lda``, ``ldb``, ``ldc`` leading dimensions."""
    cdef int t, nt = blocks if blocks < openmp.omp_get_max_threads() else \
        openmp.omp_get_max_threads()
    cdef bint rows = M >= N
    cdef i64 lo, hi, total = M if rows else N
    cdef i64 step = ((total + blocks - 1) // blocks + 15) // 16 * 16
    cdef size_t size = 8 if dbl else 4
    for t in prange(blocks, schedule="static", chunksize=1, num_threads=nt):
        lo = t * step
        hi = lo + step
        if hi > total:
            hi = total
        if hi <= lo:
            continue
        if rows:  # rows lo:hi of C need rows lo:hi of op(A)
            _gemm_block(fn, dbl, wide, ta, tb, hi - lo, N, K,
                        a + size * <size_t>(lo if ta == 112 else lo * lda), lda, b, ldb,
                        c + size * <size_t>(lo * ldc), ldc)
        else:     # columns lo:hi of C need columns lo:hi of op(B)
            _gemm_block(fn, dbl, wide, ta, tb, M, hi - lo, K, a, lda,
                        b + size * <size_t>(lo * ldb if tb == 112 else lo), ldb,
                        c + size * <size_t>lo, ldc)


# The same product with the arrays themselves as arguments: the checks and layout descriptions
# of the Python front end (nanogan/_kernels/_common.py ``CompiledOps.gemm`` and
# nanogan/_kernels/_cblas.py ``layout``) done in C. A large product of a small network takes
# 0.1-0.2 ms, and reading shapes, strides and addresses through Python cost about 15 us of it.
cdef size_t _SGEMM = 0, _DGEMM = 0
cdef bint _WIDE = False


def set_cblas(size_t sgemm, size_t dgemm, bint wide):
    """Where :func:`gemm_arrays` finds ``cblas_sgemm`` and ``cblas_dgemm`` (0: not found), and
    whether they take 64-bit integers (see :mod:`nanogan._kernels._cblas`)."""
    global _SGEMM, _DGEMM, _WIDE
    _SGEMM, _DGEMM, _WIDE = sgemm, dgemm, wide


cdef inline bint _cblas_layout(cnp.ndarray x, int* trans, i64* ld) noexcept:
    """``_cblas.layout`` in C: rows (111) or columns (112) of unit stride, and the leading
    dimension; False for any other layout or an empty array."""
    cdef i64 r = cnp.PyArray_DIM(x, 0), c = cnp.PyArray_DIM(x, 1)
    cdef i64 s0 = cnp.PyArray_STRIDE(x, 0), s1 = cnp.PyArray_STRIDE(x, 1)
    cdef i64 size = cnp.PyArray_ITEMSIZE(x)
    if r == 0 or c == 0:
        return False
    if s1 == size and s0 % size == 0 and s0 >= size * c:
        trans[0], ld[0] = 111, s0 // size
        return True
    if s0 == size and s1 % size == 0 and s1 >= size * r:
        trans[0], ld[0] = 112, s1 // size
        return True
    return False


cdef inline void _extent(cnp.ndarray x, size_t* lo, size_t* hi) noexcept:
    """The bytes ``[lo, hi)`` that the non-empty 2-D array ``x`` spans (``np.may_share_memory``'s
    bounds)."""
    cdef i64 d, span, low = 0, high = cnp.PyArray_ITEMSIZE(x)
    for d in range(2):
        span = (cnp.PyArray_DIM(x, d) - 1) * cnp.PyArray_STRIDE(x, d)
        if span < 0:
            low += span
        else:
            high += span
    lo[0] = <size_t>cnp.PyArray_DATA(x) + <size_t>low
    hi[0] = <size_t>cnp.PyArray_DATA(x) + <size_t>high


cdef inline bint _apart(cnp.ndarray x, cnp.ndarray y) noexcept:
    """True when the extents of ``x`` and ``y`` do not overlap."""
    cdef size_t xl, xh, yl, yh
    _extent(x, &xl, &xh)
    _extent(y, &yl, &yh)
    return xh <= yl or yh <= xl


cdef struct _Product:
    # one product C (M, N) = op(A) op(B) as CBLAS takes it: data addresses, transpose flags,
    # leading dimensions, and the function (cblas_sgemm or cblas_dgemm)
    size_t fn, a, b, c
    bint dbl
    int ta, tb
    i64 M, N, K, lda, ldb, ldc


cdef object _product(object a, object b, object out, _Product* p):
    """The checks of :func:`gemm_arrays` for ``out = a @ b``: fills ``p`` and returns the result
    array (``out``, or a new one when ``out`` is None), or None when they do not hold."""
    cdef cnp.ndarray A, B, C
    cdef int tc, typ
    cdef cnp.npy_intp dims[2]
    if not (cnp.PyArray_Check(a) and cnp.PyArray_Check(b)):
        return None
    A, B = <cnp.ndarray>a, <cnp.ndarray>b
    typ = cnp.PyArray_TYPE(A)
    if cnp.PyArray_NDIM(A) != 2 or cnp.PyArray_NDIM(B) != 2 or cnp.PyArray_TYPE(B) != typ:
        return None
    p.fn = _SGEMM if typ == cnp.NPY_FLOAT32 else (_DGEMM if typ == cnp.NPY_FLOAT64 else 0)
    p.dbl = typ == cnp.NPY_FLOAT64
    p.M, p.K, p.N = cnp.PyArray_DIM(A, 0), cnp.PyArray_DIM(A, 1), cnp.PyArray_DIM(B, 1)
    if p.fn == 0 or cnp.PyArray_DIM(B, 0) != p.K:
        return None
    if not (_cblas_layout(A, &p.ta, &p.lda) and _cblas_layout(B, &p.tb, &p.ldb)):
        return None
    if not _WIDE and (p.M >= 2**31 or p.N >= 2**31 or p.K >= 2**31 or p.lda >= 2**31
                      or p.ldb >= 2**31):
        return None
    if out is None:
        dims[0], dims[1] = p.M, p.N
        C = cnp.PyArray_EMPTY(2, dims, typ, 0)
        p.ldc = p.N
    else:
        if not cnp.PyArray_Check(out):
            return None
        C = <cnp.ndarray>out
        if not (cnp.PyArray_NDIM(C) == 2 and cnp.PyArray_TYPE(C) == typ
                and cnp.PyArray_DIM(C, 0) == p.M and cnp.PyArray_DIM(C, 1) == p.N
                and _cblas_layout(C, &tc, &p.ldc) and tc == 111 and cnp.PyArray_ISWRITEABLE(C)
                and _apart(C, A) and _apart(C, B)):
            return None
    if not _WIDE and p.ldc >= 2**31:
        return None
    p.a, p.b = <size_t>cnp.PyArray_DATA(A), <size_t>cnp.PyArray_DATA(B)
    p.c = <size_t>cnp.PyArray_DATA(C)
    return C


def gemm_arrays(object a, object b, object out, int blocks):
    """The blocked product (``_gemm_blocks``) on arrays: ``out (M, N) = a (M, K) @ b (K, N)`` in
    ``blocks`` blocks, for
    float32 or float64 ``a``, ``b`` of one dtype whose layouts CBLAS reads (rows or columns of
    unit stride) and an ``out`` that is None (allocated here) or a writeable array of the
    result's shape and dtype stored by rows (C-contiguous, or a column slice of a wider array),
    sharing no memory with ``a`` or ``b``. Returns the result,
    or None when any of that does not hold (the caller then runs ``np.matmul``)."""
    cdef _Product p
    if blocks < 2:
        return None
    C = _product(a, b, out, &p)
    if C is None:
        return None
    with nogil:
        _gemm_blocks(p.fn, p.dbl, _WIDE, p.ta, p.tb, p.M, p.N, p.K, p.a, p.lda, p.b, p.ldb, p.c,
                     p.ldc, blocks)
    return C


def gemm_pair_arrays(object a1, object b1, object out1, object a2, object b2, object out2):
    """Two independent products, ``a1 @ b1`` and ``a2 @ b2`` (each as in :func:`gemm_arrays`),
    run side by side: each one single-threaded BLAS call on a thread of its own (a layer's
    weight and input gradients: one meeting of the threads instead of two, and each product
    whole instead of cut in halves). Returns ``(c1, c2)``, or None (nothing done) when either
    product fails the checks or a result overlaps an operand of the other product."""
    cdef _Product p1, p2
    cdef int t
    C1 = _product(a1, b1, out1, &p1)
    if C1 is None:
        return None
    C2 = _product(a2, b2, out2, &p2)
    if C2 is None or not (_apart(<cnp.ndarray>C1, <cnp.ndarray>a2)
                          and _apart(<cnp.ndarray>C1, <cnp.ndarray>b2)
                          and _apart(<cnp.ndarray>C2, <cnp.ndarray>a1)
                          and _apart(<cnp.ndarray>C2, <cnp.ndarray>b1)
                          and _apart(<cnp.ndarray>C1, <cnp.ndarray>C2)):
        return None
    for t in prange(2, nogil=True, schedule="static", chunksize=1,
                    num_threads=2 if openmp.omp_get_max_threads() >= 2 else 1):
        if t == 0:
            _gemm_block(p1.fn, p1.dbl, _WIDE, p1.ta, p1.tb, p1.M, p1.N, p1.K, p1.a, p1.lda, p1.b,
                        p1.ldb, p1.c, p1.ldc)
        else:
            _gemm_block(p2.fn, p2.dbl, _WIDE, p2.ta, p2.tb, p2.M, p2.N, p2.K, p2.a, p2.lda, p2.b,
                        p2.ldb, p2.c, p2.ldc)
    return C1, C2


# ---------------------------------------------------------------------------- convolution tiles
# A convolution's three products with its column matrix, ``A @ im2col(x)``, ``col2im(A @ B)``
# and ``A @ im2col(x)^T``, one tile of ``B`` images per work unit: a thread unfolds its tile into
# its own column buffer (sized by the caller to stay in the core's L2 cache, about 1 MB), then runs
# one single-threaded BLAS product on it. The columns never go to memory, and the threads meet
# once per call instead of twice per tile (once in im2col, once in the product).
cdef object _tile_buffers(Py_ssize_t nt, Py_ssize_t ncol, Py_ssize_t B, Py_ssize_t H,
                          Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t ph, Py_ssize_t pw, object dtype):
    """One row per thread: ``ncol`` values for a tile's columns (written before they are read),
    then the planes path's scratch for ``B`` images (see ``_im2col_planes``), zeroed: its padding
    entries are never written."""
    cdef Py_ssize_t PH = (H + 2 * ph + sh - 1) // sh, OW = (W + 2 * pw - kw) // sw + 1
    bufs = np.empty((nt, ncol + B * kw * sh * PH * OW + W + 2 * pw + kw), dtype)
    bufs[:, ncol:] = 0
    return bufs


cdef inline void _unfold_tile(const floating* x, floating* cols, floating* scratch, Py_ssize_t B,
                              Py_ssize_t n, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t sN, Py_ssize_t sC, Py_ssize_t kh, Py_ssize_t kw,
                              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                              Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """The columns ``(C*kh*kw, n*OH*OW)`` of the ``n <= B`` images from ``x`` on, channel by
    channel (``scratch``: this thread's, from :func:`_tile_buffers`)."""
    cdef Py_ssize_t c, PH = (H + 2 * ph + sh - 1) // sh
    for c in range(C):
        _im2col_planes(x, cols, scratch, c, B, n, C, H, W, sN, sC, kh, kw, sh, sw, ph, pw, OH, OW,
                       PH)


cdef inline bint _operand(object a, int typ, i64 rows, i64 cols, int* trans,
                          i64* ld) noexcept:
    """``a`` is a 2-D array of dtype ``typ`` and shape ``(rows, cols)`` whose layout CBLAS reads."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray A = <cnp.ndarray>a
    return (cnp.PyArray_NDIM(A) == 2 and cnp.PyArray_TYPE(A) == typ
            and cnp.PyArray_DIM(A, 0) == rows and cnp.PyArray_DIM(A, 1) == cols
            and _cblas_layout(A, trans, ld))


cdef inline bint _like(object y, int typ, i64 rows, i64 cols, i64 ld) noexcept:
    """``y`` is an array of dtype ``typ`` and shape ``(rows, cols)`` stored by rows at the row
    stride ``ld`` (that of the operand it goes with: one offset serves both)."""
    cdef int t
    cdef i64 ldy
    return (_operand(y, typ, rows, cols, &t, &ldy) and t == 111 and ldy == ld)


cdef inline void _lrelu_run(floating* run, Py_ssize_t n, floating slope) noexcept nogil:
    """The leaky ReLU in place on ``n`` values."""
    cdef Py_ssize_t k
    for k in range(n):
        run[k] = _lrelu1(run[k], slope)


def im2col_gemm(object a, const floating[::1] x, floating[:, ::1] out, Py_ssize_t N,
                Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC,
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                Py_ssize_t pw, Py_ssize_t B, bint par, bint act=False, double slope=0):
    """``out (M, N*OH*OW) = a (M, C*kh*kw) @ im2col(x)`` (image planes as in :func:`im2col`),
    ``B`` images per tile, each tile's columns of ``out`` one product; with ``act``, the leaky
    ReLU of ``slope`` applied to each tile's product while it is in cache. False (nothing done)
    when ``a`` is not an operand CBLAS reads, no CBLAS is known (and the columns are not thin)
    or ``OH*OW`` is below the planes path's ``SMALL_L``."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t L = OH * OW, K = C * kh * kw, M = out.shape[0], t, n0, n, tid, i
    cdef int typ = cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64
    cdef size_t fn = _SGEMM if floating is float else _DGEMM
    cdef int ta
    cdef i64 lda
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    if L < SMALL_L or not _operand(a, typ, M, K, &ta, &lda) or out.shape[1] != N * L:
        return False
    cdef bint thin = floating is float and _thin(K)
    if fn == 0 and not thin:
        return False
    if thin:  # the loops of _thin.h, by blocks of images, on a dense copy of a (M, K)
        a = np.ascontiguousarray(a)
    cdef Py_ssize_t BI = _thin_block(K * L, B) if thin else B
    cdef Py_ssize_t ncol = BI * K * L, ni, j
    cdef floating[:, ::1] bufs = _tile_buffers(nt, ncol, BI, H, W, kh, kw, sh, sw, ph, pw,
                                               np.float32 if floating is float else np.float64)
    cdef const floating* xp = &x[0]
    cdef floating* op = &out[0, 0]
    cdef floating* cols
    cdef size_t ap = <size_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    for t in prange((N + B - 1) // B, nogil=True, schedule="static", chunksize=1,
                    num_threads=nt):
        tid = openmp.omp_get_thread_num()
        cols = &bufs[tid, 0]
        n0 = t * B
        n = min(B, N - n0)
        if thin:
            for j in range((n + BI - 1) // BI):
                i = n0 + j * BI
                ni = min(BI, n0 + n - i)
                _unfold_tile(xp + i * sN, cols, cols + ncol, BI, ni, C, H, W, sN, sC, kh, kw,
                             sh, sw, ph, pw, OH, OW)
                nanogan_thin_ab(<const float*>ap, K, <const float*>cols, K, ni * L,
                                <float*>(op + i * L), N * L, M, act, <float>slope)
        else:
            _unfold_tile(xp + n0 * sN, cols, cols + ncol, B, n, C, H, W, sN, sC, kh, kw, sh,
                         sw, ph, pw, OH, OW)
            _gemm_block(fn, floating is double, _WIDE, ta, 111, M, n * L, K, ap, lda,
                        <size_t>cols, n * L, <size_t>(op + n0 * L), N * L)
            if act:
                for i in range(M):
                    _lrelu_run(op + i * (N * L) + n0 * L, n * L, <floating>slope)
    return True


def gemm_col2im(object a, object b, floating[::1] x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC, Py_ssize_t kh, Py_ssize_t kw,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t B,
                bint par, object y=None, double slope=0):
    """The image ``col2im(a (C*kh*kw, M) @ b (M, N*OH*OW))`` written into the planes of ``x``
    (as in :func:`col2im`: every pixel written), ``B`` images per tile; with ``y`` (stored like
    ``b``), ``b`` is first taken through the leaky ReLU's gradient, ``b if y > 0 else b *
    slope``, value by value as it is read. False (nothing done) when ``a`` or ``b`` is not an
    operand CBLAS reads, no CBLAS is known (and the columns are not thin), ``OH*OW`` is below
    ``SMALL_L`` or a ``y`` is given where the columns are not thin."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t L = OH * OW, K = C * kh * kw, M, PH, t, c, n0, n, tid, i
    cdef int typ = cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64
    cdef size_t fn = _SGEMM if floating is float else _DGEMM
    cdef size_t size = sizeof(floating)
    cdef int ta, tb
    cdef i64 lda, ldb
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    if L < SMALL_L or not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 2:
        return False
    M = cnp.PyArray_DIM(<cnp.ndarray>a, 1)
    if not (_operand(a, typ, K, M, &ta, &lda) and _operand(b, typ, M, N * L, &tb, &ldb)
            and tb == 111):
        return False
    cdef bint thin = floating is float and _thin(K)
    if (fn == 0 and not thin) or not (y is None or (thin and _like(y, typ, M, N * L, ldb))):
        return False
    if thin:  # the loops of _thin.h, by blocks of images, on a dense copy of a (K, M)
        a = np.ascontiguousarray(a)
    cdef size_t yp = 0 if y is None else <size_t>cnp.PyArray_DATA(<cnp.ndarray>y)
    PH = (H + 2 * ph + sh - 1) // sh
    cdef Py_ssize_t BI = _thin_block(K * L, B) if thin else B
    cdef Py_ssize_t ncol = BI * K * L, ni, j
    cdef floating[:, ::1] bufs = _tile_buffers(nt, ncol, BI, H, W, kh, kw, sh, sw, ph, pw,
                                               np.float32 if floating is float else np.float64)
    cdef floating* xp = &x[0]
    cdef floating* cols
    cdef size_t ap = <size_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef size_t bp = <size_t>cnp.PyArray_DATA(<cnp.ndarray>b)
    for t in prange((N + B - 1) // B, nogil=True, schedule="static", chunksize=1,
                    num_threads=nt):
        tid = openmp.omp_get_thread_num()
        cols = &bufs[tid, 0]
        n0 = t * B
        n = min(B, N - n0)
        if thin:
            for j in range((n + BI - 1) // BI):
                i = n0 + j * BI
                ni = min(BI, n0 + n - i)
                nanogan_thin_atb(<const float*>ap, M, <const float*>(bp + size * <size_t>(i * L)),
                                 ldb, M, <float*>cols, K, ni * L,
                                 <const float*>(yp + size * <size_t>(i * L)) if yp else NULL,
                                 <float>slope)
                for c in range(C):
                    _col2im_planes(cols, xp + i * sN, cols + ncol, c, BI, ni, C, H, W, sN, sC,
                                   kh, kw, sh, sw, ph, pw, OH, OW, PH)
        else:
            _gemm_block(fn, floating is double, _WIDE, ta, 111, K, n * L, M, ap, lda,
                        bp + size * <size_t>(n0 * L), ldb, <size_t>cols, n * L)
            for c in range(C):
                _col2im_planes(cols, xp + n0 * sN, cols + ncol, c, B, n, C, H, W, sN, sC, kh,
                               kw, sh, sw, ph, pw, OH, OW, PH)
    return True


def gemm_im2col_t(object a, const floating[::1] x, floating[:, :, ::1] acc, Py_ssize_t N,
                  Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t sN, Py_ssize_t sC,
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                  Py_ssize_t pw, Py_ssize_t B, bint swap, bint par, object y=None,
                  double slope=0):
    """``a (M, N*OH*OW) @ im2col(x)^T``, ``B`` images per tile, summed per thread: thread ``i``
    adds its tiles' products into ``acc[i]`` (zeroed by the caller; ``(M, C*kh*kw)``, or with
    ``swap`` the transposed product ``(C*kh*kw, M)``, which BLAS runs faster when ``C*kh*kw >
    M``); the caller sums ``acc`` over its first axis, in order. Tile ``t`` goes to thread ``t %
    threads``, so the sums are the same from run to run. With ``y`` (stored like ``a``), ``a`` is
    first taken through the leaky ReLU's gradient, as in :func:`gemm_col2im`. False (nothing
    done) as in :func:`im2col_gemm`, or where a ``y`` is given and the columns are not thin."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t L = OH * OW, K = C * kh * kw, M, t, n0, n, tid, i
    cdef int typ = cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64
    cdef size_t fn = _SGEMM if floating is float else _DGEMM
    cdef size_t size = sizeof(floating)
    cdef int ta
    cdef i64 lda
    cdef int nt = acc.shape[0]
    if L < SMALL_L or not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 2:
        return False
    M = cnp.PyArray_DIM(<cnp.ndarray>a, 0)
    if (not _operand(a, typ, M, N * L, &ta, &lda) or ta != 111
            or acc.shape[1] != (K if swap else M) or acc.shape[2] != (M if swap else K)):
        return False
    cdef bint thin = floating is float and _thin(K) and nanogan_thin_abt_ok(K)
    if (fn == 0 and not thin) or not (y is None or (thin and _like(y, typ, M, N * L, lda))):
        return False
    cdef size_t yp = 0 if y is None else <size_t>cnp.PyArray_DATA(<cnp.ndarray>y)
    if not par:
        nt = 1
    cdef Py_ssize_t BI = _thin_block(K * L, B) if thin else B
    cdef Py_ssize_t ncol = BI * K * L, ni, j
    cdef floating[:, ::1] bufs = _tile_buffers(nt, ncol, BI, H, W, kh, kw, sh, sw, ph, pw,
                                               np.float32 if floating is float else np.float64)
    # thin: per thread, 16 partial sums (one per vector lane) of every (m, k), summed below
    cdef float[:, ::1] lanes = np.zeros((nt, M * K * 16 if thin else 1), np.float32)
    cdef Py_ssize_t m, k, l
    cdef double sl
    cdef const floating* xp = &x[0]
    cdef floating* cols
    cdef size_t ap = <size_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    for t in prange((N + B - 1) // B, nogil=True, schedule="static", chunksize=1,
                    num_threads=nt):
        tid = openmp.omp_get_thread_num()
        cols = &bufs[tid, 0]
        n0 = t * B
        n = min(B, N - n0)
        if thin:
            for j in range((n + BI - 1) // BI):
                i = n0 + j * BI
                ni = min(BI, n0 + n - i)
                _unfold_tile(xp + i * sN, cols, cols + ncol, BI, ni, C, H, W, sN, sC, kh, kw,
                             sh, sw, ph, pw, OH, OW)
                nanogan_thin_abt(<const float*>(ap + size * <size_t>(i * L)), lda, M,
                                 <const float*>cols, K, ni * L, &lanes[tid, 0],
                                 <const float*>(yp + size * <size_t>(i * L)) if yp else NULL,
                                 <float>slope)
            continue
        _unfold_tile(xp + n0 * sN, cols, cols + ncol, B, n, C, H, W, sN, sC, kh, kw, sh, sw,
                     ph, pw, OH, OW)
        if swap:  # acc (K, M) += cols (K, nL) @ a_t^T
            _gemm_block(fn, floating is double, _WIDE, 111, 112, K, M, n * L, <size_t>cols,
                        n * L, ap + size * <size_t>(n0 * L), lda, <size_t>&acc[tid, 0, 0], M,
                        1.0)
        else:     # acc (M, K) += a_t (M, nL) @ cols^T
            _gemm_block(fn, floating is double, _WIDE, 111, 112, M, K, n * L,
                        ap + size * <size_t>(n0 * L), lda, <size_t>cols, n * L,
                        <size_t>&acc[tid, 0, 0], K, 1.0)
    if thin:  # each thread's lanes, added in order into its accumulator
        for tid in range(nt):
            for m in range(M):
                for k in range(K):
                    sl = 0
                    for l in range(16):
                        sl = sl + lanes[tid, (m * K + k) * 16 + l]
                    if swap:
                        acc[tid, k, m] += <floating>sl
                    else:
                        acc[tid, m, k] += <floating>sl
    return True


# ---------------------------------------------------------------------------- whole-window products
# The gradients of a convolution whose window covers each whole image, on images stored channels
# first (x (C, N, P), the plans' CNHW layout; see reference.window_forward), for a few output
# channels: one pass over x (or dx) per output channel, channels to the threads, where the
# reference runs a BLAS product per channel (the weight gradient) and a broadcast multiply whose
# inner loop is one run of P values (the input gradient: DCGAN-28's last layer, (128, 256, 49),
# 1.5 ms in NumPy). The weight gradient is the reference's product per channel, run on all
# threads; a loop of sums in double took longer (1.0 against 0.8 ms a call in DCGAN-28's iteration
# on two threads) and remains only where no CBLAS is found.
# (The forward pass stays the reference's products: a loop over the images ran slower than BLAS's
# dot products there.)
def window_weight_grad(const floating[:, ::1] dy, const floating[:, :, ::1] x,
                       floating[:, :, ::1] dw, double[:, ::1] acc, bint par):
    """``dw[o, c, p] = sum_n dy[o, n] x[c, n, p]``, one channel per work unit: with CBLAS, the
    product ``dy (O, N) @ x[c] (N, P)`` written into ``dw[:, c, :]`` (the reference's product per
    channel, on all threads); else sums in double, each position in its own accumulator."""
    cdef Py_ssize_t O = dw.shape[0], C = dw.shape[1], P = dw.shape[2], N = x.shape[1]
    cdef Py_ssize_t n, o, c, p
    cdef int nt = acc.shape[0] if par else 1
    cdef double* a
    cdef double d
    cdef const floating* xr
    cdef size_t fn = _SGEMM if floating is float else _DGEMM
    cdef size_t size = sizeof(floating)
    if fn != 0 and (_WIDE or (N < 2**31 and C * P < 2**31)):
        for c in prange(C, nogil=True, schedule="static", num_threads=nt):
            _gemm_block(fn, floating is double, _WIDE, 111, 111, O, P, N,
                        <size_t>&dy[0, 0], N, <size_t>&x[c, 0, 0], P, <size_t>&dw[0, c, 0],
                        C * P)
        return
    for c in prange(C, nogil=True, schedule="static", num_threads=nt):
        a = &acc[openmp.omp_get_thread_num(), 0]
        for o in range(O):
            for p in range(P):
                a[p] = 0
            for n in range(N):
                d = dy[o, n]
                xr = &x[c, n, 0]
                for p in range(P):
                    a[p] += d * <double>xr[p]
            for p in range(P):
                dw[o, c, p] = <floating>a[p]


def window_input_grad(const floating[:, ::1] dy, const floating[:, :, ::1] w,
                      floating[:, :, ::1] dx, bint par):
    """``dx[c, n, p] = sum_o dy[o, n] w[o, c, p]`` in the array dtype, ``o`` in order (one
    output channel: the product alone, as the reference), one channel per work unit."""
    cdef Py_ssize_t O = w.shape[0], C = w.shape[1], P = w.shape[2], N = dx.shape[1]
    cdef Py_ssize_t n, o, c, p
    cdef int nt = openmp.omp_get_max_threads() if par else 1
    cdef floating d
    cdef floating* row
    cdef const floating* wr
    for c in prange(C, nogil=True, schedule="static", num_threads=nt):
        for n in range(N):
            row = &dx[c, n, 0]
            d = dy[0, n]
            wr = &w[0, c, 0]
            for p in range(P):
                row[p] = d * wr[p]
            for o in range(1, O):
                d = dy[o, n]
                wr = &w[o, c, 0]
                for p in range(P):
                    row[p] = row[p] + d * wr[p]


# ---------------------------------------------------------------------------- memory pool
cdef extern from "_pool.h":
    # NumPy memory handler keeping large freed blocks for reuse (nanogan/_kernels/_pool.h)
    object nanogan_pool_capsule()
    size_t nanogan_pool_release()
    void nanogan_pool_set_limit(size_t limit)
    void nanogan_pool_stats(size_t* out)
    int nanogan_pool_hugepages
    size_t nanogan_pool_huge_min

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

_POOL_HANDLER = nanogan_pool_capsule()


def pool_enter():
    """Make the pool NumPy's memory handler in the current context; returns the handler it
    replaces (for :func:`pool_exit`)."""
    return PyDataMem_SetHandler(_POOL_HANDLER)


def pool_exit(previous):
    """Put back the handler :func:`pool_enter` replaced."""
    PyDataMem_SetHandler(previous)


def pool_release():
    """Give every kept block back to the C library; returns the bytes released."""
    return nanogan_pool_release()


def pool_set_limit(size_t limit):
    """Keep at most ``limit`` bytes of freed blocks (blocks already kept stay)."""
    nanogan_pool_set_limit(limit)


def pool_set_hugepages(bint on, min_bytes=None):
    """Offer transparent huge pages to new blocks of ``min_bytes`` or more (on by default, from
    4 MiB, as NumPy's own allocator); returns the previous on/off setting."""
    global nanogan_pool_hugepages, nanogan_pool_huge_min
    cdef bint was = nanogan_pool_hugepages != 0
    nanogan_pool_hugepages = 1 if on else 0
    if min_bytes is not None:
        nanogan_pool_huge_min = <size_t>max(int(min_bytes), 4096)
    return was


def pool_stats():
    """``{"blocks", "bytes", "limit", "hits", "misses"}`` of the pool."""
    cdef size_t out[5]
    nanogan_pool_stats(out)
    return {"blocks": out[0], "bytes": out[1], "limit": out[2], "hits": out[3],
            "misses": out[4]}
