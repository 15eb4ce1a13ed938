"""The steps a :class:`~nanogan.fast.Plan` runs: each layer's forward and backward as in its own
file, rewritten for speed. Every step has the layer contract (``forward -> (y, cache)``,
``backward(dy, cache, param_grads=, input_grad=, accumulate=True)``, gradients added into the
layer's ``grads``; ``accumulate=False`` writes them instead, as ``zero_grad()`` then ``backward``
would leave them, without the zero-fill and the addition).

Fusing a producer with the (Leaky)ReLU after it is exact, not an approximation::

    forward    y = leaky_relu(z + b, slope)                     (one pass over z, in place)
    backward   dz = dy if y > 0 else slope * dy;  db = sum dz   (one pass over dy)

for ``slope >= 0``, ``y > 0`` exactly where ``z > 0``, so the activation's backward reads its mask
from the output ``y``; and writing ``y`` over ``z`` is safe because no cache holds ``z``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._kernels import matmul, ops
from .._kernels._threads import _env_int
from ..backend import asarray, xp
from ..layers import BatchNorm1d, BatchNorm2d, Conv2d, ConvTranspose2d, Dense, Module
from ..layers.base import _fmt_shape, accepts_input_grad
from ..layers.conv import _check_grad


def _has_params(layer: Module) -> bool:
    return any(m._params for _, m in layer.named_modules())


def put_grad(layer: Module, name: str, value: np.ndarray, accumulate: bool) -> None:
    """``layer.grads[name] += value``; with ``accumulate=False`` (a pass that starts the
    gradients, in place of ``zero_grad()`` and an addition) ``layer.grads[name] = value``, written
    into the same array. ``value`` may have another shape of the same size (a weight gradient
    as its product gives it, ``(O, C*kh*kw)``): the gradient is viewed in that shape, so a
    transposed product is copied once, not reshaped into a copy first."""
    g = _grad_view(layer, name, value.shape)
    if accumulate:
        g += value
    else:
        g[...] = value


def _grad_view(layer: Module, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``layer.grads[name]`` viewed in ``shape`` (same size). Layers allocate their gradients
    contiguous, so this is a view; anything else would make ``reshape`` copy and the write
    vanish, so it is refused."""
    g = layer._grads[name]
    if g.shape == tuple(shape):
        return g
    if not g.flags.c_contiguous:
        raise RuntimeError(f"{layer!r}: gradient {name!r} is not contiguous; the fast path "
                           "writes gradients through reshaped views")
    return g.reshape(shape)


def put_product(layer: Module, name: str, a: np.ndarray, b: np.ndarray,
                accumulate: bool) -> None:
    """``layer.grads[name] (+)= a @ b`` (the gradient viewed as ``(m, n)``); a pass that starts
    the gradients writes the product straight into them."""
    g = _grad_view(layer, name, (a.shape[0], b.shape[1]))
    if accumulate:
        g += matmul(a, b)
    else:
        matmul(a, b, out=g)


class _TileSum:
    """The sum over tiles of ``matmul_nt`` products, added in the layout the products come in
    (``matmul_nt`` may return a transposed view): contiguous additions, and one copy into the
    gradient at the end instead of a strided addition per tile."""

    def __init__(self) -> None:
        self.acc: np.ndarray | None = None
        self.transposed = False

    def add(self, p: np.ndarray) -> None:
        if self.acc is None:
            self.transposed = not p.flags.c_contiguous and p.T.flags.c_contiguous
            self.acc = (p.T if self.transposed else p).copy()
        else:
            self.acc += p.T if self.transposed else p

    def value(self) -> np.ndarray:
        return self.acc.T if self.transposed else self.acc


def matmul_nt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b^T`` for ``a (m, k)`` and ``b (n, k)`` (a weight gradient: both read along the long
    ``k``), computed as ``(b @ a^T)^T`` when ``b`` has more rows: BLAS runs such products about a
    fifth faster with the operand of more rows first (measured with OpenBLAS for the DCGAN-28
    layers; the other way round for few rows). Returns a view when transposed."""
    if b.shape[0] > a.shape[0]:
        return matmul(b, a.T).T
    return matmul(a, b.T)


class Step:
    """One or two consecutive layers of a ``Sequential`` run as a unit."""

    size = 1  # how many of the network's layers the step runs

    def __init__(self, layer: Module) -> None:
        self.layer = layer
        self.has_params = _has_params(layer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.layer!r})"

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, cache: Any, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        raise NotImplementedError


class LayerStep(Step):
    """A layer run by its own ``forward`` and ``backward``."""

    def __init__(self, layer: Module) -> None:
        super().__init__(layer)
        self.takes_input_grad = accepts_input_grad(layer)

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, Any]:
        return self.layer.forward(x, train)

    def backward(self, dy: np.ndarray, cache: Any, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        if not accumulate and param_grads:
            self.layer.zero_grad()  # the layer adds into its gradients: start them at zero
        if self.takes_input_grad:
            return self.layer.backward(dy, cache, param_grads=param_grads,
                                       input_grad=input_grad)
        dx = self.layer.backward(dy, cache, param_grads=param_grads)
        return dx if input_grad else None


class _Fusing(Step):
    """A producer, and the slope of the (Leaky)ReLU fused into it (None: no activation)."""

    def __init__(self, layer: Module, slope: float | None = None) -> None:
        super().__init__(layer)
        self.slope = slope
        self.size = 1 if slope is None else 2

    def __repr__(self) -> str:
        act = "" if self.slope is None else f" + LeakyReLU({self.slope})"
        return f"{type(self).__name__}({self.layer!r}{act})"


class ActivationStep(Step):
    """``LeakyReLU``/``ReLU`` by the compiled kernel ops."""

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, np.ndarray]:
        x = self.layer._check_input(x, tuple(range(1, 33)), "(N, *)")
        return ops.leaky_relu(x, self.layer.negative_slope), x

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        return ops.leaky_relu_backward(dy, cache, self.layer.negative_slope) if input_grad \
            else None


class DenseStep(_Fusing):
    """``Dense`` (+ ``LeakyReLU``): ``y = leaky_relu(x W^T + b)``, bias and activation in one pass
    over ``x W^T``; the cache holds ``x`` and ``y``, never ``x W^T``."""

    layer: Dense

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        d = self.layer
        x = d._check_input(x, 2, "(N, in_features)", {1: d.in_features})
        z = matmul(x, d.weight.T)
        if self.slope is None:
            if d.bias is not None:
                z += d.bias
            return z, (x, None)
        N, O = z.shape
        y = ops.bias_leaky_relu(z.reshape(N, O, 1), d.bias, self.slope).reshape(N, O)
        return y, (x, y)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        d = self.layer
        x, y = cache
        if self.slope is None:
            dz = dy
            if param_grads and d.bias is not None:
                put_grad(d, "bias", dy.sum(axis=0), accumulate)
        else:
            N, O = y.shape
            dz, db = ops.bias_leaky_relu_backward(asarray(dy).reshape(N, O, 1),
                                                  y.reshape(N, O, 1), self.slope)
            dz = dz.reshape(N, O)
            if param_grads:
                put_grad(d, "bias", db, accumulate)
        if param_grads:
            if accumulate:
                d._grads["weight"] += matmul(dz.T, x)
            else:  # the product written straight into the gradient: no zero-fill, no temporary
                matmul(dz.T, x, out=d._grads["weight"])
        return matmul(dz, d.weight) if input_grad else None


#: A convolution whose column matrix would hold more elements than this runs by tiles of the
#: batch: ``im2col``, product and ``col2im`` one tile of images at a time, so that the tile's
#: columns (4 MB in float32) stay in the cache between the kernel that writes them and the product
#: that reads them, instead of a column matrix of tens of MB going to memory and back (DCGAN-28's
#: 64 -> 128 convolution at batch 256: 51 MB). The backward pass recomputes each tile's columns
#: from the input instead of caching them. Results equal the untiled ones up to the order of the
#: weight-gradient sums. Measured on the DCGAN-28 iteration at batch 256, each setting in its own
#: process (``benchmarks/sweep_thresholds.py --configs dcgan256 --tiles 1e12,1048576 --rounds 3``):
#: 628 -> 568 ms on one thread; on two, 449 -> 442 (within the noise; 2^19 elements: 450).
#: ``NANOGAN_CONV_TILE_ELEMENTS`` sets it (read at import).
CONV_TILE_ELEMENTS: int = _env_int("NANOGAN_CONV_TILE_ELEMENTS", 1 << 20)


def _tile_images(per_image: int, n: int) -> int:
    """Images per tile for a column matrix of ``per_image`` elements per image (``n``: none)."""
    return n if per_image * n <= CONV_TILE_ELEMENTS else max(1, CONV_TILE_ELEMENTS // per_image)


def _whole_window(conv: Conv2d, x_shape: tuple[int, ...]) -> bool:
    """True when one unpadded window covers each whole image (an output of size 1 x 1): then
    ``im2col(x)`` is ``x.reshape(N, C*H*W)^T``, a view, and ``col2im`` a reshape."""
    return tuple(x_shape[2:]) == tuple(conv.kernel_size) and tuple(conv.padding) == (0, 0)


class ConvStep(_Fusing):
    """``Conv2d`` (+ ``LeakyReLU`` when it has a bias), with the whole-window shortcut."""

    layer: Conv2d

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        c = self.layer
        x = c._checked_input(x)
        (kh, kw), (sh, sw), (ph, pw) = c.kernel_size, c.stride, c.padding
        N, O, OH, OW = c.output_shape(x.shape)
        W2 = c.weight.reshape(O, -1)
        tile = _tile_images(W2.shape[1] * OH * OW, N)
        if _whole_window(c, x.shape):
            cols = x.reshape(N, -1).T                             # (C*kh*kw, N), a view
            y = matmul(cols.T, W2.T).reshape(N, O, 1, 1)          # no transpose copy
        elif tile < N:                                            # by tiles; no cols kept
            cols = None
            y = xp.empty((N, O, OH, OW), dtype=x.dtype)
            for s in range(0, N, tile):
                xt = x[s:s + tile]
                ct = ops.im2col(xt, kh, kw, sh, sw, ph, pw)
                y[s:s + len(xt)] = matmul(W2, ct).reshape(O, -1, OH, OW).transpose(1, 0, 2, 3)
        else:
            cols = ops.im2col(x, kh, kw, sh, sw, ph, pw)          # (C*kh*kw, N*OH*OW)
            y = xp.ascontiguousarray(matmul(W2, cols).reshape(O, N, OH, OW).transpose(1, 0, 2, 3))
        if self.slope is not None:
            ops.bias_leaky_relu(y.reshape(N, O, -1), c.bias, self.slope)
            return y, (cols, x, y)
        if c.bias is not None:
            y += c.bias[None, :, None, None]
        return y, (cols, x, None)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        c = self.layer
        cols, x, y = cache
        x_shape = x.shape
        out_shape = c.output_shape(x_shape)
        dy = _check_grad(c, dy, out_shape)
        N, O = out_shape[:2]
        if self.slope is None:
            dz = dy
            if param_grads and c.bias is not None:
                put_grad(c, "bias", dy.sum(axis=(0, 2, 3)), accumulate)
        else:
            dz, db = ops.bias_leaky_relu_backward(dy.reshape(N, O, -1), y.reshape(N, O, -1),
                                                  self.slope)
            if param_grads:
                put_grad(c, "bias", db, accumulate)
        (kh, kw), (sh, sw), (ph, pw) = c.kernel_size, c.stride, c.padding
        W2 = c.weight.reshape(O, -1)
        if cols is None:  # the forward pass ran by tiles: so does this one
            return self._backward_tiled(dz.reshape(out_shape), x, W2, param_grads, input_grad,
                                        accumulate)
        dy2 = dz.reshape(out_shape).transpose(1, 0, 2, 3).reshape(O, -1)  # (O, N*OH*OW)
        if param_grads:
            put_grad(c, "weight", matmul_nt(dy2, cols), accumulate)
        if not input_grad:
            return None
        if _whole_window(c, x_shape):
            return matmul(dy2.T, W2).reshape(x_shape)
        return ops.col2im(matmul(W2.T, dy2), tuple(x_shape), kh, kw, sh, sw, ph, pw)

    def _backward_tiled(self, dz: np.ndarray, x: np.ndarray, W2: np.ndarray, param_grads: bool,
                        input_grad: bool, accumulate: bool) -> np.ndarray | None:
        """The backward pass by the forward pass's tiles, each tile's columns recomputed:
        ``dW += dy2_t cols_t^T``, ``dx_t = col2im(W2^T dy2_t)``."""
        c = self.layer
        (kh, kw), (sh, sw), (ph, pw) = c.kernel_size, c.stride, c.padding
        N, O, OH, OW = dz.shape
        tile = _tile_images(W2.shape[1] * OH * OW, N)
        gW = _TileSum() if param_grads else None
        dx = xp.empty(x.shape, dtype=x.dtype) if input_grad else None
        for s in range(0, N, tile):
            xt = x[s:s + tile]
            dy2 = dz[s:s + tile].transpose(1, 0, 2, 3).reshape(O, -1)      # (O, n*OH*OW)
            if gW is not None:
                gW.add(matmul_nt(dy2, ops.im2col(xt, kh, kw, sh, sw, ph, pw)))
            if dx is not None:
                dx[s:s + len(xt)] = ops.col2im(matmul(W2.T, dy2), tuple(xt.shape), kh, kw,
                                               sh, sw, ph, pw)
        if gW is not None:
            put_grad(c, "weight", gW.value(), accumulate)
        return dx


class ConvTransposeStep(Step):
    """``ConvTranspose2d`` with the 1 x 1-input shortcut: each input pixel scatters one whole
    kernel, ``col2im`` is a transpose, and ``y = x2^T @ W2`` is already in NCHW order."""

    layer: ConvTranspose2d

    def _single_pixel(self, x_shape: tuple[int, ...]) -> bool:
        t = self.layer
        return (tuple(x_shape[2:]) == (1, 1) and t.padding == (0, 0)
                and t.output_padding == (0, 0))

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        t = self.layer
        x = t._checked_input(x)
        out_shape = t.output_shape(x.shape)
        (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
        Cin = t.in_channels
        W2 = t.weight.reshape(Cin, -1)
        N, _, H, W = x.shape
        tile = _tile_images(W2.shape[1] * H * W, N)
        if self._single_pixel(x.shape):
            x2 = x.transpose(1, 0, 2, 3).reshape(Cin, -1)         # (Cin, N*H*W)
            y = matmul(x2.T, W2).reshape(out_shape)
        elif tile < N:                                            # by tiles; no x2 kept
            x2 = None
            y = xp.empty(out_shape, dtype=x.dtype)
            for s in range(0, N, tile):
                xt = x[s:s + tile]
                x2t = xt.transpose(1, 0, 2, 3).reshape(Cin, -1)
                y[s:s + len(xt)] = ops.col2im(matmul(W2.T, x2t), (len(xt), *out_shape[1:]),
                                              kh, kw, sh, sw, ph, pw)
        else:
            x2 = x.transpose(1, 0, 2, 3).reshape(Cin, -1)         # (Cin, N*H*W)
            y = xp.ascontiguousarray(ops.col2im(matmul(W2.T, x2), out_shape, kh, kw, sh, sw,
                                                ph, pw))
        if t.bias is not None:
            y += t.bias[None, :, None, None]
        return y, (x2, x)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        t = self.layer
        x2, x = cache
        x_shape = x.shape
        dy = _check_grad(t, dy, t.output_shape(x_shape))
        (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
        N, Cin, H, W = x_shape
        W2 = t.weight.reshape(Cin, -1)
        if x2 is None:  # the forward pass ran by tiles: so does this one
            if param_grads and t.bias is not None:
                put_grad(t, "bias", dy.sum(axis=(0, 2, 3)), accumulate)
            return self._backward_tiled(dy, x, W2, param_grads, input_grad, accumulate)
        single = self._single_pixel(x_shape)
        dcols = dy.reshape(N, -1).T if single else ops.im2col(dy, kh, kw, sh, sw, ph, pw)
        if param_grads:
            if single:  # x2 (Cin, N) @ dy2 (N, Cout*kh*kw): already the gradient's layout
                put_product(t, "weight", x2, dcols.T, accumulate)
            else:
                put_grad(t, "weight", matmul_nt(x2, dcols), accumulate)
            if t.bias is not None:
                put_grad(t, "bias", dy.sum(axis=(0, 2, 3)), accumulate)
        if not input_grad:
            return None
        if single:
            return matmul(dcols.T, W2.T).reshape(x_shape)         # (N, Cin) = dx2^T
        dx2 = matmul(W2, dcols)                                   # (Cin, N*H*W)
        return xp.ascontiguousarray(dx2.reshape(Cin, N, H, W).transpose(1, 0, 2, 3))

    def _backward_tiled(self, dy: np.ndarray, x: np.ndarray, W2: np.ndarray, param_grads: bool,
                        input_grad: bool, accumulate: bool) -> np.ndarray | None:
        """The backward pass by the forward pass's tiles: ``dcols_t = im2col(dy_t)``,
        ``dW += x2_t dcols_t^T``, ``dx_t = (W2 dcols_t)`` back in NCHW order."""
        t = self.layer
        (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
        N, Cin, H, W = x.shape
        tile = _tile_images(W2.shape[1] * H * W, N)
        gW = _TileSum() if param_grads else None
        dx = xp.empty(x.shape, dtype=x.dtype) if input_grad else None
        for s in range(0, N, tile):
            xt = x[s:s + tile]
            n = len(xt)
            dcols = ops.im2col(dy[s:s + n], kh, kw, sh, sw, ph, pw)   # (Cout*kh*kw, n*H*W)
            if gW is not None:
                gW.add(matmul_nt(xt.transpose(1, 0, 2, 3).reshape(Cin, -1), dcols))
            if dx is not None:
                dx[s:s + n] = matmul(W2, dcols).reshape(Cin, n, H, W).transpose(1, 0, 2, 3)
        if gW is not None:
            put_grad(t, "weight", gW.value(), accumulate)
        return dx


class BatchNormActStep(_Fusing):
    """``BatchNorm`` + ``LeakyReLU``: in training, normalisation, affine map and activation are
    one kernel pass (``ops.batchnorm_leaky_relu``) that writes ``y`` once, and the backward
    kernel recomputes the activation's gradient in both of its passes instead of storing it."""

    layer: BatchNorm1d | BatchNorm2d

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        bn = self.layer
        if not train:
            u, cache = bn.forward(x, train)
            y = ops.leaky_relu(u, self.slope)
            return y, (cache, y)
        x = bn._check_input(x, bn._ranks, bn._layout, {1: bn.num_features})
        shape = x.shape
        x3 = xp.ascontiguousarray(x.reshape(shape[0], shape[1], -1))
        n = x3.shape[0] * x3.shape[2]
        if n <= 1:
            raise ValueError(f"{bn!r}: argument 'x' expected more than 1 value per channel "
                             f"when training, got {_fmt_shape(shape)}")
        gamma, beta = bn._gamma_beta()
        y3, mean, var, inv_std = ops.batchnorm_leaky_relu(x3, gamma, beta, bn.eps, self.slope)
        bn._update_running(mean, var, n)
        return y3.reshape(shape), ((True, x3, mean, inv_std, shape), y3)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        bn = self.layer
        bn_cache, y = cache
        train, x3, mean, inv_std, shape = bn_cache
        if not train:
            du = ops.leaky_relu_backward(asarray(dy, y.dtype), y, self.slope)
            if not accumulate and param_grads:
                bn.zero_grad()
            return bn.backward(du, bn_cache, param_grads=param_grads, input_grad=input_grad)
        dy3 = xp.ascontiguousarray(asarray(dy, x3.dtype).reshape(x3.shape))
        gamma, _ = bn._gamma_beta()
        dx3, dgamma, dbeta = ops.batchnorm_leaky_relu_backward(
            dy3, y.reshape(x3.shape), x3, mean, inv_std, gamma, self.slope)
        if param_grads and bn.affine:
            put_grad(bn, "weight", dgamma, accumulate)
            put_grad(bn, "bias", dbeta, accumulate)
        return dx3.reshape(shape) if input_grad else None


__all__ = ["ActivationStep", "BatchNormActStep", "ConvStep", "ConvTransposeStep", "DenseStep",
           "LayerStep", "Step", "matmul_nt"]
