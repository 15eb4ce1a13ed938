"""Kernel sets for the non-NumPy array backends (:mod:`nanogan.backend`): ``cupy`` and ``strict``.

Both start from the reference kernels themselves: :func:`rebind` re-creates every function of
:mod:`nanogan._kernels.reference` with its ``np`` bound to another array namespace, so the readable
NumPy code runs unchanged on CuPy arrays (as vectorised CuPy) or on the strict test arrays. On the
strict backend this proves the reference kernels call nothing that a GPU array library lacks.

The ``cupy`` set then replaces the data movement and the elementwise ops with CUDA kernels
(:func:`cupy_set`): ``im2col`` / ``col2im`` as one thread per output element (``col2im`` gathers
instead of scattering, so no atomics), the activations and the Adam update as
``ElementwiseKernel`` s. Matrix products go to cuBLAS through ``cupy.matmul``.
"""

from __future__ import annotations

import math
import types
import warnings
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
        """``a @ b`` on the backend (cuBLAS on CuPy); an ``out`` that is not C-contiguous (the
        plans write a tile's product into its columns of a larger array) gets the product
        copied in."""
        if out is not None and not out.flags.c_contiguous:
            out[...] = namespace.matmul(a, b)
            return out
        return namespace.matmul(a, b, out=out)

    mod.matmul = matmul
    # the noise is drawn on the host, the same bits on every backend (nanogan.noise), then moved
    mod.normal_from_bits = reference.normal_from_bits
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


_ADAM = r"""
    // one thread per element, in place on p, m, v; the roundings of the reference: all in T
    const T gg = wd != (T)0 ? g + wd * p : g;
    m = m * beta1 + c1 * gg;
    v = v * beta2 + c2 * gg * gg;
    const T denom = (T)sqrt(v) / sqrt_bc2 + eps;
    p = p - (lr_bc1 * m) / denom;
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
    adam_k = cupy.ElementwiseKernel(
        "T g, T lr_bc1, T sqrt_bc2, T beta1, T c1, T beta2, T c2, T eps, T wd",
        "T p, T m, T v", _ADAM, "nanogan_adam")
    ref_adam = mod.adam_update
    fused = {"adam": True}
    conv = reference.conv_output_size

    def im2col(x: Any, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> Any:
        N, C, H, W = x.shape
        OH, OW = conv(H, kh, sh, ph), conv(W, kw, sw, pw)
        cols = cupy.empty((C * kh * kw, N * OH * OW), dtype=x.dtype)
        im2col_k(cupy.ascontiguousarray(x), N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW, cols)
        return cols

    def col2im(cols: Any, x_shape: tuple[int, int, int, int], kh: int, kw: int, sh: int,
               sw: int, ph: int, pw: int, out: Any = None) -> Any:
        N, C, H, W = x_shape
        if cols.dtype.kind != "f":
            return ref_col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, out)
        if out is not None:  # written through a copy (the kernel writes C-contiguous images)
            if tuple(out.shape) != tuple(x_shape):
                raise ValueError(f"col2im: argument 'out' expected shape {tuple(x_shape)}, "
                                 f"got {tuple(out.shape)}")
            out[...] = col2im(cols, x_shape, kh, kw, sh, sw, ph, pw)
            return out
        OH, OW = conv(H, kh, sh, ph), conv(W, kw, sw, pw)
        x = cupy.empty((N, C, H, W), dtype=cols.dtype)
        col2im_k(cupy.ascontiguousarray(cols), N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW, x)
        return x

    def leaky_relu(x: Any, slope: float) -> Any:
        return lrelu_k(x, x.dtype.type(slope))

    def leaky_relu_backward(dy: Any, x: Any, slope: float) -> Any:
        return lrelu_b_k(dy, x, dy.dtype.type(slope))

    def adam_update(p: Any, g: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float,
                    eps: float, weight_decay: float, step: int) -> None:
        """PyTorch's Adam in one CUDA kernel per parameter (the reference takes ~10)."""
        if fused["adam"] and p.dtype.kind == "f" and p.shape == g.shape == m.shape == v.shape:
            t = p.dtype.type
            bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
            try:
                adam_k(g, t(lr / bc1), t(math.sqrt(bc2)), t(beta1), t(1 - beta1), t(beta2),
                       t(1 - beta2), t(eps), t(weight_decay), p, m, v)
                return
            except cupy.cuda.compiler.CompileException as exc:  # never leave Adam broken
                fused["adam"] = False
                warnings.warn(f"the fused CUDA Adam kernel does not compile ({exc}); using the "
                              "reference update on CuPy", stacklevel=2)
        ref_adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)

    def im2col_matmul(a: Any, x: Any, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                      out: Any = None, slope: float | None = None) -> Any:
        """``a @ im2col(x)``: the CUDA im2col, then one cuBLAS product (no tiles: a GPU's
        memory holds the column matrix, and one large product keeps it busy); with ``slope``,
        the leaky ReLU kernel on the result."""
        K, NL = reference._conv_sizes(x.shape, kh, kw, sh, sw, ph, pw)
        reference.expect_shape("im2col_matmul", "a", a, (a.shape[0], K))
        if out is not None:
            reference.expect_shape("im2col_matmul", "out", out, (a.shape[0], NL))
        y2 = mod.matmul(a, im2col(x, kh, kw, sh, sw, ph, pw), out)
        if slope is None:
            return y2
        y2[...] = leaky_relu(y2, slope)
        return y2

    def through_leaky(op: str, d: Any, y: Any, slope: float | None) -> Any:
        if y is None:
            return d
        reference.check_leaky(op, d, y, slope)
        return leaky_relu_backward(d, y, slope)

    def matmul_col2im(a: Any, b: Any, x_shape: tuple[int, int, int, int], kh: int, kw: int,
                      sh: int, sw: int, ph: int, pw: int, out: Any = None, y: Any = None,
                      slope: float | None = None) -> Any:
        K, NL = reference._conv_sizes(x_shape, kh, kw, sh, sw, ph, pw)
        reference.expect_shape("matmul_col2im", "a", a, (K, a.shape[1]))
        reference.expect_shape("matmul_col2im", "b", b, (a.shape[1], NL))
        b = through_leaky("matmul_col2im", b, y, slope)
        return col2im(cupy.matmul(a, b), x_shape, kh, kw, sh, sw, ph, pw, out)

    def matmul_im2col_t(a: Any, x: Any, kh: int, kw: int, sh: int, sw: int, ph: int,
                        pw: int, y: Any = None, slope: float | None = None) -> Any:
        NL = reference._conv_sizes(x.shape, kh, kw, sh, sw, ph, pw)[1]
        reference.expect_shape("matmul_im2col_t", "a", a, (a.shape[0], NL))
        a = through_leaky("matmul_im2col_t", a, y, slope)
        return cupy.matmul(a, im2col(x, kh, kw, sh, sw, ph, pw).T)

    def adam_update_many(ps: list, gs: list, ms: list, vs: list, lr: float, beta1: float,
                         beta2: float, eps: float, weight_decay: float, step: int) -> None:
        reference.expect_same_length("adam_update_many", ps=ps, gs=gs, ms=ms, vs=vs)
        for p, g, m, v in zip(ps, gs, ms, vs):  # one fused kernel per parameter
            adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)

    mod.adam_update, mod.adam_update_many = adam_update, adam_update_many
    mod.im2col, mod.col2im = im2col, col2im
    mod.im2col_matmul, mod.matmul_col2im = im2col_matmul, matmul_col2im
    mod.matmul_im2col_t = matmul_im2col_t
    mod.leaky_relu, mod.leaky_relu_backward = leaky_relu, leaky_relu_backward
    mod.sigmoid, mod.softplus = sigmoid_k, softplus_k
    return mod


# --------------------------------------------------------------------------- self-check
#: im2col / col2im geometries of :func:`compare_with_reference`: (N, C, H, W), (kh, kw),
#: (sh, sw), (ph, pw); the DCGAN-28 layers, odd sizes, a non-square window, padding >= stride.
CHECK_GEOMETRIES: tuple[tuple[tuple[int, int, int, int], tuple[int, int], tuple[int, int],
                              tuple[int, int]], ...] = (
    ((3, 1, 28, 28), (4, 4), (2, 2), (1, 1)),
    ((3, 64, 14, 14), (4, 4), (2, 2), (1, 1)),
    ((2, 128, 7, 7), (7, 7), (1, 1), (0, 0)),
    ((2, 3, 9, 7), (3, 2), (1, 3), (2, 1)),
    ((1, 2, 5, 6), (5, 3), (3, 2), (0, 2)),
)


def compare_with_reference(mod: Any, dtype: Any = "float64", seed: int = 0
                           ) -> dict[str, float]:
    """Run every op of :data:`nanogan._kernels.OP_NAMES` of the kernel set ``mod`` (a module of
    :func:`rebind`, :func:`strict_set` or :func:`cupy_set`) and of the reference on the same
    random inputs; return, per op, the largest error relative to the reference's largest value
    (over every output, in-place updates included).

    The inputs are drawn on the host, moved with ``mod.np.asarray``; the outputs are brought back
    with :func:`nanogan.backend.to_numpy`. A ``TypeError`` is raised if an op of ``mod`` returns a
    NumPy array (it must compute on its own backend) or if the outputs' shapes differ.
    """
    import numpy as np

    from ..backend import to_numpy
    from . import OP_NAMES

    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    dev = mod.np.asarray

    def rand(*shape: int, lo: float = -3.0, hi: float = 3.0) -> np.ndarray:
        return rng.uniform(lo, hi, size=shape).astype(dt)

    def host(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(host(u) for u in v)
        if isinstance(v, np.ndarray):
            raise TypeError(f"kernel set {getattr(mod, 'NAME', mod)!r} returned a NumPy array")
        return to_numpy(v) if hasattr(v, "shape") else v

    errors: dict[str, float] = {}

    def record(op: str, got: Any, want: Any) -> None:
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        err = 0.0
        for g, w in zip(got, want, strict=True):
            g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
            if g.shape != w.shape:
                raise TypeError(f"{op}: shape {g.shape} against the reference's {w.shape}")
            scale = max(float(np.abs(w).max(initial=0.0)), 1e-30)
            err = max(err, float(np.abs(g - w).max(initial=0.0)) / scale)
        errors[op] = max(errors.get(op, 0.0), err)

    def run(op: str, *args: Any, inplace: tuple[int, ...] = ()) -> None:
        """``op(*args)`` on both sides; array arguments are NumPy arrays, copied per side."""
        ref_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        dev_args = [dev(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
        want = getattr(reference, op)(*ref_args)
        got = host(getattr(mod, op)(*dev_args))
        if want is not None:
            record(op, got, want)
        for i in inplace:
            record(op, host(dev_args[i]), ref_args[i])

    for shape, (kh, kw), (sh, sw), (ph, pw) in CHECK_GEOMETRIES:
        n, c, h, w = shape
        x = rand(*shape)
        run("im2col", x, kh, kw, sh, sw, ph, pw)
        oh = reference.conv_output_size(h, kh, sh, ph)
        ow = reference.conv_output_size(w, kw, sw, pw)
        run("col2im", rand(c * kh * kw, n * oh * ow), shape, kh, kw, sh, sw, ph, pw)
        run("im2col_matmul", rand(5, c * kh * kw), x, kh, kw, sh, sw, ph, pw)
        run("matmul_col2im", rand(c * kh * kw, 5), rand(5, n * oh * ow), shape, kh, kw, sh, sw,
            ph, pw)
        run("matmul_im2col_t", rand(5, n * oh * ow), x, kh, kw, sh, sw, ph, pw)
    w3, x3, dy2 = rand(2, 3, 5), rand(3, 4, 5), rand(2, 4)
    run("window_forward", w3, x3)
    run("window_weight_grad", dy2, x3)
    run("window_input_grad", dy2, w3)
    xt = rand(2, 3, 8, 9).transpose(0, 1, 3, 2)  # a non-contiguous input
    run("im2col", np.ascontiguousarray(xt), 3, 3, 2, 1, 1, 0)
    got = host(mod.im2col(dev(xt.copy())[:, :, ::2], 2, 2, 1, 1, 0, 0))
    record("im2col", got, reference.im2col(xt[:, :, ::2], 2, 2, 1, 1, 0, 0))

    x, dy = rand(4, 6, 5), rand(4, 6, 5)
    big = np.concatenate([x.ravel(), np.array([-60.0, 60.0, 0.0], dtype=dt)])
    for slope in (0.0, 0.2):
        run("leaky_relu", x, slope)
        run("leaky_relu_backward", dy, x, slope)
    run("tanh_backward", dy, np.tanh(x))
    run("sigmoid", big)
    run("softplus", big)
    b = rand(6)
    for slope in (0.0, 0.2):
        run("bias_leaky_relu", x, b, slope, inplace=(0,))
        y = reference.bias_leaky_relu(x.copy(), b, slope)
        run("bias_leaky_relu_backward", dy, y, slope)
    run("bias_tanh", x, b, inplace=(0,))
    gamma, beta = rand(6, lo=0.5, hi=2.0), rand(6)
    run("batchnorm_forward", x, gamma, beta, 1e-5)
    _, mean, _, inv_std = reference.batchnorm_forward(x, gamma, beta, 1e-5)
    run("batchnorm_backward", dy, x, mean, inv_std, gamma)
    for slope in (0.0, 0.2):
        run("batchnorm_leaky_relu", x, gamma, beta, 1e-5, slope)
        y = reference.batchnorm_leaky_relu(x, gamma, beta, 1e-5, slope)[0]
        run("batchnorm_leaky_relu_backward", dy, y, x, mean, inv_std, gamma, slope)
    for t in (0.0, 1.0, 0.9):
        run("bce_with_logits", rand(8, 1, lo=-20.0, hi=20.0), t)
    p, g = rand(5, 7), rand(5, 7)
    for first, nesterov, wd in ((True, False, 0.0), (False, True, 0.01), (False, False, 0.0)):
        run("sgd_update", p, g, rand(5, 7), 0.1, 0.9, 0.1, nesterov, wd, first,
            inplace=(0, 2))
    run("sgd_update", p, g, rand(5, 7), 0.1, 0.0, 0.0, False, 0.0, True, inplace=(0,))
    for step, wd in ((1, 0.0), (7, 0.01)):
        run("adam_update", p, g, rand(5, 7), rand(5, 7, lo=0.0, hi=2.0), 2e-4, 0.5, 0.999,
            1e-8, wd, step, inplace=(0, 2, 3))
    shapes = ((5, 7), (3,), (2, 4))  # a model's parameters, in one call
    for step, wd in ((1, 0.0), (7, 0.01)):
        lists = [[rand(*s) for s in shapes] for _ in range(3)]
        lists.append([rand(*s, lo=0.0, hi=2.0) for s in shapes])
        ref_lists = [[a.copy() for a in arrays] for arrays in lists]
        dev_lists = [[dev(a.copy()) for a in arrays] for arrays in lists]
        reference.adam_update_many(*ref_lists, 2e-4, 0.5, 0.999, 1e-8, wd, step)
        mod.adam_update_many(*dev_lists, 2e-4, 0.5, 0.999, 1e-8, wd, step)
        for i in (0, 2, 3):  # p, m, v updated in place
            for got, want in zip(dev_lists[i], ref_lists[i]):
                record("adam_update_many", host(got), want)
    for wd in (0.0, 0.01):
        run("rmsprop_update", p, g, rand(5, 7, lo=0.0, hi=2.0), 1e-2, 0.99, 1e-8, wd,
            inplace=(0, 2))
    # the noise is drawn on the host on every backend (nanogan.noise): NumPy in, NumPy out
    words = rng.bit_generator.random_raw(6)
    record("normal_from_bits", mod.normal_from_bits(words.copy(), np.empty(11, dt)),
           reference.normal_from_bits(words, np.empty(11, dt)))
    missing = [op for op in OP_NAMES if op not in errors]
    if missing:
        raise RuntimeError(f"compare_with_reference does not exercise {missing}")
    return errors
