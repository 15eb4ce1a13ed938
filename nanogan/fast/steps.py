"""The steps a :class:`~nanogan.fast.Plan` runs: each layer's forward and backward as in its own
file, rewritten for speed. Every step has the layer contract (``forward -> (y, cache)``,
``backward(dy, cache, param_grads=, input_grad=, accumulate=True)``, gradients added into the
layer's ``grads``; ``accumulate=False`` writes them instead, as ``zero_grad()`` then ``backward``
would leave them, without the zero-fill and the addition).

Fusing a producer with the (Leaky)ReLU after it is exact, not an approximation::

    forward    y = leaky_relu(z + b, slope)                     (one pass over z, in place)
    backward   dz = dy if y > 0 else slope * dy;  db = sum dz   (one pass over dy)

for ``slope >= 0``, ``y > 0`` exactly where ``z > 0``, so the activation's backward reads its mask
from the output ``y``; and writing ``y`` over ``z`` is safe because no cache holds ``z``. A Dense
layer and the ``Tanh`` after it (a generator's output) fuse the same way::

    forward    y = tanh(z + b)                                  (one pass over z, in place)
    backward   dz = dy * (1 - y^2);  db = sum dz
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._kernels import matmul, matmul_pair, ops
from ..backend import asarray, xp
from ..layers import BatchNorm1d, BatchNorm2d, Conv2d, ConvTranspose2d, Dense, Module, Sigmoid, Tanh
from ..layers.base import _fmt_shape, accepts_input_grad, check_dy
from ..layers.conv import _check_grad

#: The layout of the images between the plan's convolution and batch-norm steps: channels first,
#: ``(C, N, H, W)``. A convolution's product ``W2 @ cols`` gives its output in that order, one
#: tile of images as a block of columns, and a transposed convolution's input ``x2 (Cin, N*H*W)``
#: is the array itself; in the NCHW order of the layers each of them is a transposed copy (see
#: :class:`~nanogan.fast.plan.Plan`, which converts where a step of another layout follows).
CNHW = "cnhw"
NCHW = "nchw"


def nchw(x: np.ndarray) -> np.ndarray:
    """The ``(N, C, H, W)`` view of a CNHW image (and back: the transposition is its own
    inverse); any other rank as it is (a layer's own check then names the error)."""
    return x.transpose(1, 0, 2, 3) if x.ndim == 4 else x


#: Layers that act on each value alone, deterministically: they run on images in any order.
ELEMENTWISE = (Tanh, Sigmoid)


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


class Step:
    """One or two consecutive layers of a ``Sequential`` run as a unit."""

    size = 1  # how many of the network's layers the step runs
    #: The order of the images (4-D arrays) it takes and gives: ``NCHW`` (the layers' own),
    #: ``CNHW`` (see :data:`CNHW`), or None for an elementwise step, which runs in either.
    layout: str | None = NCHW

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

    #: Whether :meth:`rows` can cut this step's cache by samples.
    splits = False

    def rows(self, cache: Any, lo: int, hi: int | None) -> Any:
        """The cache of the forward pass of samples ``lo:hi`` alone, cut from the cache of a pass
        over a larger batch (views, no copies): what :meth:`~nanogan.fast.Plan.split_pair` uses
        to run the backward pass of one of two batches that went forward as one."""
        raise NotImplementedError(f"{type(self).__name__}: its cache cannot be cut by samples")


def _rows(a: np.ndarray | None, lo: int, hi: int | None) -> np.ndarray | None:
    return None if a is None else a[lo:hi]


class LayerStep(Step):
    """A layer run by its own ``forward`` and ``backward``."""

    def __init__(self, layer: Module) -> None:
        super().__init__(layer)
        self.takes_input_grad = accepts_input_grad(layer)
        if type(layer) in ELEMENTWISE:
            self.layout = None

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

    layout = None

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, np.ndarray]:
        x = self.layer._check_input(x, tuple(range(1, 33)), "(N, *)")
        return ops.leaky_relu(x, self.layer.negative_slope), x

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        return ops.leaky_relu_backward(dy, cache, self.layer.negative_slope) if input_grad \
            else None

    splits = True

    def rows(self, cache: np.ndarray, lo: int, hi: int | None) -> np.ndarray:
        return cache[lo:hi]  # the input x, samples first


class TanhStep(Step):
    """``Tanh``: its backward pass ``dy * (1 - y^2)`` as one kernel pass (the layer's NumPy
    expression takes three, and two temporaries)."""

    layout = None

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, np.ndarray]:
        return self.layer.forward(x, train)

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        y = cache
        return ops.tanh_backward(check_dy(self.layer, dy, y.shape), y) if input_grad else None

    splits = True

    def rows(self, cache: np.ndarray, lo: int, hi: int | None) -> np.ndarray:
        return cache[lo:hi]  # the output y, samples first


class DenseStep(_Fusing):
    """``Dense`` (+ ``LeakyReLU``, or + ``Tanh`` with ``tanh=True``): ``y = act(x W^T + b)``,
    bias and activation in one pass over ``x W^T``; the cache holds ``x`` and ``y``, never
    ``x W^T``."""

    layer: Dense

    def __init__(self, layer: Module, slope: float | None = None, tanh: bool = False) -> None:
        super().__init__(layer, None if tanh else slope)
        self.tanh = tanh
        if tanh:
            self.size = 2

    def __repr__(self) -> str:
        return f"DenseStep({self.layer!r} + Tanh)" if self.tanh else super().__repr__()

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        d = self.layer
        x = d._check_input(x, 2, "(N, in_features)", {1: d.in_features})
        z = matmul(x, d.weight.T)
        if self.tanh:  # a zero bias where the layer has none: tanh(z + 0) is tanh(z)
            N, O = z.shape
            b = d.bias if d.bias is not None else xp.zeros(O, dtype=z.dtype)
            y = ops.bias_tanh(z.reshape(N, O, 1), b).reshape(N, O)
            return y, (x, y)
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
        if self.tanh:
            dz = ops.tanh_backward(check_dy(d, dy, y.shape), y)
            if param_grads and d.bias is not None:
                put_grad(d, "bias", dz.sum(axis=0), accumulate)
        elif self.slope is None:
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
        if param_grads and input_grad:  # two independent products, side by side
            gW, dx = matmul_pair(dz.T, x, dz, d.weight,
                                 None if accumulate else d._grads["weight"])
            if accumulate:
                d._grads["weight"] += gW
            return dx
        if param_grads:
            if accumulate:
                d._grads["weight"] += matmul(dz.T, x)
            else:  # the product written straight into the gradient: no zero-fill, no temporary
                matmul(dz.T, x, out=d._grads["weight"])
        return matmul(dz, d.weight) if input_grad else None

    splits = True

    def rows(self, cache: tuple, lo: int, hi: int | None) -> tuple:
        x, y = cache  # (N, in) and (N, out) or None: samples first
        return _rows(x, lo, hi), _rows(y, lo, hi)


def _whole_window(conv: Conv2d, x_shape: tuple[int, ...]) -> bool:
    """True when one unpadded window covers each whole image (an output of size 1 x 1): then
    ``im2col(x)`` is ``x.reshape(N, C*H*W)^T`` and ``col2im`` a reshape."""
    return tuple(x_shape[2:]) == tuple(conv.kernel_size) and tuple(conv.padding) == (0, 0)


class ConvStep(_Fusing):
    """``Conv2d`` (+ ``LeakyReLU``) on CNHW images: ``y2 = W2 @ im2col(x)`` as one kernel op
    (``ops.im2col_matmul``, which runs by tiles of the batch and never holds the column matrix),
    written straight into ``y``.

    Without a bias, the activation is part of that op (each tile's product goes through it while
    in cache), and a backward pass that wants one product only (the weight gradient of D's first
    layer when D trains, its input gradient when G trains through it) hands that product ``dy``
    and ``y``, which it reads through the activation's gradient (``y=``, ``slope=``): no pass
    over ``dy`` to form ``dz`` first. With a bias, bias and activation are one pass over ``y``
    (``ops.bias_leaky_relu``), and so is the backward of both (a zero bias where a whole-window
    layer has none: ``z + 0`` is ``z``, but for the sign of a zero, which the activation and its
    gradient do not see)."""

    layer: Conv2d
    layout = CNHW

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        c = self.layer
        xn = c._checked_input(nchw(x))                           # (N, C, H, W) view
        N, O, OH, OW = c.output_shape(xn.shape)
        W2 = c.weight.reshape(O, -1)
        if _whole_window(c, xn.shape):
            y = self._whole_forward(xn, W2)
        else:
            y = xp.empty((O, N, OH, OW), dtype=xn.dtype)
            fuse = self.slope is not None and c.bias is None   # the activation in the product
            ops.im2col_matmul(W2, xn, *c.kernel_size, *c.stride, *c.padding,
                              out=y.reshape(O, N * OH * OW), slope=self.slope if fuse else None)
            if fuse:
                return y, (xn, y)
        if self.slope is not None:
            b = c.bias if c.bias is not None else xp.zeros(O, dtype=y.dtype)
            ops.bias_leaky_relu(y.reshape(1, O, -1), b, self.slope)
            return y, (xn, y)
        if c.bias is not None:
            y += c.bias[:, None, None, None]
        return y, (xn, None)

    @staticmethod
    def _whole_forward(xn: np.ndarray, W2: np.ndarray) -> np.ndarray:
        """``y[o, n] = sum_{c, p} W[o, c, p] x[n, c, p]`` (one window per image): one product
        when ``x`` is stored NCHW (the plan's input), else the whole-window op on the images
        stored channels first (``ops.window_forward``)."""
        N, C = xn.shape[:2]
        O = W2.shape[0]
        if xn.flags.c_contiguous:
            y = matmul(W2, xn.reshape(N, -1).T)                  # (O, N)
        else:
            x3 = xp.ascontiguousarray(nchw(xn)).reshape(C, N, -1)
            y = ops.window_forward(W2.reshape(O, C, -1), x3)    # (O, N)
        return xp.ascontiguousarray(y).reshape(O, N, 1, 1)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        c = self.layer
        xn, y = cache
        out_shape = c.output_shape(xn.shape)
        dy = nchw(_check_grad(c, nchw(dy), out_shape))           # back to (O, N, OH, OW)
        N, O, OH, OW = out_shape
        L = OH * OW
        W2 = c.weight.reshape(O, -1)
        whole = _whole_window(c, xn.shape)
        window = (*c.kernel_size, *c.stride, *c.padding)
        if self.slope is not None and c.bias is None and not whole and param_grads != input_grad:
            # one product wanted: it reads dy through the activation's gradient itself
            dy2, y2 = dy.reshape(O, N * L), y.reshape(O, N * L)
            if param_grads:
                put_grad(c, "weight", ops.matmul_im2col_t(dy2, xn, *window, y=y2,
                                                          slope=self.slope), accumulate)
                return None
            dx = xp.empty((xn.shape[1], N, *xn.shape[2:]), dtype=xn.dtype)
            ops.matmul_col2im(W2.T, dy2, xn.shape, *window, out=nchw(dx), y=y2, slope=self.slope)
            return dx
        if self.slope is None:
            dz2 = dy.reshape(O, N * L)
            if param_grads and c.bias is not None:
                put_grad(c, "bias", dz2.sum(axis=1), accumulate)
        elif c.bias is None:  # the activation alone: no bias sums to form
            dz2 = ops.leaky_relu_backward(dy, y, self.slope).reshape(O, N * L)
        else:
            dz, db = ops.bias_leaky_relu_backward(dy.reshape(1, O, N * L), y.reshape(1, O, -1),
                                                  self.slope)
            dz2 = dz.reshape(O, N * L)
            if param_grads:
                put_grad(c, "bias", db, accumulate)
        if whole:
            return self._whole_backward(dz2, xn, W2, param_grads, input_grad, accumulate)
        if param_grads:                                          # dW2 = dy2 im2col(x)^T
            put_grad(c, "weight", ops.matmul_im2col_t(dz2, xn, *window), accumulate)
        if not input_grad:
            return None
        dx = xp.empty((xn.shape[1], N, *xn.shape[2:]), dtype=xn.dtype)
        ops.matmul_col2im(W2.T, dz2, xn.shape, *window, out=nchw(dx))  # dx = col2im(W2^T dy2)
        return dx

    def _whole_backward(self, dz2: np.ndarray, xn: np.ndarray, W2: np.ndarray,
                        param_grads: bool, input_grad: bool, accumulate: bool
                        ) -> np.ndarray | None:
        """The backward pass of :meth:`_whole_forward`: ``dW[o, c, p] = sum_n dy[o, n] x[n, c,
        p]``, ``dx[n, c, p] = sum_o dy[o, n] W[o, c, p]``."""
        c = self.layer
        N, C = xn.shape[:2]
        O = W2.shape[0]
        if xn.flags.c_contiguous:                                # the plan's input, NCHW
            if param_grads:
                put_product(c, "weight", dz2, xn.reshape(N, -1), accumulate)
            return nchw(matmul(dz2.T, W2).reshape(xn.shape)) if input_grad else None
        x3 = xp.ascontiguousarray(nchw(xn)).reshape(C, N, -1)  # (C, N, p): channels first
        if param_grads:  # dW[o, c, p] = sum_n dy[o, n] x[c, n, p]
            put_grad(c, "weight", ops.window_weight_grad(dz2, x3), accumulate)
        if not input_grad:
            return None                                          # dx[c, n, p] = sum_o dy W
        return ops.window_input_grad(dz2, W2.reshape(O, C, -1)).reshape(nchw(xn).shape)  # CNHW


class ConvTransposeStep(Step):
    """``ConvTranspose2d`` on CNHW images: ``y = col2im(W2^T @ x2)`` as one kernel op
    (``ops.matmul_col2im``, by tiles of the batch) with ``x2 (Cin, N*H*W)`` the input array itself,
    written straight into ``y``; the 1 x 1 input (each input pixel scatters one whole kernel) as
    one product."""

    layer: ConvTranspose2d
    layout = CNHW

    def _single_pixel(self, x_shape: tuple[int, ...]) -> bool:
        t = self.layer
        return (tuple(x_shape[2:]) == (1, 1) and t.padding == (0, 0)
                and t.output_padding == (0, 0))

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        t = self.layer
        xn = t._checked_input(nchw(x))
        out_shape = t.output_shape(xn.shape)
        (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
        N, Cin, H, W = xn.shape
        Cout, OH, OW = out_shape[1:]
        W2 = t.weight.reshape(Cin, -1)
        x2 = xp.ascontiguousarray(nchw(xn)).reshape(Cin, N * H * W)   # (Cin, N*H*W)
        if self._single_pixel(xn.shape):
            # y2 = x2^T @ W2 is (N, Cout*kh*kw), NCHW order: one product, one transposed copy
            y = xp.ascontiguousarray(matmul(x2.T, W2).reshape(N, Cout, kh * kw)
                                     .transpose(1, 0, 2)).reshape(Cout, N, OH, OW)
        else:  # y = col2im(W2^T x2), by tiles of the batch inside the op
            y = xp.empty((Cout, N, OH, OW), dtype=xn.dtype)
            ops.matmul_col2im(W2.T, x2, (N, Cout, OH, OW), kh, kw, sh, sw, ph, pw, out=nchw(y))
        if t.bias is not None:
            y += t.bias[:, None, None, None]
        return y, (x2, xn.shape)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        t = self.layer
        x2, x_shape = cache
        out_shape = t.output_shape(x_shape)
        dyn = _check_grad(t, nchw(dy), out_shape)                # (N, Cout, OH, OW) view
        (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
        N, Cin, H, W = x_shape
        Cout = out_shape[1]
        W2 = t.weight.reshape(Cin, -1)
        if param_grads and t.bias is not None:
            put_grad(t, "bias", nchw(dyn).reshape(Cout, -1).sum(axis=1), accumulate)
        if self._single_pixel(x_shape):
            dy2 = xp.ascontiguousarray(dyn).reshape(N, -1)        # (N, Cout*kh*kw)
            if param_grads:  # x2 (Cin, N) @ dy2: already the gradient's layout
                put_product(t, "weight", x2, dy2, accumulate)
            return matmul(W2, dy2.T).reshape(Cin, N, 1, 1) if input_grad else None
        if param_grads:                                          # dW2 = x2 im2col(dy)^T
            put_grad(t, "weight", ops.matmul_im2col_t(x2, dyn, kh, kw, sh, sw, ph, pw),
                     accumulate)
        if not input_grad:
            return None
        dx = xp.empty((Cin, N, H, W), dtype=dyn.dtype)                # dx2 = W2 im2col(dy)
        ops.im2col_matmul(W2, dyn, kh, kw, sh, sw, ph, pw, out=dx.reshape(Cin, N * H * W))
        return dx


class BatchNormActStep(_Fusing):
    """``BatchNorm`` + ``LeakyReLU``: in training, normalisation, affine map and activation are
    one kernel pass (``ops.batchnorm_leaky_relu``) that writes ``y`` once, and the backward
    kernel recomputes the activation's gradient in both of its passes instead of storing it.
    ``BatchNorm2d`` runs on CNHW images, ``(C, N*H*W)``: each channel one contiguous run."""

    layer: BatchNorm1d | BatchNorm2d

    def __init__(self, layer: Module, slope: float | None = None) -> None:
        super().__init__(layer, slope)
        self.layout = CNHW if isinstance(layer, BatchNorm2d) else NCHW

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, tuple]:
        bn = self.layer
        cnhw = self.layout == CNHW
        x = bn._check_input(nchw(x) if cnhw else x, bn._ranks, bn._layout,
                            {1: bn.num_features})                 # the layer's own order
        shape = x.shape
        if not train:  # the layer's pass, in its own order
            u, cache = bn.forward(x, train)
            y = ops.leaky_relu(u, self.slope)
            return (xp.ascontiguousarray(nchw(y)) if cnhw else y), (cache, y)
        if cnhw:  # (1, C, N*H*W): the statistics of a channel are those of one run
            x3 = xp.ascontiguousarray(nchw(x)).reshape(1, shape[1], -1)
        else:
            x3 = xp.ascontiguousarray(x.reshape(shape[0], shape[1], -1))
        n = x3.shape[0] * x3.shape[2]
        if n <= 1:
            raise ValueError(f"{bn!r}: argument 'x' expected more than 1 value per channel "
                             f"when training, got {_fmt_shape(shape)}")
        gamma, beta = bn._gamma_beta()
        y3, mean, var, inv_std = ops.batchnorm_leaky_relu(x3, gamma, beta, bn.eps, self.slope)
        bn._update_running(mean, var, n)
        y = y3.reshape(nchw(x).shape if cnhw else shape)
        return y, ((True, x3, mean, inv_std, shape), y3)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool,
                 input_grad: bool, accumulate: bool = True) -> np.ndarray | None:
        bn = self.layer
        cnhw = self.layout == CNHW
        bn_cache, y = cache
        train, x3, mean, inv_std, shape = bn_cache
        if not train:
            du = ops.leaky_relu_backward(asarray(nchw(dy) if cnhw else dy, y.dtype), y,
                                         self.slope)
            if not accumulate and param_grads:
                bn.zero_grad()
            dx = bn.backward(du, bn_cache, param_grads=param_grads, input_grad=input_grad)
            return nchw(dx) if cnhw and dx is not None else dx
        dy3 = xp.ascontiguousarray(asarray(dy, x3.dtype).reshape(x3.shape))
        gamma, _ = bn._gamma_beta()
        dx3, dgamma, dbeta = ops.batchnorm_leaky_relu_backward(
            dy3, y.reshape(x3.shape), x3, mean, inv_std, gamma, self.slope)
        if param_grads and bn.affine:
            put_grad(bn, "weight", dgamma, accumulate)
            put_grad(bn, "bias", dbeta, accumulate)
        if not input_grad:
            return None
        return dx3.reshape((shape[1], shape[0], *shape[2:]) if cnhw else shape)


__all__ = ["CNHW", "NCHW", "ActivationStep", "BatchNormActStep", "ConvStep", "ConvTransposeStep",
           "DenseStep", "LayerStep", "Step", "TanhStep", "nchw"]
