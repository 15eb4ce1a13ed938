"""Kernel sets for the non-NumPy array backends (:mod:`nanogan.backend`): ``cupy`` and ``strict``.

Both start from the reference kernels themselves: :func:`rebind` re-creates every function of
:mod:`nanogan._kernels.reference` with its ``np`` bound to another array namespace, so the readable
NumPy code runs unchanged on CuPy arrays (as vectorised CuPy) or on the strict test arrays. On the
strict backend this proves the reference kernels call nothing that a GPU array library lacks.

The ``cupy`` set then replaces the data movement and the elementwise ops with CUDA kernels
(:func:`cupy_set`): ``im2col`` / ``col2im`` as one thread per output element (``col2im`` gathers
instead of scattering, so no atomics), and the activations as ``ElementwiseKernel`` s. Matrix
products go to cuBLAS through ``cupy.matmul``.
"""

from __future__ import annotations

import types
from typing import Any

from . import reference


def rebind(namespace: Any, name: str) -> types.ModuleType:
    """The reference kernel set with ``np`` bound to ``namespace`` (calls between its functions
    go to the rebound versions too), plus ``matmul`` from that namespace."""
    mod = types.ModuleType(f"nanogan._kernels.{name}",
                           f"the reference kernels on the {name} array namespace")
    g = dict(vars(reference))
    g["np"] = namespace
    for key, value in list(g.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == reference.__name__:
            f = types.FunctionType(value.__code__, g, value.__name__, value.__defaults__,
                                   value.__closure__)
            f.__doc__, f.__kwdefaults__ = value.__doc__, value.__kwdefaults__
            f.__annotations__ = dict(value.__annotations__)
            g[key] = f
    for key, value in g.items():
        if not key.startswith("__"):
            setattr(mod, key, value)

    def matmul(a: Any, b: Any, out: Any = None) -> Any:
        """``a @ b`` on the backend (cuBLAS on CuPy)."""
        return namespace.matmul(a, b, out=out)

    mod.matmul = matmul
    mod.NAME = name
    return mod


def strict_set() -> types.ModuleType:
    """The reference kernels on the strict test arrays (:mod:`nanogan._strict`)."""
    from .._strict import namespace

    return rebind(namespace, "strict")


# --------------------------------------------------------------------------- CUDA kernels
_IM2COL = r"""
    // i indexes cols (C*kh*kw, N*OH*OW): row r = (c*kh + ki)*kw + kj,
    // column q = (n*OH + oh)*OW + ow
    const long long Q = (long long)N * OH * OW;
    const long long r = i / Q, q = i % Q;
    const int kj = r % kw, ki = (r / kw) % kh, c = r / (kw * kh);
    const int ow = q % OW, oh = (q / OW) % OH, n = q / ((long long)OW * OH);
    const int h = oh * sh - ph + ki, w = ow * sw - pw + kj;
    cols = (h >= 0 && h < H && w >= 0 && w < W) ? x[(((long long)n * C + c) * H + h) * W + w]
                                                 : (T)0;
"""

_COL2IM = r"""
    // i indexes x (N, C, H, W); gather every column entry that read pixel (h, w):
    // h + ph = oh*sh + ki and w + pw = ow*sw + kj
    const int w = i % W, h = (i / W) % H, c = (i / ((long long)W * H)) % C;
    const int n = i / ((long long)W * H * C);
    const long long Q = (long long)N * OH * OW;
    T acc = 0;
    for (int ki = 0; ki < kh; ++ki) {
        const int th = h + ph - ki;
        if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
        const int oh = th / sh;
        for (int kj = 0; kj < kw; ++kj) {
            const int tw = w + pw - kj;
            if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;
            const int ow = tw / sw;
            const long long r = ((long long)c * kh + ki) * kw + kj;
            acc += cols[r * Q + ((long long)n * OH + oh) * OW + ow];
        }
    }
    x = acc;
"""


def cupy_set() -> types.ModuleType:
    """The ``cupy`` kernel set: the rebound reference, with CUDA kernels for the data movement
    and the elementwise ops (needs CuPy and a GPU; checked against the reference on a GPU by
    ``benchmarks/gpu_check.sh``)."""
    import cupy

    mod = rebind(cupy, "cupy")
    ref_col2im = mod.col2im
    im2col_k = cupy.ElementwiseKernel(
        "raw T x, int32 N, int32 C, int32 H, int32 W, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, int32 OH, int32 OW", "T cols", _IM2COL, "nanogan_im2col")
    col2im_k = cupy.ElementwiseKernel(
        "raw T cols, int32 N, int32 C, int32 H, int32 W, int32 kh, int32 kw, int32 sh, "
        "int32 sw, int32 ph, int32 pw, int32 OH, int32 OW", "T x", _COL2IM, "nanogan_col2im")
    lrelu_k = cupy.ElementwiseKernel("T x, T slope", "T y", "y = x > 0 ? x : x * slope",
                                     "nanogan_leaky_relu")
    lrelu_b_k = cupy.ElementwiseKernel("T dy, T x, T slope", "T dx",
                                       "dx = x > 0 ? dy : dy * slope", "nanogan_leaky_relu_bw")
    sigmoid_k = cupy.ElementwiseKernel(
        "T x", "T y", "T e = exp(-fabs(x)); y = x >= 0 ? 1 / (1 + e) : e / (1 + e)",
        "nanogan_sigmoid")
    softplus_k = cupy.ElementwiseKernel("T x", "T y", "y = fmax(x, (T)0) + log1p(exp(-fabs(x)))",
                                        "nanogan_softplus")
    conv = reference.conv_output_size

    def im2col(x: Any, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> Any:
        N, C, H, W = x.shape
        OH, OW = conv(H, kh, sh, ph), conv(W, kw, sw, pw)
        cols = cupy.empty((C * kh * kw, N * OH * OW), dtype=x.dtype)
        im2col_k(cupy.ascontiguousarray(x), N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW, cols)
        return cols

    def col2im(cols: Any, x_shape: tuple[int, int, int, int], kh: int, kw: int, sh: int,
               sw: int, ph: int, pw: int) -> Any:
        N, C, H, W = x_shape
        if cols.dtype.kind != "f":
            return ref_col2im(cols, x_shape, kh, kw, sh, sw, ph, pw)
        OH, OW = conv(H, kh, sh, ph), conv(W, kw, sw, pw)
        x = cupy.empty((N, C, H, W), dtype=cols.dtype)
        col2im_k(cupy.ascontiguousarray(cols), N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW, x)
        return x

    def leaky_relu(x: Any, slope: float) -> Any:
        return lrelu_k(x, x.dtype.type(slope))

    def leaky_relu_backward(dy: Any, x: Any, slope: float) -> Any:
        return lrelu_b_k(dy, x, dy.dtype.type(slope))

    mod.im2col, mod.col2im = im2col, col2im
    mod.leaky_relu, mod.leaky_relu_backward = leaky_relu, leaky_relu_backward
    mod.sigmoid, mod.softplus = sigmoid_k, softplus_k
    return mod
