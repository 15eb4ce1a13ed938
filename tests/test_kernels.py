"""Every op of every compiled kernel set equals the reference kernels (the reference itself is
checked against PyTorch and the naive loops through the layer tests).

Tolerances: relative 1e-5 in float32 and 1e-12 in float64. Where a result is a sum (col2im, the
batch-norm statistics and gradients, optimizer states) the absolute part of the tolerance is the
same relative tolerance times the magnitude of the summed terms, since compiled kernels may add in
another order (they accumulate in float64, the reference adds pairwise in the array dtype).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nanogan import _kernels
from nanogan._kernels import _cblas, _common, _threads
from nanogan._kernels import reference as ref

SETS = _kernels.available()
COMPILED = [name for name in SETS if name != "reference"]
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def kernels(name: str):
    return _kernels.load(name)


def assert_matches(actual, expected, scale=0.0) -> None:
    """Same dtype and shape, and ``|actual - expected| <= rtol (|expected| + scale)``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    rtol = RTOL[expected.dtype]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.max(scale, initial=0))


def draw_array(draw, shape, dtype, lo=-10.0, hi=10.0) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(dtype)


# ---------------------------------------------------------------------------- im2col / col2im
@st.composite
def conv_geometry(draw):
    """Shapes, windows, strides (also larger than the window) and paddings (up to the window)."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    H = draw(st.integers(max(1, kh - 2 * ph), 12))
    W = draw(st.integers(max(1, kw - 2 * pw), 12))
    return (N, C, H, W), (kh, kw, sh, sw, ph, pw)


#: Named geometries: DCGAN-28 layers, stride > kernel, padding >= kernel/2, batch 1, odd sizes,
#: non-square windows and strides, padding as large as the window, 1x1, and batches beyond one
#: block of images with tiny outputs (the blocked loops of the compiled sets).
GEOMETRIES = [
    ((2, 3, 14, 14), (4, 4, 2, 2, 1, 1)),
    ((1, 2, 7, 7), (7, 7, 1, 1, 0, 0)),
    ((1, 1, 9, 11), (2, 2, 3, 3, 0, 0)),
    ((2, 2, 5, 7), (3, 3, 1, 1, 2, 2)),
    ((1, 3, 7, 9), (2, 5, 1, 3, 1, 2)),
    ((3, 1, 6, 5), (3, 1, 2, 1, 3, 1)),
    ((2, 2, 3, 3), (1, 1, 1, 1, 0, 0)),
    ((1, 1, 1, 1), (3, 3, 4, 5, 1, 1)),
    ((37, 3, 5, 5), (5, 5, 1, 1, 0, 0)),
    ((35, 2, 6, 6), (3, 3, 2, 2, 1, 1)),
    ((17, 2, 4, 5), (3, 2, 3, 2, 2, 1)),
    # the planes path of the compiled sets: its kw = 4, sw = 2 specialisations with an odd
    # padded width (the last padded column: right padding, or with pw = 0 an image column that
    # no window reads), kw = 4 with other strides, and planes too large for one block of images
    ((3, 2, 15, 13), (4, 4, 2, 2, 1, 1)),
    ((2, 2, 11, 13), (4, 4, 2, 2, 0, 0)),
    ((2, 3, 8, 8), (4, 4, 1, 1, 2, 2)),
    ((2, 2, 16, 17), (4, 4, 3, 3, 1, 2)),
    ((10, 2, 60, 60), (4, 4, 2, 2, 1, 1)),
    ((9, 1, 50, 41), (5, 3, 1, 2, 2, 1)),
]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "geom"), GEOMETRIES)
def test_im2col_col2im_named_geometries(name, dtype, shape, geom):
    k = kernels(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    cols = k.im2col(x, *geom)
    assert_matches(cols, ref.im2col(x, *geom))
    assert cols.flags.c_contiguous
    c = rng.standard_normal(cols.shape).astype(dtype)
    assert_matches(k.col2im(c, shape, *geom), ref.col2im(c, shape, *geom),
                   scale=ref.col2im(np.abs(c), shape, *geom))


@pytest.mark.parametrize("name", COMPILED)
@given(geometry=conv_geometry(), data=st.data())
def test_im2col_matches_reference(name, geometry, data):
    shape, geom = geometry
    for dtype in DTYPES:
        x = draw_array(data.draw, shape, dtype)
        cols = kernels(name).im2col(x, *geom)
        assert_matches(cols, ref.im2col(x, *geom))


@pytest.mark.parametrize("name", COMPILED)
@given(geometry=conv_geometry(), data=st.data())
def test_col2im_matches_reference(name, geometry, data):
    shape, geom = geometry
    rows = ref.im2col(np.zeros(shape), *geom).shape
    for dtype in DTYPES:
        c = draw_array(data.draw, rows, dtype)
        out = kernels(name).col2im(c, shape, *geom)
        assert_matches(out, ref.col2im(c, shape, *geom),
                       scale=ref.col2im(np.abs(c), shape, *geom))


@pytest.mark.parametrize("name", SETS)
@given(geometry=conv_geometry(), data=st.data())
def test_col2im_is_the_adjoint_of_im2col(name, geometry, data):
    """``<im2col(x), c> == <x, col2im(c)>`` for all x and c."""
    k = kernels(name)
    shape, geom = geometry
    x = draw_array(data.draw, shape, np.float64)
    cols = k.im2col(x, *geom)
    c = draw_array(data.draw, cols.shape, np.float64)
    back = k.col2im(c, shape, *geom)
    lhs, rhs = float(np.sum(cols * c)), float(np.sum(x * back))
    assert abs(lhs - rhs) <= 1e-12 * float(np.sum(np.abs(cols * c)) + 1e-300)


@pytest.mark.parametrize("name", COMPILED)
def test_im2col_of_a_non_contiguous_input(name):
    x = np.random.default_rng(1).standard_normal((5, 6, 3, 2)).transpose(3, 2, 1, 0)
    assert_matches(kernels(name).im2col(x, 3, 2, 2, 1, 1, 1), ref.im2col(x, 3, 2, 2, 1, 1, 1))


def _storage(shape: tuple[int, ...], layout: str, fill, dtype) -> np.ndarray:
    """Storage for an image of ``shape (N, C, H, W)`` kept as a batch slice of a larger NCHW
    array, in the plans' CNHW order (channels, then images), or as a batch slice of larger CNHW
    storage; see :func:`_in`."""
    N, C, H, W = shape
    full = {"nchw-slice": (N + 3, C, H, W), "cnhw": (C, N, H, W), "cnhw-slice": (C, N + 3, H, W)}
    return np.full(full[layout], fill, dtype)


def _in(storage: np.ndarray, layout: str, n: int) -> np.ndarray:
    """The ``(n, C, H, W)`` view of the image that :func:`_storage` made room for."""
    if layout == "nchw-slice":
        return storage[2:n + 2]
    if layout == "cnhw":
        return storage.transpose(1, 0, 2, 3)
    return storage[:, 1:n + 1].transpose(1, 0, 2, 3)


PLANE_LAYOUTS = ["nchw-slice", "cnhw", "cnhw-slice"]


@pytest.mark.parametrize("name", SETS)
@settings(max_examples=30, deadline=None)
@given(geometry=conv_geometry(), layout=st.sampled_from(PLANE_LAYOUTS), data=st.data())
def test_im2col_col2im_on_strided_planes(name, geometry, layout, data):
    """im2col reads, and col2im with ``out=`` writes, an image stored as a batch slice, in CNHW
    order or as a batch slice of CNHW storage (what the plans' tiles are) in place: the same
    numbers as on a C-contiguous image, every pixel of ``out`` written (it starts as NaN), and
    nothing around it touched (NaN stays NaN there)."""
    k = kernels(name)
    shape, geom = geometry
    for dtype in DTYPES:
        x = draw_array(data.draw, shape, dtype)
        store = _storage(shape, layout, np.nan, dtype)
        view = _in(store, layout, shape[0])
        view[...] = x
        assert _common._planes(view) is not None  # the compiled sets read it in place
        assert_matches(k.im2col(view, *geom), ref.im2col(x, *geom))
        c = draw_array(data.draw, ref.im2col(x, *geom).shape, dtype)
        store = _storage(shape, layout, np.nan, dtype)
        out = _in(store, layout, shape[0])
        assert k.col2im(c, shape, *geom, out=out) is out
        assert_matches(out, ref.col2im(c, shape, *geom), scale=ref.col2im(np.abs(c), shape, *geom))
        inside = _storage(shape, layout, False, bool)
        _in(inside, layout, shape[0])[...] = True
        assert np.isnan(store[~inside]).all()


@pytest.mark.parametrize("name", SETS)
def test_col2im_out_of_another_layout_or_shape(name):
    """An ``out`` the kernel cannot write plane by plane (stepped rows, another dtype) gets the
    result copied in; one of another shape is refused, naming the argument."""
    k = kernels(name)
    rng = np.random.default_rng(3)
    shape, geom = (2, 3, 8, 8), (4, 4, 2, 2, 1, 1)
    c = rng.standard_normal(ref.im2col(np.zeros(shape), *geom).shape)
    want = ref.col2im(c, shape, *geom)
    stepped = np.full((2, 3, 8, 16), np.nan)[..., ::2]
    assert k.col2im(c, shape, *geom, out=stepped) is stepped
    assert_matches(stepped, want, scale=ref.col2im(np.abs(c), shape, *geom))
    other = np.zeros(shape, np.float32)
    k.col2im(c, shape, *geom, out=other)
    np.testing.assert_allclose(other, want.astype(np.float32), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="'out' expected shape"):
        k.col2im(c, shape, *geom, out=np.zeros((2, 3, 8, 7)))


@st.composite
def simd_geometry(draw):
    """Planes around the AVX-512 path's limits (a padded row of up to 32 values, an output row of
    up to 16), with outputs of at least 16 pixels (the planes path)."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    H = draw(st.integers(max(4, kh - 2 * ph), 20))
    W = draw(st.integers(max(1, kw - 2 * pw), 34 - 2 * pw))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W), (kh, kw, sh, sw, ph, pw)


@pytest.mark.skipif("cython" not in COMPILED, reason="the Cython extension is not built")
@settings(max_examples=60, deadline=None)
@given(geometry=simd_geometry(), layout=st.sampled_from(["nchw", *PLANE_LAYOUTS]), data=st.data())
def test_cython_simd_planes_equal_portable_loops_and_reference(geometry, layout, data):
    """The float32 SIMD im2col/col2im (``nanogan/_kernels/_simd.h``: AVX-512 or AVX2) against
    the portable loops and the reference: im2col bit for bit (it copies), col2im bit for bit
    against the reference (it adds the window offsets in the reference's order, from zero);
    also where the geometry is outside the SIMD path (then both runs are the portable loops)."""
    ext = kernels("cython")._OPS._k
    shape, geom = geometry
    N = shape[0]
    x = draw_array(data.draw, shape, np.float32)
    cols = draw_array(data.draw, ref.im2col(x, *geom).shape, np.float32)
    if layout != "nchw":
        view = _in(_storage(shape, layout, np.nan, np.float32), layout, N)
        view[...] = x
    else:
        view = x
    results = []
    try:
        for simd in (False, True):
            ext.use_simd(simd)
            out = _in(_storage(shape, "cnhw", np.nan, np.float32), "cnhw", N)
            results.append((kernels("cython").im2col(view, *geom),
                            kernels("cython").col2im(cols, shape, *geom, out=out)))
    finally:
        ext.use_simd(True)
    (c0, x0), (c1, x1) = results
    np.testing.assert_array_equal(c0, ref.im2col(x, *geom))
    np.testing.assert_array_equal(c1, c0)
    want = ref.col2im(cols, shape, *geom)
    kh, kw, sh, sw, ph, pw = geom
    OH = ref.conv_output_size(shape[2], kh, sh, ph)
    OW = ref.conv_output_size(shape[3], kw, sw, pw)
    col2im_simd = ext.simd_applies(shape[2], shape[3], ph, pw, OW)[1] and OH * OW >= 16
    if ext.use_simd(True) and col2im_simd:  # (the planes path: L >= 16)
        np.testing.assert_array_equal(x1, want)
    assert_matches(x0, want, scale=ref.col2im(np.abs(cols), shape, *geom))


# ---------------------------------------------------------------------------- convolution products
@pytest.fixture(params=["own threads", "blas threads"])
def product_threads(request, monkeypatch):
    """The two ways products run: on the kernel set's threads with BLAS on one (``configure()``'s
    mode: the Cython set's fused convolution kernels run), or on BLAS's own threads (every set
    composes im2col/col2im and ``np.matmul`` tile by tile)."""
    own = request.param == "own threads"
    _kernels.get_backend()  # the set chosen at import loaded: its gemm takes the products
    if own and not (_threads._BLAS and _cblas.GEMM and _threads._gemm[0]):
        pytest.skip("no OpenBLAS with CBLAS")
    before = _threads._adaptive[0]
    _threads.adaptive_blas(own)
    yield own
    _threads.adaptive_blas(before)


def _conv_products(k, x, a_fwd, a_bwd, b, geom, out_fwd=None, out_bwd=None):
    return (k.im2col_matmul(a_fwd, x, *geom, out=out_fwd),
            k.matmul_col2im(a_bwd, b, x.shape, *geom, out=out_bwd),
            k.matmul_im2col_t(b, x, *geom))


@pytest.mark.parametrize("name", SETS)
@settings(max_examples=40, deadline=None,  # the fixtures set constants, the same for every input
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(geometry=conv_geometry(), m=st.integers(1, 6), limit=st.sampled_from([1, 40, 300, 2**40]),
       layout=st.sampled_from(["nchw", *PLANE_LAYOUTS]), par=st.booleans(), data=st.data())
def test_conv_products_match_reference(product_threads, monkeypatch, name, geometry, m, limit,
                                       layout, par, data):
    """``im2col_matmul``, ``matmul_col2im`` and ``matmul_im2col_t`` equal the reference (the
    whole column matrix, one product) for any geometry, tile size (one image per tile, a short
    last tile, one tile), image layout (the plans' CNHW views, batch slices) and ``out`` (an
    ``(M, N*L)`` array; image planes written in place, nothing around them touched)."""
    monkeypatch.setattr(_threads, "CONV_TILE_ELEMENTS", limit)
    monkeypatch.setattr(_threads, "CONV_THREAD_TILE_ELEMENTS", limit)
    monkeypatch.setattr(_common, "PARALLEL_MIN", 0 if par else 2**62)  # all threads, or one
    monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
    monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
    k = kernels(name)
    shape, geom = geometry
    N, C, H, W = shape
    kh, kw, sh, sw, ph, pw = geom
    L = ref.conv_output_size(H, kh, sh, ph) * ref.conv_output_size(W, kw, sw, pw)
    for dtype in DTYPES:
        x = draw_array(data.draw, shape, dtype)
        if layout != "nchw":
            store = _storage(shape, layout, np.nan, dtype)
            view = _in(store, layout, N)
            view[...] = x
        else:
            view = x
        a_fwd = draw_array(data.draw, (m, C * kh * kw), dtype)
        a_bwd = draw_array(data.draw, (m, C * kh * kw), dtype).T    # W2^T: a transposed view
        b = draw_array(data.draw, (m, N * L), dtype)
        out_fwd = np.full((m, N * L), np.nan, dtype)
        img = _storage(shape, "cnhw" if layout == "nchw" else layout, np.nan, dtype)
        out_bwd = _in(img, "cnhw" if layout == "nchw" else layout, N)
        got = _conv_products(k, view, a_fwd, a_bwd, b, geom, out_fwd, out_bwd)
        assert got[0] is out_fwd and got[1] is out_bwd
        cols = ref.im2col(x, *geom)
        assert_matches(got[0], a_fwd @ cols, scale=np.abs(a_fwd) @ np.abs(cols))
        assert_matches(got[1], ref.col2im(a_bwd @ b, shape, *geom),
                       scale=ref.col2im(np.abs(a_bwd) @ np.abs(b), shape, *geom))
        assert_matches(got[2], b @ cols.T, scale=np.abs(b) @ np.abs(cols).T)
        inside = _storage(shape, "cnhw" if layout == "nchw" else layout, False, bool)
        _in(inside, "cnhw" if layout == "nchw" else layout, N)[...] = True
        assert np.isnan(img[~inside]).all()
        # without out=, and again: the same bits (the per-thread sums go to fixed threads)
        again = _conv_products(k, view, a_fwd, a_bwd, b, geom)
        for g, h in zip(got, again):
            np.testing.assert_array_equal(g, h)


def _leaky_output(draw, shape, dtype):
    """A leaky ReLU's output: values of both signs, and zeros of both signs (its gradient takes
    ``slope`` at ``y = 0``)."""
    y = draw_array(draw, shape, dtype)
    flat = y.reshape(-1)
    flat[::7] = 0.0
    flat[3::11] = -0.0
    return y


@pytest.mark.parametrize("name", SETS)
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(geometry=conv_geometry(), m=st.integers(1, 20), slope=st.sampled_from([0.0, 0.2, 1.5]),
       thin=st.booleans(), par=st.booleans(), data=st.data())
def test_conv_products_through_the_leaky_relu(product_threads, monkeypatch, name, geometry, m,
                                              slope, thin, par, data):
    """With ``slope`` the forward product is ``leaky_relu(a @ im2col(x))``; with ``y`` and
    ``slope`` the backward products read their gradient operand through the leaky ReLU's
    gradient. Each equals the reference, and on each set the same bits as the set's own ops one
    after the other (the activation sees the same values); one-channel images (``thin``) take the
    Cython set's loops for thin column matrices where the build has them."""
    monkeypatch.setattr(_common, "PARALLEL_MIN", 0 if par else 2**62)
    monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
    monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
    k = kernels(name)
    (N, C, H, W), geom = geometry
    kh, kw, sh, sw, ph, pw = geom
    if thin:  # one channel, at most 16 window taps, at least SMALL_L = 16 outputs per image
        C, H, W = 1, H + 12, W + 12
        kh, kw, sh, sw = min(kh, 4), min(kw, 4), min(sh, 2), min(sw, 2)
        ph, pw = min(ph, kh), min(pw, kw)
        geom = (kh, kw, sh, sw, ph, pw)
    shape = (N, C, H, W)
    L = ref.conv_output_size(H, kh, sh, ph) * ref.conv_output_size(W, kw, sw, pw)
    for dtype in DTYPES:
        x = draw_array(data.draw, shape, dtype)
        a = draw_array(data.draw, (m, C * kh * kw), dtype)
        b = draw_array(data.draw, (m, N * L), dtype)
        y = _leaky_output(data.draw, (m, N * L), dtype)
        cols = ref.im2col(x, *geom)
        fwd = k.im2col_matmul(a, x, *geom, slope=slope)
        assert_matches(fwd, ref.leaky_relu(a @ cols, slope), scale=np.abs(a) @ np.abs(cols))
        np.testing.assert_array_equal(fwd, k.leaky_relu(k.im2col_matmul(a, x, *geom), slope))
        d = ref.leaky_relu_backward(b, y, slope)
        bwd = k.matmul_col2im(a.T, b, shape, *geom, y=y, slope=slope)
        assert_matches(bwd, ref.col2im(a.T @ d, shape, *geom),
                       scale=ref.col2im(np.abs(a.T) @ np.abs(d), shape, *geom))
        np.testing.assert_array_equal(bwd, k.matmul_col2im(a.T, k.leaky_relu_backward(b, y, slope),
                                                           shape, *geom))
        wgt = k.matmul_im2col_t(b, x, *geom, y=y, slope=slope)
        assert_matches(wgt, d @ cols.T, scale=np.abs(d) @ np.abs(cols).T)
        np.testing.assert_array_equal(wgt, k.matmul_im2col_t(k.leaky_relu_backward(b, y, slope),
                                                             x, *geom))


@pytest.mark.skipif("cython" not in SETS, reason="the Cython set is not built")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels, geom", [
    (1, (4, 4, 2, 2, 1, 1)),   # DCGAN-28's: K = 16, the unrolled loops
    (1, (3, 3, 1, 1, 1, 1)),   # K = 9
    (2, (2, 3, 2, 1, 0, 1)),   # K = 12, unequal window, strides and padding
])
def test_thin_loops_agree_with_blas(product_threads, dtype, channels, geom):
    """One-channel (or few-channel) convolutions at batch 5, DCGAN-28's Conv2d(1, 64, 4, 2, 1)
    and its transpose among them: the Cython set's thin loops (float32, AVX-512 or AVX2; K =
    C*kh*kw <= 16) against its BLAS products on the same tiles, and both against the reference;
    the switch says whether the build has the loops."""
    k = kernels("cython")
    ext = k._OPS._k
    rng = np.random.default_rng(3)
    kh, kw, sh, sw, ph, pw = geom
    L = ((28 + 2 * ph - kh) // sh + 1) * ((28 + 2 * pw - kw) // sw + 1)
    x = rng.standard_normal((5, channels, 28, 28)).astype(dtype)
    a = rng.standard_normal((64, channels * kh * kw)).astype(dtype)
    b = rng.standard_normal((64, 5 * L)).astype(dtype)
    y = rng.standard_normal((64, 5 * L)).astype(dtype)
    runs = {}
    try:
        for on in (False, True):
            built = ext.use_thin(on)
            runs[on] = (k.im2col_matmul(a, x, *geom, slope=0.2),
                        k.matmul_col2im(a.T, b, x.shape, *geom, y=y, slope=0.2),
                        k.matmul_im2col_t(b, x, *geom, y=y, slope=0.2))
    finally:
        ext.use_thin(True)
    cols = ref.im2col(x, *geom)
    d = ref.leaky_relu_backward(b, y, 0.2)
    want = (ref.leaky_relu(a @ cols, 0.2), ref.col2im(a.T @ d, x.shape, *geom), d @ cols.T)
    for got in runs.values():
        for g, w in zip(got, want):
            assert_matches(g, w, scale=np.abs(w).max())
    if not (built and product_threads and dtype == np.float32):
        for g, h in zip(runs[True], runs[False]):  # the loops did not run: the same path twice
            np.testing.assert_array_equal(g, h)


@pytest.mark.parametrize("name", SETS)
def test_conv_products_refuse_a_bad_activation_output(name):
    """``y`` of another shape than the operand it goes with, or ``y`` without ``slope``, is
    refused naming the op and the argument."""
    k = kernels(name)
    x = np.zeros((2, 1, 8, 8))
    geom = (4, 4, 2, 2, 1, 1)
    a, b = np.zeros((16, 3)), np.zeros((3, 32))
    with pytest.raises(ValueError, match=r"matmul_col2im: argument 'y' expected shape \(3, 32\)"):
        k.matmul_col2im(a, b, x.shape, *geom, y=np.zeros((3, 31)), slope=0.2)
    with pytest.raises(ValueError, match="matmul_im2col_t: argument 'slope' is needed"):
        k.matmul_im2col_t(b, x, *geom, y=np.zeros((3, 32)))


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize(("shape", "geom"), [GEOMETRIES[0], GEOMETRIES[-2], GEOMETRIES[-1]])
def test_conv_products_named_geometries(product_threads, monkeypatch, name, shape, geom):
    """The DCGAN-28 layer shapes and planes too large for one block of images, at the default
    tile sizes (several tiles per thread at batch 10); on the set's own threads the Cython set
    runs its fused kernels."""
    k = kernels(name)
    fused = []
    low = getattr(getattr(k, "_OPS", None), "_k", None)
    for op in ("im2col_gemm", "gemm_col2im", "gemm_im2col_t"):
        if hasattr(low, op):
            real = getattr(low, op)
            monkeypatch.setattr(low, op, lambda *a, _f=real: (fused.append(1), _f(*a))[1])
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        x = rng.standard_normal(shape).astype(dtype)
        K = shape[1] * geom[0] * geom[1]
        cols = ref.im2col(x, *geom)
        a = rng.standard_normal((7, K)).astype(dtype)
        b = rng.standard_normal((7, cols.shape[1])).astype(dtype)
        got = _conv_products(k, x, a, np.ascontiguousarray(a.T), b, geom)
        assert_matches(got[0], a @ cols, scale=np.abs(a) @ np.abs(cols))
        assert_matches(got[1], ref.col2im(a.T @ b, shape, *geom),
                       scale=ref.col2im(np.abs(a.T) @ np.abs(b), shape, *geom))
        assert_matches(got[2], b @ cols.T, scale=np.abs(b) @ np.abs(cols).T)
    assert len(fused) == (6 if product_threads and hasattr(low, "im2col_gemm") else 0)


@pytest.mark.parametrize("name", SETS)
def test_conv_products_refuse_mismatched_operands(name):
    """An operand that does not fit the image and window is refused, naming the op, the argument
    and both shapes; an ``out`` of another layout or dtype gets the result copied in."""
    k = kernels(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8))
    geom = (4, 4, 2, 2, 1, 1)                                  # K = 48, N*L = 32
    with pytest.raises(ValueError, match=r"im2col_matmul: argument 'a' expected shape \(5, 48\)"):
        k.im2col_matmul(np.zeros((5, 47)), x, *geom)
    with pytest.raises(ValueError, match="im2col_matmul: argument 'out' expected shape"):
        k.im2col_matmul(np.zeros((5, 48)), x, *geom, out=np.zeros((5, 31)))
    with pytest.raises(ValueError, match=r"matmul_col2im: argument 'b' expected shape \(5, 32\)"):
        k.matmul_col2im(np.zeros((48, 5)), np.zeros((5, 33)), x.shape, *geom)
    with pytest.raises(ValueError, match="matmul_col2im: argument 'a' expected shape"):
        k.matmul_col2im(np.zeros((47, 5)), np.zeros((5, 32)), x.shape, *geom)
    with pytest.raises(ValueError, match=r"matmul_im2col_t: argument 'a' expected shape \(5, 32\)"):
        k.matmul_im2col_t(np.zeros((5, 30)), x, *geom)
    a = rng.standard_normal((5, 48))
    stepped = np.full((5, 64), np.nan)[:, ::2]
    assert k.im2col_matmul(a, x, *geom, out=stepped) is stepped
    cols = ref.im2col(x, *geom)
    assert_matches(stepped, a @ cols, scale=np.abs(a) @ np.abs(cols))


# ---------------------------------------------------------------------------- activations
EXTREMES = [0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 1.0, -1.0, 20.0, -20.0, 88.0, -88.0, 89.0,
            -89.0, 700.0, -700.0, 1e4, -1e4, 1e30, -1e30, np.inf, -np.inf]

shapes = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)
values = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@st.composite
def activation_input(draw):
    shape = draw(shapes)
    dtype = draw(st.sampled_from(DTYPES))
    x = draw_array(draw, shape, dtype, -30.0, 30.0)
    if x.size:  # sprinkle extreme values
        picks = draw(st.lists(st.tuples(st.integers(0, x.size - 1), values), max_size=4))
        for i, v in picks:
            x.reshape(-1)[i] = v
    return x


@pytest.mark.parametrize("name", COMPILED)
@given(x=activation_input(), slope=st.sampled_from([0.0, 0.01, 0.2, 1.0, -0.5]))
@example(x=np.array(EXTREMES, np.float32), slope=0.2)
@example(x=np.array(EXTREMES, np.float64), slope=0.0)
def test_leaky_relu_and_backward(name, x, slope):
    k = kernels(name)
    with np.errstate(invalid="ignore"):  # -inf * 0 is nan, in the reference too
        assert_matches(k.leaky_relu(x, slope), ref.leaky_relu(x, slope))
        dy = x[..., ::-1] * x.dtype.type(0.5) if x.ndim else x * x.dtype.type(0.5)
        assert_matches(k.leaky_relu_backward(dy, x, slope),
                       ref.leaky_relu_backward(dy, x, slope))


@pytest.mark.parametrize("name", COMPILED)
@given(x=activation_input())
@example(x=np.array(EXTREMES, np.float32))
@example(x=np.array(EXTREMES, np.float64))
def test_tanh_backward(name, x):
    """``dy * (1 - y^2)`` to the bit of NumPy's expression (every operation in the array dtype,
    no fused multiply-add), for outputs of tanh (saturated ones included) and, the formula being
    defined for any ``y``, for arbitrary values up to the extremes."""
    k = kernels(name)
    dy = x[..., ::-1] * x.dtype.type(0.5) if x.ndim else x * x.dtype.type(0.5)
    with np.errstate(over="ignore", invalid="ignore"):
        for y in (np.tanh(x), x):
            got, want = k.tanh_backward(dy, y), ref.tanh_backward(dy, y)
            assert got.dtype == want.dtype == x.dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", COMPILED)
@given(x=activation_input())
@example(x=np.array(EXTREMES, np.float32))
@example(x=np.array(EXTREMES, np.float64))
def test_sigmoid_and_softplus(name, x):
    k = kernels(name)
    assert_matches(k.sigmoid(x), ref.sigmoid(x))
    assert_matches(k.softplus(x), ref.softplus(x))


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_softplus_finite_at_extremes(name, dtype):
    k = kernels(name)
    x = np.array([-1e4, -1e3, -100.0, 0.0, 100.0, 1e3, 1e4], dtype)
    s, sp = k.sigmoid(x), k.softplus(x)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    assert s.dtype == sp.dtype == x.dtype
    np.testing.assert_array_equal(s[[0, -1]], [0.0, 1.0])
    np.testing.assert_array_equal(sp[[0, -1]], [0.0, 1e4])


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_parallel_sizes_and_layouts(name, dtype):
    """Arrays above the parallel threshold, and non-contiguous views."""
    k = kernels(name)
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((_common.PARALLEL_MIN // 64 + 3, 64)) * 10).astype(dtype)
    for arr in (x, x.T, x[::2, 1::3]):
        dy = np.ones_like(arr) * dtype(3)
        assert_matches(k.leaky_relu(arr, 0.2), ref.leaky_relu(arr, 0.2))
        assert_matches(k.leaky_relu_backward(dy, arr, 0.2), ref.leaky_relu_backward(dy, arr, 0.2))
        y = np.tanh(arr)
        assert_matches(k.tanh_backward(dy, y), ref.tanh_backward(dy, y), scale=np.abs(dy))
        assert_matches(k.sigmoid(arr), ref.sigmoid(arr))
        assert_matches(k.softplus(arr), ref.softplus(arr))


@pytest.mark.parametrize("name", COMPILED)
def test_non_float_inputs_follow_the_reference(name):
    k = kernels(name)
    xi = np.arange(-3, 4)
    np.testing.assert_array_equal(k.leaky_relu(xi, 0.5), ref.leaky_relu(xi, 0.5))
    np.testing.assert_array_equal(k.sigmoid(xi), ref.sigmoid(xi))
    x32, x64 = np.linspace(-2, 2, 5, dtype=np.float32), np.linspace(-2, 2, 5)
    out = k.leaky_relu_backward(x64, x32, 0.1)
    assert out.dtype == ref.leaky_relu_backward(x64, x32, 0.1).dtype
    np.testing.assert_array_equal(k.tanh_backward(x64, x32), ref.tanh_backward(x64, x32))
    assert k.tanh_backward(x64, x32).dtype == np.float64


# ---------------------------------------------------------------------------- batch norm
@st.composite
def batchnorm_input(draw):
    N, C, M = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 20))
    if N * M < 2:
        M = 2
    dtype = draw(st.sampled_from(DTYPES))
    scale = draw(st.sampled_from([1e-2, 1.0, 30.0]))
    offset = draw(st.floats(-5, 5))
    x = (draw_array(draw, (N, C, M), np.float64) * scale + offset).astype(dtype)
    gamma = draw_array(draw, (C,), dtype, -2, 2)
    beta = draw_array(draw, (C,), dtype, -2, 2)
    dy = draw_array(draw, (N, C, M), dtype, -3, 3)
    return x, gamma, beta, dy, draw(st.sampled_from([1e-5, 1e-3, 0.1]))


@pytest.mark.parametrize("name", COMPILED)
@given(case=batchnorm_input())
def test_batchnorm_forward(name, case):
    x, gamma, beta, _, eps = case
    y, mean, var, inv_std = kernels(name).batchnorm_forward(x, gamma, beta, eps)
    ry, rmean, rvar, rinv = ref.batchnorm_forward(x, gamma, beta, eps)
    sums = np.abs(x).mean(axis=(0, 2))
    assert_matches(mean, rmean, scale=sums)
    assert_matches(var, rvar, scale=((x - rmean[None, :, None]) ** 2).mean(axis=(0, 2)))
    assert_matches(inv_std, rinv)
    assert_matches(y, ry, scale=np.abs(gamma[None, :, None]) * (1 + np.abs(
        (x - rmean[None, :, None]) * rinv[None, :, None])) + np.abs(beta[None, :, None]))


@pytest.mark.parametrize("name", COMPILED)
@given(case=batchnorm_input())
def test_batchnorm_backward(name, case):
    x, gamma, beta, dy, eps = case
    _, mean, _, inv_std = ref.batchnorm_forward(x, gamma, beta, eps)
    dx, dgamma, dbeta = kernels(name).batchnorm_backward(dy, x, mean, inv_std, gamma)
    rdx, rdgamma, rdbeta = ref.batchnorm_backward(dy, x, mean, inv_std, gamma)
    m = x.shape[0] * x.shape[2]
    xhat = np.abs((x - mean[None, :, None]) * inv_std[None, :, None])
    assert_matches(dbeta, rdbeta, scale=np.abs(dy).sum(axis=(0, 2)))
    assert_matches(dgamma, rdgamma, scale=(np.abs(dy) * xhat).sum(axis=(0, 2)))
    terms = np.abs(gamma * inv_std / m)[None, :, None] * (
        m * np.abs(dy) + np.abs(dy).sum(axis=(0, 2))[None, :, None]
        + xhat * (np.abs(dy) * xhat).sum(axis=(0, 2))[None, :, None])
    assert_matches(dx, rdx, scale=terms)


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_dcgan_shape(name, dtype):
    """A DCGAN-28 shape (64 channels of 14x14), where each channel sums 1,568 values."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((8, 64, 196)) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    gamma, beta = np.ones(64, dtype) * dtype(1.5), np.zeros(64, dtype) + dtype(0.25)
    k = kernels(name)
    got, want = k.batchnorm_forward(x, gamma, beta, 1e-5), ref.batchnorm_forward(x, gamma, beta,
                                                                                 1e-5)
    for a, b in zip(got, want):
        assert_matches(a, b, scale=np.abs(b).max() * 10)
    _, mean, _, inv_std = want
    got = k.batchnorm_backward(dy, x, mean, inv_std, gamma)
    want = ref.batchnorm_backward(dy, x, mean, inv_std, gamma)
    m = x.shape[0] * x.shape[2]
    for a, b, s in zip(got, want, (np.abs(dy).max() * 3 * 1.5, m * 3.0, m * 3.0)):
        assert_matches(a, b, scale=s)


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [1.0, 0.2])
def test_batchnorm_backward_long_rows(name, dtype, slope):
    """Rows of 1,100 values per image and channel: longer than the chunks the compiled backward
    sums at a time (two whole chunks and a tail that is not a multiple of the lanes)."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 2, 1100)) * 3 - 1).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    gamma, beta = np.array([1.5, -0.5], dtype), np.array([0.25, 0.0], dtype)
    k = kernels(name)
    y, mean, _, inv_std = ref.batchnorm_leaky_relu(x, gamma, beta, 1e-5, slope)
    got = k.batchnorm_leaky_relu_backward(dy, y, x, mean, inv_std, gamma, slope)
    want = ref.batchnorm_leaky_relu_backward(dy, y, x, mean, inv_std, gamma, slope)
    m = x.shape[0] * x.shape[2]
    for a, b, s in zip(got, want, (np.abs(dy).max() * 3 * 1.5, m * 3.0, m * 3.0)):
        assert_matches(a, b, scale=s)
    dx = got[0]
    assert not np.array_equal(dx, np.zeros_like(dx))


# ---------------------------------------------------------------------------- optimizer updates
@st.composite
def optimizer_case(draw):
    shape = draw(st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple))
    dtype = draw(st.sampled_from(DTYPES))
    p = draw_array(draw, shape, dtype, -2, 2)
    g = draw_array(draw, shape, dtype, -1, 1)
    s1 = draw_array(draw, shape, dtype, -1, 1)
    s2 = np.abs(draw_array(draw, shape, dtype, 0, 1e-2))
    return p, g, s1, s2, draw(st.sampled_from([0.0, 1e-2]))


def check_in_place(name, op, arrays, args) -> None:
    """Run ``op`` of ``name`` and of the reference on copies; the updated arrays are the very
    arrays passed in and equal the reference."""
    mine = [a.copy() for a in arrays]
    theirs = [a.copy() for a in arrays]
    ids = [id(a) for a in mine]
    assert getattr(kernels(name), op)(*mine, *args) is None
    getattr(ref, op)(*theirs, *args)
    assert [id(a) for a in mine] == ids
    for a, b, before in zip(mine, theirs, arrays):
        assert_matches(a, b, scale=np.abs(before).max() + np.abs(b).max())


@pytest.mark.parametrize("name", COMPILED)
@given(case=optimizer_case(), momentum=st.sampled_from([0.0, 0.9]),
       dampening=st.sampled_from([0.0, 0.1]), nesterov=st.booleans(), first=st.booleans())
def test_sgd_update(name, case, momentum, dampening, nesterov, first):
    p, g, buf, _, wd = case
    check_in_place(name, "sgd_update", [p, g, buf],
                   (0.05, momentum, dampening, nesterov, wd, first))


@pytest.mark.parametrize("name", COMPILED)
@given(case=optimizer_case(), step=st.sampled_from([1, 2, 10, 1000]),
       betas=st.sampled_from([(0.9, 0.999), (0.5, 0.999), (0.0, 0.9)]))
def test_adam_update(name, case, step, betas):
    p, g, m, v, wd = case
    check_in_place(name, "adam_update", [p, g, m, v], (2e-4, *betas, 1e-8, wd, step))


@pytest.mark.parametrize("name", SETS)
@given(shapes=st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
                       min_size=1, max_size=5),
       dtype=st.sampled_from(DTYPES), step=st.sampled_from([1, 3, 1000]),
       wd=st.sampled_from([0.0, 1e-2]), big=st.booleans(), seed=st.integers(0, 2**16))
def test_adam_update_many_equals_one_update_per_parameter(name, shapes, dtype, step, wd, big,
                                                          seed):
    """A model's parameters in one call: each parameter, gradient and state array updated in
    place exactly as that set's ``adam_update`` updates it alone (bit for bit: the same
    per-element arithmetic), whatever the sizes (empty ones included) and wherever the threads'
    shares of the elements laid end to end begin and end (``big``: past the parallel size)."""
    rng = np.random.default_rng(seed)
    if big:
        shapes = [*shapes, (_common.PARALLEL_MIN // 3 + 7,)]
    arrays = [[rng.uniform(-2, 2, s).astype(dtype) for s in shapes] for _ in range(3)]
    arrays.append([rng.uniform(0, 1e-2, s).astype(dtype) for s in shapes])
    many = [[a.copy() for a in lst] for lst in arrays]
    one = [[a.copy() for a in lst] for lst in arrays]
    ids = [[id(a) for a in lst] for lst in many]
    k = kernels(name)
    args = (2e-4, 0.5, 0.999, 1e-8, wd, step)
    assert k.adam_update_many(*many, *args) is None
    for p, g, m, v in zip(*one):
        k.adam_update(p, g, m, v, *args)
    assert [[id(a) for a in lst] for lst in many] == ids
    for got_list, want_list in zip(many, one):
        for got, want in zip(got_list, want_list):
            np.testing.assert_array_equal(got, want)
    if sum(int(np.prod(s)) for s in shapes):
        assert not all(np.array_equal(a, b) for a, b in zip(many[0], arrays[0]))


@pytest.mark.parametrize("name", SETS)
def test_adam_update_many_refuses_lists_of_other_lengths_and_takes_any_layout(name):
    k = kernels(name)
    p = [np.ones((2, 3), np.float32), np.ones(4, np.float32)]
    with pytest.raises(ValueError, match=r"adam_update_many.*ps 2, gs 1"):
        k.adam_update_many(p, p[:1], p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    # a strided view, a float64 array among float32 ones: updated (one call per parameter)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6)).astype(np.float32)
    ps = [base[:, ::2], rng.standard_normal(5)]
    gs = [np.ones((4, 3), np.float32), np.ones(5)]
    ms = [np.zeros((4, 3), np.float32), np.zeros(5)]
    vs = [np.zeros((4, 3), np.float32), np.zeros(5)]
    want = [a.copy() for a in ps], [a.copy() for a in gs], [a.copy() for a in ms], \
        [a.copy() for a in vs]
    k.adam_update_many(ps, gs, ms, vs, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    ref.adam_update_many(*want, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    for got, exp in zip(ps, want[0]):
        assert_matches(got, exp, scale=1.0)
    assert_matches(base[:, ::2], want[0][0], scale=1.0)  # written through the view


@pytest.mark.parametrize("name", COMPILED)
@given(case=optimizer_case(), alpha=st.sampled_from([0.99, 0.9]))
def test_rmsprop_update(name, case, alpha):
    p, g, _, sq, wd = case
    check_in_place(name, "rmsprop_update", [p, g, sq], (1e-2, alpha, 1e-8, wd))


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizers_parallel_sizes_and_views(name, dtype):
    rng = np.random.default_rng(4)
    shape = (_common.PARALLEL_MIN // 100 + 1, 100)
    p, g, s1 = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    s2 = np.abs(s1)
    check_in_place(name, "sgd_update", [p, g, s1], (0.1, 0.9, 0.0, True, 1e-2, False))
    check_in_place(name, "adam_update", [p, g, s1, s2], (1e-3, 0.9, 0.999, 1e-8, 1e-2, 5))
    check_in_place(name, "rmsprop_update", [p, g, s2], (1e-2, 0.99, 1e-8, 1e-2))
    # a strided parameter view is still updated in place (through the reference path)
    big = rng.standard_normal((6, 8)).astype(dtype)
    p_view, buf = big[:, ::2], np.zeros((6, 4), dtype)
    expect = p_view - dtype(0.1) * np.ones((6, 4), dtype)
    kernels(name).sgd_update(p_view, np.ones((6, 4), dtype), buf, 0.1, 0.0, 0.0,
                                         False, 0.0, True)
    assert_matches(big[:, ::2], expect)


# ---------------------------------------------------------------------------- dispatch
def _python(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items()
            if k not in ("NANOGAN_KERNELS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


def test_forced_reference_kernels_in_a_subprocess():
    code = "import nanogan; print(nanogan.kernel_backend())"
    assert _python(code, NANOGAN_KERNELS="reference").splitlines()[-1] == "reference"


def test_compiled_kernels_present():
    """CI sets ``NANOGAN_REQUIRE_COMPILED=1``: both compiled sets must load and the set chosen at
    import must be compiled. Elsewhere this only reports."""
    default = _python("import nanogan; print(nanogan.kernel_backend())").splitlines()[-1]
    report = {name: _kernels.why_unavailable(name) for name in ("cython", "numba")}
    print(f"kernel sets available: {SETS}; chosen at import: {default}; missing: {report}")
    if os.environ.get("NANOGAN_REQUIRE_COMPILED") == "1":
        for name, why in report.items():
            assert name in SETS, f"kernel set {name!r} unavailable: {why}"
        assert default in ("cython", "numba"), f"import chose {default!r}: {report}"
    assert default == SETS[0]


@pytest.mark.parametrize("name", COMPILED)
def test_thread_count_follows_the_environment(name):
    mod = f"nanogan._kernels.{name}_kernels"
    code = f"import {mod} as k; print(k.num_threads())"
    assert _python(code, OMP_NUM_THREADS="1").splitlines()[-1] == "1"
    if name == "numba":
        assert _python(code, NUMBA_NUM_THREADS="1").splitlines()[-1] == "1"
        assert _python(code, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="2").splitlines()[-1] == "1"


def test_every_set_offers_every_op():
    for name in SETS:
        mod = kernels(name)
        assert mod.NAME == name
        for op in _kernels.OP_NAMES:
            assert callable(getattr(mod, op))


# ---------------------------------------------------------------------------- thread policy
@pytest.fixture
def force_parallel(monkeypatch):
    """Every compiled kernel and product takes its parallel path, whatever the size and load."""
    monkeypatch.setattr(_common, "PARALLEL_MIN", 0)
    monkeypatch.setattr(_threads, "BLAS_PARALLEL_MIN_FLOPS", 0)
    monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
    monkeypatch.setattr(_threads, "_load", [-math.inf, True])
    monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 6), m=st.integers(1, 700),
       dtype=st.sampled_from(DTYPES), slope=st.sampled_from([None, 0.0, 0.2]),
       offset=st.sampled_from([0.0, 1e3]))
def test_batchnorm_serial_and_parallel_paths_give_the_same_bits(name, n, c, m, dtype, slope,
                                                                offset):
    """Batch norm's result must not depend on the thread count or the machine's load (which
    choose the path): one thread and all threads sum in the same order, bit for bit."""
    k = kernels(name)
    rng = np.random.default_rng(n * 1000 + c * 10 + m)
    x = (rng.standard_normal((n, c, m)) + offset).astype(dtype)
    if n * m == 1:
        x = np.concatenate([x, x + 1])
    gamma, beta = rng.standard_normal((2, c)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    def run():
        if slope is None:
            fwd = k.batchnorm_forward(x, gamma, beta, 1e-5)
            return [*fwd, *k.batchnorm_backward(dy, x, fwd[1], fwd[3], gamma)]
        fwd = k.batchnorm_leaky_relu(x, gamma, beta, 1e-5, slope)
        return [*fwd, *k.batchnorm_leaky_relu_backward(dy, fwd[0], x, fwd[1], fwd[3], gamma,
                                                       slope)]

    for a, b in zip(*serial_and_parallel(run)):
        np.testing.assert_array_equal(a, b)


def serial_and_parallel(run):
    """``run()``'s results with every kernel on its serial path, then on its parallel one."""
    results = []
    for parallel_min in (2**62, 0):
        old = _common.PARALLEL_MIN
        _common.PARALLEL_MIN = parallel_min
        _threads._load[:] = [math.inf, True]  # the load check says: cores to spare
        try:
            results.append(run())
        finally:
            _common.PARALLEL_MIN = old
            _threads._load[:] = [-math.inf, True]
    return results


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=20, deadline=None)
@given(n=st.sampled_from([1, 1, 2, 5]), c=st.integers(1, 6), m=st.integers(1, 700),
       dtype=st.sampled_from(DTYPES), slope=st.sampled_from([0.0, 0.2]))
def test_bias_leaky_relu_serial_and_parallel_paths_give_the_same_bits(name, n, c, m, dtype,
                                                                      slope):
    """The fused bias + activation and its backward (one image: the plans' CNHW layout, whose
    channels go to the threads) give the same bits on one thread and on all, and match the
    reference."""
    k = kernels(name)
    rng = np.random.default_rng(n * 1000 + c * 10 + m)
    z = rng.standard_normal((n, c, m)).astype(dtype)
    b, = rng.standard_normal((1, c)).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)

    def run():
        y = k.bias_leaky_relu(z.copy(), b, slope)
        return [y, *k.bias_leaky_relu_backward(dy, y, slope)]

    results = serial_and_parallel(run)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)
    y, du, db = results[0]
    assert_matches(y, ref.bias_leaky_relu(z.copy(), b, slope))
    rdu, rdb = ref.bias_leaky_relu_backward(dy, y, slope)
    assert_matches(du, rdu)
    assert_matches(db, rdb, scale=np.abs(dy).sum(axis=(0, 2)))


PARALLEL_GEOMETRIES = [
    ((3, 5, 14, 14), (4, 4, 2, 2, 1, 1)),   # DCGAN-28's strided 4x4 convolution
    ((20, 3, 7, 7), (7, 7, 1, 1, 0, 0)),    # a 1x1 output: the block-of-images loops
    ((2, 2, 9, 8), (3, 2, 4, 3, 2, 1)),     # stride larger than the window, odd sizes
    ((10, 1, 60, 60), (4, 4, 2, 2, 1, 1)),  # several blocks of images per channel
]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "geom"), PARALLEL_GEOMETRIES)
def test_parallel_paths_equal_the_reference(name, dtype, shape, geom, force_parallel):
    k = kernels(name)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    cols = k.im2col(x, *geom)
    assert_matches(cols, ref.im2col(x, *geom))
    assert_matches(k.col2im(cols, shape, *geom), ref.col2im(cols, shape, *geom),
                   scale=ref.col2im(np.abs(cols), shape, *geom))
    x3 = x.reshape(shape[0], shape[1], -1)
    gamma, beta = rng.standard_normal((2, shape[1])).astype(dtype)
    got, want = k.batchnorm_forward(x3, gamma, beta, 1e-5), ref.batchnorm_forward(x3, gamma,
                                                                                   beta, 1e-5)
    for a, b in zip(got, want):
        assert_matches(a, b, scale=np.abs(x3).max())
    dy = rng.standard_normal(x3.shape).astype(dtype)
    got = k.batchnorm_backward(dy, x3, want[1], want[3], gamma)
    for a, b in zip(got, ref.batchnorm_backward(dy, x3, want[1], want[3], gamma)):
        assert_matches(a, b, scale=np.abs(dy).sum() * np.abs(want[3]).max() * 4)
    assert_matches(k.leaky_relu(x, 0.2), ref.leaky_relu(x, 0.2))
    p, g, m = rng.standard_normal((3, 40)).astype(dtype)
    check_in_place(name, "adam_update", [p, g, m, np.abs(m)], (1e-3, 0.9, 0.999, 1e-8, 0.0, 3))


@pytest.mark.parametrize("forced", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_is_numpy_matmul_on_any_thread_count(dtype, forced, monkeypatch):
    if forced:
        monkeypatch.setattr(_threads, "BLAS_PARALLEL_MIN_FLOPS", 0)
        monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
        monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
        monkeypatch.setattr(_threads, "_load", [-math.inf, True])
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((37, 50)).astype(dtype), rng.standard_normal((50, 29)).astype(dtype)
    out = np.empty((29, 37), dtype).T
    for x, y in ((a, b), (b.T, a.T), (a[::2], b)):
        np.testing.assert_array_equal(_kernels.matmul(x, y), np.matmul(x, y))
    assert _kernels.matmul(a, b, out=out) is out
    assert_matches(out, a @ b, scale=np.abs(a).max() * np.abs(b).max() * 50)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(["c", "f", "strided"]), with_out=st.booleans(),
       scale=st.sampled_from([1.0, 1e-30, 1e30]))
def test_outer_products_equal_numpy_matmul(m, n, dtype, layout, with_out, scale):
    """A product over k = 1 (taken as the broadcast ``a * b``) gives np.matmul's values, any
    layout, into ``out`` or not, with tiny and huge entries."""
    rng = np.random.default_rng(m * 41 + n)
    a = (rng.standard_normal((m, 2)) * scale).astype(dtype)[:, :1]
    b = rng.standard_normal((1, 2 * n)).astype(dtype)
    if layout == "c":
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b[:, :n])
    elif layout == "f":
        a, b = np.asfortranarray(a), np.asfortranarray(b[:, :n])
    else:
        b = b[:, ::2]
    out = np.full((m, n), np.nan, dtype) if with_out else None
    got = _kernels.matmul(a, b, out=out)
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_array_equal(got, np.matmul(a, b))
    if with_out:
        assert got is out


@pytest.mark.parametrize(("sa", "sb"), [((3, 5, 1), (3, 1, 4)), ((5, 1), (3, 1, 4)),
                                       ((2, 1, 5, 1), (3, 1, 4)), ((3, 5, 1), (1, 4))])
def test_batched_outer_products_equal_numpy_matmul(sa, sb):
    """Stacks of k = 1 products, broadcast over the leading axes as np.matmul does (a
    whole-window convolution's input gradient per channel), give np.matmul's values."""
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    got = _kernels.matmul(a, b)
    np.testing.assert_array_equal(got, np.matmul(a, b))
    out = np.full(got.shape, np.nan)
    assert _kernels.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, np.matmul(a, b))


def test_a_k_1_operand_against_a_mismatched_one_is_an_error():
    """``(m, 1) @ (m, n)`` is np.matmul's shape error, not a broadcast multiply."""
    with pytest.raises(ValueError):
        _kernels.matmul(np.ones((4, 1)), np.ones((4, 3)))


# ---------------------------------------------------------------------------- split products
def operand(rng, rows: int, cols: int, dtype, layout: str) -> np.ndarray:
    """A ``(rows, cols)`` operand stored by rows, by columns, or as a slice of a wider array
    (leading dimension larger than its width or height)."""
    if layout == "c":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "f":
        return np.asfortranarray(rng.standard_normal((rows, cols)).astype(dtype))
    if layout == "c-slice":
        return rng.standard_normal((rows + 2, cols + 3)).astype(dtype)[1:rows + 1, 2:cols + 2]
    return rng.standard_normal((cols + 3, rows + 2)).astype(dtype)[2:cols + 2, 1:rows + 1].T


LAYOUTS = ["c", "f", "c-slice", "f-slice"]


@pytest.mark.skipif(not _cblas.GEMM, reason="no CBLAS gemm found in NumPy's BLAS")
@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 40), n=st.integers(1, 70),
       dtype=st.sampled_from(DTYPES), la=st.sampled_from(LAYOUTS), lb=st.sampled_from(LAYOUTS),
       blocks=st.integers(2, 5), out_kind=st.sampled_from([None, "c", "column-slice"]),
       seed=st.integers(0, 2**16))
def test_gemm_in_blocks_equals_numpy_matmul(name, m, k, n, dtype, la, lb, blocks, out_kind,
                                            seed):
    """A product cut into blocks of rows (``m >= n``) or of columns, each block one CBLAS call,
    equals ``np.matmul`` for every layout CBLAS reads (rows, columns, slices), into ``out`` (a
    C-contiguous array, or a column slice of a wider one, whose other columns stay untouched) or
    not. Blocks are multiples of 16 long, so sizes above 16 give several blocks, and a short
    last one."""
    rng = np.random.default_rng(seed)
    a, b = operand(rng, m, k, dtype, la), operand(rng, k, n, dtype, lb)
    wide = np.full((m, n + 3), np.nan, dtype)
    out = {None: None, "c": np.full((m, n), np.nan, dtype), "column-slice": wide[:, 1:n + 1]}[
        out_kind]
    got = kernels(name).gemm(a, b, out=out, blocks=blocks)
    if out_kind:
        assert got is out
    assert got.dtype == dtype and got.shape == (m, n)
    assert_matches(got, np.matmul(a, b), scale=np.abs(a) @ np.abs(b))
    assert np.isnan(wide[:, 0]).all() and np.isnan(wide[:, n + 1:]).all()


@pytest.mark.parametrize("name", SETS)
def test_gemm_falls_back_to_numpy_matmul(name):
    """What CBLAS cannot read, or an ``out`` it must not write, goes to ``np.matmul``: mixed or
    integer dtypes, 3-D operands, stepped slices, an ``out`` that overlaps an operand, empty
    products."""
    rng = np.random.default_rng(8)
    g = kernels(name).gemm
    a = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal((30, 20)).astype(np.float32)
    np.testing.assert_array_equal(g(a, b.astype(np.float64), blocks=2),
                                  np.matmul(a, b.astype(np.float64)))
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(g(ints, ints.T, blocks=2), ints @ ints.T)
    np.testing.assert_array_equal(g(a[None], b[None], blocks=2), np.matmul(a[None], b[None]))
    np.testing.assert_array_equal(g(a[::2, ::3], b[::3], blocks=2), np.matmul(a[::2, ::3],
                                                                              b[::3]))
    sq = rng.standard_normal((32, 32)).astype(np.float32)
    want = sq @ sq
    np.testing.assert_array_equal(g(sq, sq.copy(), out=sq, blocks=2), want)
    assert g(a[:, :0], b[:0], blocks=2).shape == (40, 20)
    assert not g(a[:, :0], b[:0], blocks=2).any()
    np.testing.assert_array_equal(g(a[::-1], b, blocks=2), np.matmul(a[::-1], b))
    frozen = np.zeros((40, 20), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):  # np.matmul's error, nothing written
        g(a, b, out=frozen, blocks=2)
    assert not frozen.any()
    for bad in (np.zeros((40, 20), np.float64), np.zeros((20, 40), np.float32).T):
        want = np.matmul(a, b, out=np.zeros_like(bad))
        assert g(a, b, out=bad, blocks=2) is bad
        np.testing.assert_array_equal(bad, want)


@pytest.mark.skipif(not _cblas.GEMM, reason="no CBLAS gemm found in NumPy's BLAS")
@pytest.mark.skipif("cython" not in COMPILED, reason="the Cython extension is not built")
def test_cython_gemm_arrays_takes_what_cblas_reads_and_declines_the_rest():
    """The Cython set's ``gemm_arrays`` (the front end's checks done in C) computes the product
    for every layout ``_cblas.layout`` describes, and returns None, writing nothing, wherever
    ``CompiledOps.gemm`` would hand the product to ``np.matmul``."""
    from nanogan._kernels import _cython_kernels as ext
    rng = np.random.default_rng(10)
    for la in LAYOUTS:
        for lb in LAYOUTS:
            for dtype in DTYPES:
                a, b = operand(rng, 37, 19, dtype, la), operand(rng, 19, 23, dtype, lb)
                assert _cblas.layout(a) is not None and _cblas.layout(b) is not None
                got = ext.gemm_arrays(a, b, None, 2)
                assert got is not None and got.dtype == dtype and got.flags.c_contiguous
                assert_matches(got, a @ b, scale=np.abs(a) @ np.abs(b))
    a = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal((30, 20)).astype(np.float32)
    out = np.full((40, 20), 7.0, np.float32)
    frozen = out.copy()
    frozen.flags.writeable = False
    declined = [
        (a, b, None, 1),                                # one block: the caller's np.matmul
        (a, b.astype(np.float64), None, 2),             # mixed dtypes
        (a.astype(np.int64), b.astype(np.int64), None, 2),
        (a[None], b[None], None, 2),                    # 3-D
        (a.tolist(), b, None, 2),                       # not arrays
        (a[:, ::2], b[::2], None, 2),                   # stepped
        (a[::-1], b, None, 2),                          # negative stride
        (np.broadcast_to(a[:1], a.shape), b, None, 2),  # stride 0
        (a[:, :0], b[:0], None, 2),                     # empty
        (a, b[:20], None, 2),                           # inner sizes differ
        (a, b, frozen, 2),                              # read-only out
        (a, b, out[:, :10], 2),                         # wrong shape
        (a, b, np.asfortranarray(out), 2),              # not C-contiguous
        (a, b, out.astype(np.float64), 2),              # wrong dtype
        (a, b, [[0.0]], 2),                             # not an array
    ]
    for x, y, o, blocks in declined:
        assert ext.gemm_arrays(x, y, o, blocks) is None
    assert (out == 7).all() and (frozen == 7).all()
    square = rng.standard_normal((32, 32)).astype(np.float32)
    buf = np.zeros((64, 32), np.float32)
    buf[:32] = square
    assert ext.gemm_arrays(buf[:32], square, buf[:32], 2) is None       # out is a
    assert ext.gemm_arrays(square, buf[16:48], buf[32:], 2) is None     # overlaps b's rows
    got = ext.gemm_arrays(buf[:32], square, buf[32:], 2)                # adjacent, apart
    assert got is not None
    assert_matches(buf[32:], square @ square, scale=np.abs(square) @ np.abs(square))
    wide = np.full((32, 40), np.nan, np.float32)
    view = wide[:, 4:36]                                                # rows of a wider one
    assert ext.gemm_arrays(square, square, view, 2) is view
    assert_matches(view, square @ square, scale=np.abs(square) @ np.abs(square))
    assert np.isnan(wide[:, :4]).all() and np.isnan(wide[:, 36:]).all()


def test_cblas_layout_describes_rows_columns_and_nothing_else():
    x = np.zeros((5, 7), np.float32)
    assert _cblas.layout(x) == (_cblas.NO_TRANS, 7)
    assert _cblas.layout(x.T) == (_cblas.TRANS, 7)
    assert _cblas.layout(x[1:4, 2:5]) == (_cblas.NO_TRANS, 7)
    assert _cblas.layout(x[1:4, 2:5].T) == (_cblas.TRANS, 7)
    assert _cblas.layout(x[:, ::2]) is None          # stepped: neither
    assert _cblas.layout(x[::-1]) is None             # negative stride
    assert _cblas.layout(np.broadcast_to(x[:1], (5, 7))) is None  # stride 0
    assert _cblas.layout(x[:, :0]) is None            # empty
    assert _cblas.layout(x[0]) is None                # 1-D


@pytest.mark.skipif(not (_cblas.GEMM and _threads._BLAS), reason="no OpenBLAS with CBLAS")
@pytest.mark.parametrize("name", COMPILED)
def test_matmul_runs_large_products_on_the_kernel_sets_threads(name, monkeypatch):
    """With the adaptive switch on and a compiled set active, a large product goes to the set's
    ``gemm`` (BLAS kept on one thread) and a small one to ``np.matmul``; the reference set,
    or the switch off, gives products back to BLAS's own threads."""
    before = _kernels.get_backend()
    calls = []
    real = kernels(name).gemm

    def spy(a, b, out=None, par=True):
        calls.append(a.shape)
        return real(a, b, out, par)

    monkeypatch.setattr(_threads, "BLAS_PARALLEL_MIN_FLOPS", 10**6)
    monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
    monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
    monkeypatch.setattr(_threads, "_load", [-math.inf, True])
    rng = np.random.default_rng(9)
    big = rng.standard_normal((200, 100)).astype(np.float32)
    small = rng.standard_normal((10, 10)).astype(np.float32)
    try:
        _kernels.set_backend(name)
        _threads.adaptive_blas(True)
        assert _threads.own_threads()
        _threads._gemm[0] = spy
        assert _threads.current_blas_threads() == 1
        assert_matches(_kernels.matmul(big, big.T), big @ big.T,
                       scale=np.abs(big) @ np.abs(big.T))
        np.testing.assert_array_equal(_kernels.matmul(small, small), small @ small)
        assert calls == [(200, 100)]
        _kernels.set_backend("reference")
        assert not _threads.own_threads()
        _kernels.matmul(big, big.T)
        assert calls == [(200, 100)]
        assert _threads.current_blas_threads() == _threads.BLAS_THREADS
    finally:
        _threads.adaptive_blas(False)
        _kernels.set_backend(before)
    assert _threads.current_blas_threads() == _threads.BLAS_THREADS


def test_machine_is_free_follows_the_load_limit(monkeypatch):
    monkeypatch.setattr(_threads, "blas_may_spin", lambda: False)
    monkeypatch.setattr(_threads, "_load", [-math.inf, True])
    monkeypatch.setattr(_threads, "MAX_LOAD", -1.0)   # no load average is below -1
    assert not _threads.machine_is_free()
    assert not _threads.parallel(10**12, 0)
    monkeypatch.setattr(_threads, "_load", [-math.inf, False])
    monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
    assert _threads.machine_is_free()
    assert _threads.parallel(10, 10) and not _threads.parallel(9, 10)



def test_kernels_stay_serial_while_blas_workers_may_spin(monkeypatch):
    """Without adaptive BLAS (``configure()`` not called) the products run on OpenBLAS's own
    workers, which spin after each product: a kernel then runs serially whenever OpenBLAS has
    more than one thread, and in parallel again once it has one, or once nanogan's threads run
    the products. The thread count is looked up again after a second."""
    monkeypatch.setattr(_threads, "MAX_LOAD", math.inf)
    monkeypatch.setattr(_threads, "_load", [-math.inf, True])
    count = [2]
    monkeypatch.setattr(_threads, "_BLAS", (lambda n: None, lambda: count[0]))
    monkeypatch.setattr(_threads, "_adaptive", [False])
    monkeypatch.setattr(_threads, "_spin", [-math.inf, False])
    assert _threads.blas_may_spin() and not _threads.parallel(10**12, 0)
    count[0] = 1
    assert _threads.blas_may_spin()  # the count is looked up at most once a second
    _threads._spin[0] = -math.inf
    assert not _threads.blas_may_spin() and _threads.parallel(10**12, 0)
    count[0] = 4
    _threads._spin[0] = -math.inf
    _threads._adaptive[0] = True  # nanogan switches BLAS's threads itself
    assert not _threads.blas_may_spin() and _threads.parallel(10**12, 0)
    monkeypatch.setattr(_threads, "_BLAS", None)  # no OpenBLAS found: nothing to wait for
    _threads._adaptive[0] = False
    assert not _threads.blas_may_spin()

# ---------------------------------------------------------------------------- whole-window products
@st.composite
def window_input(draw):
    """``w (O, C, P)``, ``x (C, N, P)`` and ``dy (O, N)``: up to a few output channels (the loops
    of the compiled sets), sometimes more than they take (the reference's products then)."""
    most = _common.CompiledOps.WINDOW_MAX_OUT
    O = draw(st.sampled_from([1, 1, 2, most, most + 1]))
    C, N, P = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.sampled_from([1, 4, 49]))
    dtype = draw(st.sampled_from(DTYPES))
    return (draw_array(draw, (O, C, P), dtype, -3, 3), draw_array(draw, (C, N, P), dtype),
            draw_array(draw, (O, N), dtype, -3, 3))


@pytest.mark.parametrize("name", SETS)
@given(case=window_input())
def test_window_products(name, case):
    """The three products of a whole-window convolution on channels-first images, against their
    definitions (``einsum``); one output channel's input gradient is the product alone, to the
    bit."""
    w, x, dy = case
    k = kernels(name)
    y = k.window_forward(w, x)
    assert_matches(y, np.einsum("ocp,cnp->on", w, x),
                   scale=np.einsum("ocp,cnp->on", abs(w), abs(x)))
    dw = k.window_weight_grad(dy, x)
    assert_matches(dw, np.einsum("on,cnp->ocp", dy, x),
                   scale=np.einsum("on,cnp->ocp", abs(dy), abs(x)))
    dx = k.window_input_grad(dy, w)
    assert_matches(dx, np.einsum("on,ocp->cnp", dy, w),
                   scale=np.einsum("on,ocp->cnp", abs(dy), abs(w)))
    if w.shape[0] == 1:
        np.testing.assert_array_equal(dx, dy[0][None, :, None] * w[0][:, None, :])


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=15, deadline=None)
@given(case=window_input())
def test_window_products_serial_and_parallel_give_the_same_bits(name, case):
    w, x, dy = case
    k = kernels(name)
    serial, parallel = serial_and_parallel(lambda: [k.window_forward(w, x),
                                                    k.window_weight_grad(dy, x),
                                                    k.window_input_grad(dy, w)])
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif("cython" not in SETS, reason="the Cython kernels are not built")
def test_window_weight_grad_without_cblas_takes_its_loop():
    """Where no CBLAS is found, the Cython weight gradient runs its own loop (sums in double),
    with the same result as the per-channel products, on one thread or all."""
    from nanogan._kernels import _cython_kernels as ext

    k = kernels("cython")
    rng = np.random.default_rng(11)
    for dtype in DTYPES:
        dy = rng.standard_normal((2, 37)).astype(dtype)
        x = rng.standard_normal((5, 37, 49)).astype(dtype)
        with_blas = k.window_weight_grad(dy, x)
        f32, f64 = _cblas.GEMM.get(np.dtype(np.float32)), _cblas.GEMM.get(np.dtype(np.float64))
        ext.set_cblas(0, 0, False)
        try:
            serial, parallel = serial_and_parallel(lambda dy=dy, x=x: k.window_weight_grad(dy, x))
        finally:
            ext.set_cblas(f32[0] if f32 else 0, f64[0] if f64 else 0, bool(f32 and f32[1]))
        np.testing.assert_array_equal(serial, parallel)
        assert_matches(serial, with_blas, scale=np.einsum("on,cnp->ocp", abs(dy), abs(x)))
        assert_matches(serial, ref.window_weight_grad(dy, x),
                       scale=np.einsum("on,cnp->ocp", abs(dy), abs(x)))


@pytest.mark.parametrize("name", SETS)
def test_window_products_refuse_mismatched_shapes(name):
    k = kernels(name)
    w, x, dy = np.ones((2, 3, 5)), np.ones((3, 4, 6)), np.ones((2, 5))
    with pytest.raises(ValueError, match=r"window_forward: argument 'x' expected shape "
                                         r"\(3, 4, 5\), got \(3, 4, 6\)"):
        k.window_forward(w, x)
    with pytest.raises(ValueError, match=r"window_weight_grad: argument 'dy' expected shape "
                                         r"\(2, 4\), got \(2, 5\)"):
        k.window_weight_grad(dy, x)
    with pytest.raises(ValueError, match=r"window_input_grad: argument 'dy' expected shape "
                                         r"\(2, 5\), got \(3, 5\)"):
        k.window_input_grad(np.ones((3, 5)), w)


# ---------------------------------------------------------------------------- fused ops, loss
@st.composite
def bias_act_input(draw):
    """``z (N, C, M)``, a bias, ``dy`` and a slope (0 is ReLU); M = 1 is the Dense layout."""
    N, C = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    M = draw(st.sampled_from([1, 1, 2, 7, 49]))
    dtype = draw(st.sampled_from(DTYPES))
    z = draw_array(draw, (N, C, M), dtype)
    b = draw_array(draw, (C,), dtype, -3, 3)
    dy = draw_array(draw, (N, C, M), dtype, -3, 3)
    return z, b, dy, draw(st.sampled_from([0.0, 0.01, 0.2]))


@pytest.mark.parametrize("name", COMPILED)
@given(case=bias_act_input())
def test_bias_leaky_relu_and_backward(name, case):
    z, b, dy, slope = case
    k = kernels(name)
    expected = ref.bias_leaky_relu(z.copy(), b, slope)
    assert_matches(expected, ref.leaky_relu(z + b[None, :, None], slope))  # the definition
    zc = z.copy()
    y = k.bias_leaky_relu(zc, b, slope)
    assert y is zc  # in place
    assert_matches(y, expected)
    du, db = k.bias_leaky_relu_backward(dy, expected, slope)
    rdu, rdb = ref.bias_leaky_relu_backward(dy, expected, slope)
    assert_matches(du, rdu)
    assert_matches(db, rdb, scale=np.abs(dy).sum(axis=(0, 2)))


@pytest.mark.parametrize("name", SETS)
@given(case=bias_act_input())
def test_bias_tanh(name, case):
    """``z = tanh(z + b[c])`` in place. The Cython set's float64 tanh is NumPy's own loop, so its
    values are ``np.tanh``'s to the bit; its float32 tanh (``_tanh.h``) is within one ulp of
    tanh computed in float64 and rounded; the Numba set's libm tanh: within the tolerance."""
    z, b, _, _ = case
    k = kernels(name)
    expected = np.tanh(z + b[None, :, None])  # the definition
    zc = z.copy()
    y = k.bias_tanh(zc, b)
    assert y is zc  # in place
    if name == "reference" or (name == "cython" and z.dtype.name in _cython_tanh_dtypes()):
        np.testing.assert_array_equal(y, expected)
    elif name == "cython" and z.dtype == np.float32:
        assert_within_ulps(y, np.tanh((z + b[None, :, None]).astype(np.float64)), 1)
    else:
        assert_matches(y, expected)


def assert_within_ulps(got: np.ndarray, exact: np.ndarray, ulps: int) -> None:
    """``got`` (float32) within ``ulps`` float32 steps of ``exact`` (float64) rounded to float32,
    NaN where it is NaN."""
    want = exact.astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    # float32 bit patterns as integers ordered like the values (negatives mirrored below zero)
    gi, wi = (np.where(a < 0, -(a.view(np.int32) & 0x7FFFFFFF), a.view(np.int32)).astype(np.int64)
              for a in (got, want))
    steps = np.abs(gi - wi)[ok]
    assert steps.size == 0 or steps.max() <= ulps, (
        f"{int(steps.max())} ulps apart at {got[ok][steps.argmax()]!r} "
        f"(want {want[ok][steps.argmax()]!r})")


@pytest.mark.skipif("cython" not in SETS, reason="the Cython kernels are not built")
@given(x=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1,
                  max_size=80))
def test_tanh_f32_within_one_ulp(x):
    """The Cython set's float32 tanh (``_tanh.h``: a polynomial below |x| = 0.625, ``1 - 2 /
    (e^2|x| + 1)`` above) is within one ulp of tanh in float64 rounded to float32, keeps the sign
    of zero, gives +-1 for infinities and large values and NaN for NaN, at any position in a run
    (vectorised body and scalar tail)."""
    from nanogan._kernels import _cython_kernels as ext

    a = np.array(x, dtype=np.float32)
    got = a.copy()
    ext.tanh_f32(got)
    assert_within_ulps(got, np.tanh(a.astype(np.float64)), 1)
    zero = a == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(a[zero]))


@pytest.mark.skipif("cython" not in SETS, reason="the Cython kernels are not built")
def test_tanh_f32_on_a_sweep_and_at_its_seams():
    """Every 4099th float32 below infinity, both signs, and the values around the branch point
    (0.625), the clamp (9.5) and where tanh rounds to 1: within one ulp, and equal to the rounded
    float64 tanh for all but a small fraction."""
    from nanogan._kernels import _cython_kernels as ext

    bits = np.arange(0, 0x7F800000, 4099, dtype=np.int64).astype(np.int32)
    pos = bits.view(np.float32)
    seam_bits = np.array([0.625, 9.5, 9.0, 8.0, 1e-4], np.float32).view(np.int32)
    seams = (seam_bits[:, None] + np.arange(-3, 4, dtype=np.int32)).ravel().view(np.float32)
    a = np.concatenate([pos, -pos, seams, -seams])
    got = a.copy()
    ext.tanh_f32(got)
    exact = np.tanh(a.astype(np.float64))
    assert_within_ulps(got, exact, 1)
    assert np.mean(got != exact.astype(np.float32)) < 0.01
    np.testing.assert_array_equal(got[np.abs(a) >= 9.5], np.sign(a[np.abs(a) >= 9.5]))


def _cython_tanh_dtypes() -> list[str]:
    from nanogan._kernels import _cython_kernels

    return list(_cython_kernels.TANH_FROM_NUMPY)


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=20, deadline=None)
@given(n=st.sampled_from([1, 1, 2, 5]), c=st.integers(1, 6), m=st.integers(1, 700),
       dtype=st.sampled_from(DTYPES))
def test_bias_tanh_serial_and_parallel_paths_give_the_same_bits(name, n, c, m, dtype):
    """One image (the CNHW layout: channels to the threads) or several (images to the threads):
    the same bits on one thread and on all."""
    k = kernels(name)
    rng = np.random.default_rng(n * 1000 + c * 10 + m)
    z = (3 * rng.standard_normal((n, c, m))).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    serial, parallel = serial_and_parallel(lambda: k.bias_tanh(z.copy(), b))
    np.testing.assert_array_equal(serial, parallel)
    assert_matches(serial, ref.bias_tanh(z.copy(), b))


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_tanh_extremes_and_odd_inputs(name, dtype):
    """|z| = 1e4 saturates to +-1 (finite), infinities to +-1, NaN stays NaN, signed zeros keep
    their sign; a non-contiguous or read-only ``z`` and a mixed-dtype bias take the reference
    path with its result."""
    k = kernels(name)
    z = np.array([[1e4, -1e4, np.inf, -np.inf, np.nan, -0.0, 0.0, 0.5]], dtype=dtype)[..., None]
    b = np.zeros(8, dtype)
    b[5] = -0.0  # -0 + -0 is -0 (a +0 bias would turn it into +0)
    y = k.bias_tanh(z.copy(), b)                                       # (1, 8, 1)
    np.testing.assert_array_equal(y[0, :4, 0], [1, -1, 1, -1])
    assert np.isnan(y[0, 4, 0])
    assert np.signbit(y[0, 5, 0]) and not np.signbit(y[0, 6, 0])
    assert_matches(y[0, 7:, 0], np.tanh(np.array([0.5], dtype)))
    rng = np.random.default_rng(3)
    big = rng.standard_normal((4, 3, 6)).astype(dtype)
    strided = big[:, :, ::2]
    b = rng.standard_normal(3).astype(dtype)
    want = np.tanh(strided + b[None, :, None])
    assert_matches(k.bias_tanh(strided, b), want)
    other = b.astype(np.float32 if dtype == np.float64 else np.float64)
    mixed = big[:, :, :3].copy()
    got = k.bias_tanh(mixed.copy(), other)
    assert got.dtype == dtype  # in place: z keeps its dtype
    np.testing.assert_array_equal(got, ref.bias_tanh(mixed.copy(), other))


@pytest.mark.skipif("cython" not in SETS, reason="the Cython kernels are not built")
def test_bias_tanh_numpy_loops_and_libm_agree():
    """The Cython kernel's two tanh paths: NumPy's loops (kept only where they give np.tanh's
    bits on a probe) and libm's tanh, which the kernel falls back to, within an ulp or two."""
    from nanogan._kernels import _cython_kernels as ext

    k = kernels("cython")
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        z = (6 * rng.standard_normal((64, 300, 1))).astype(dtype)
        b = rng.standard_normal(300).astype(dtype)
        try:
            assert ext.use_numpy_tanh(False) == []
            libm = k.bias_tanh(z.copy(), b)
        finally:
            kept = ext.use_numpy_tanh(True)
        numpy_way = k.bias_tanh(z.copy(), b)
        if np.dtype(dtype).name in kept:
            np.testing.assert_array_equal(numpy_way, np.tanh(z + b[None, :, None]))
        assert_matches(libm, numpy_way)
        assert np.abs(libm - numpy_way).max() <= 4 * np.finfo(dtype).eps


@pytest.mark.parametrize("name", SETS)
def test_bias_leaky_relu_backward_sums_like_numpy_for_dense(name):
    """For M = 1 the bias gradient is NumPy's ``du.sum(axis=0)`` to the bit (fused and unfused
    Dense layers train identically)."""
    rng = np.random.default_rng(7)
    for dtype in DTYPES:
        y = rng.standard_normal((64, 256, 1)).astype(dtype)
        dy = rng.standard_normal((64, 256, 1)).astype(dtype)
        _, db = kernels(name).bias_leaky_relu_backward(dy, y, 0.2)
        np.testing.assert_array_equal(db, ref.leaky_relu_backward(dy, y, 0.2)[..., 0].sum(axis=0))


@pytest.mark.parametrize("name", COMPILED)
@given(case=batchnorm_input(), slope=st.sampled_from([0.0, 0.2]))
def test_batchnorm_leaky_relu_and_backward(name, case, slope):
    x, gamma, beta, dy, eps = case
    k = kernels(name)
    y, mean, var, inv_std = k.batchnorm_leaky_relu(x, gamma, beta, eps, slope)
    assert_matches(inv_std, ref.batchnorm_leaky_relu(x, gamma, beta, eps, slope)[3])
    ry, rmean, rvar, rinv = ref.batchnorm_leaky_relu(x, gamma, beta, eps, slope)
    assert_matches(mean, rmean, scale=np.abs(x).mean(axis=(0, 2)))
    assert_matches(var, rvar, scale=((x - rmean[None, :, None]) ** 2).mean(axis=(0, 2)))
    assert_matches(y, ry, scale=np.abs(gamma[None, :, None]) * (1 + np.abs(
        (x - rmean[None, :, None]) * rinv[None, :, None])) + np.abs(beta[None, :, None]))
    dx, dgamma, dbeta = k.batchnorm_leaky_relu_backward(dy, ry, x, rmean, rinv, gamma, slope)
    rdx, rdgamma, rdbeta = ref.batchnorm_leaky_relu_backward(dy, ry, x, rmean, rinv, gamma,
                                                             slope)
    m = x.shape[0] * x.shape[2]
    xhat = np.abs((x - rmean[None, :, None]) * rinv[None, :, None])
    ady = np.abs(dy)
    assert_matches(dbeta, rdbeta, scale=ady.sum(axis=(0, 2)))
    assert_matches(dgamma, rdgamma, scale=(ady * xhat).sum(axis=(0, 2)))
    terms = np.abs(gamma * rinv / m)[None, :, None] * (
        m * ady + ady.sum(axis=(0, 2))[None, :, None]
        + xhat * (ady * xhat).sum(axis=(0, 2))[None, :, None])
    assert_matches(dx, rdx, scale=terms)


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_one_pass_statistics_far_from_zero(name, dtype):
    """The one-pass statistics (sums shifted by a channel's first value) do not cancel when the
    mean is large next to the spread."""
    rng = np.random.default_rng(11)
    x = (1e4 + rng.standard_normal((16, 3, 50))).astype(dtype)
    g, b = np.ones(3, dtype), np.zeros(3, dtype)
    _, mean, var, _ = kernels(name).batchnorm_forward(x, g, b, 1e-5)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=RTOL[np.dtype(dtype)])
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-3 if dtype == np.float32
                               else 1e-9)


@pytest.mark.parametrize("name", COMPILED)
@given(x=activation_input(), t=st.sampled_from([0.0, 1.0, 0.3]))
@example(x=np.array(EXTREMES[:6], np.float32), t=1.0)
@example(x=np.array(EXTREMES[:6], np.float64), t=0.0)
def test_bce_with_logits(name, x, t):
    x = x[np.isfinite(x)] if x.ndim else x.reshape(1)
    if x.size == 0:
        return
    value, grad = kernels(name).bce_with_logits(x, t)
    rvalue, rgrad = ref.bce_with_logits(x, t)
    per = t * np.abs(ref.softplus(-x)) + (1 - t) * np.abs(ref.softplus(x))
    assert math.isclose(value, rvalue, rel_tol=RTOL[x.dtype],
                        abs_tol=RTOL[x.dtype] * float(np.mean(per, dtype=np.float64)))
    assert_matches(grad, rgrad)
    assert np.isfinite(value) and np.isfinite(grad).all()
