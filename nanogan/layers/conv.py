"""2-D convolution (PyTorch's ``nn.Conv2d``) as one matrix product over im2col columns.

A ``kh x kw`` convolution with stride ``s`` and zero padding ``p`` reads, for every output pixel,
one window of the padded input. ``im2col`` lays those windows out as the columns of a matrix, so
the whole layer is ``W.reshape(O, C*kh*kw) @ cols``; its backward pass is two more products and
``col2im``, the adjoint of ``im2col`` (see ``nanogan/_kernels/reference.py`` for the layout).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._kernels import ops
from ..backend import asarray, xp
from .base import Module, _fmt_shape, as_dtype, as_rng
from .init import uniform_fan_in

_NCHW = "(N, C, H, W)"


def _pair(value: Any, name: str, owner: str, minimum: int) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(3, 2) -> (3, 2)``; ValueError unless both entries are ints >= minimum."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        bound = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _positive(value: Any, name: str, owner: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_grad(layer: Module, dy: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``dy`` as the layer's dtype; ValueError naming the layer unless it has the output's shape."""
    dy = asarray(dy)
    if dy.shape != tuple(shape):
        raise ValueError(f"{layer!r}: argument 'dy' expected shape {_fmt_shape(tuple(shape))} "
                         f"(the forward output), got {_fmt_shape(dy.shape)}")
    return dy.astype(layer.dtype, copy=False)


class Conv2d(Module):
    """2-D cross-correlation over NCHW images, ``y = W * x + b`` (PyTorch's ``nn.Conv2d``).

    ::

        y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] * xpad[n, c, oh*sh + i, ow*sw + j]
        OH = floor((H + 2 ph - kh) / sh) + 1        OW = floor((W + 2 pw - kw) / sw) + 1

    where ``xpad`` is ``x`` with ``ph`` (``pw``) zero rows (columns) added on each side.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default 1
    padding : int or (ph, pw), default 0 (zero padding on every side)
    bias : bool, default True
    rng : numpy Generator, int seed or None, for PyTorch's default initialisation
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = in_channels * kh * kw``
    dtype : float32 (default) or float64

    Attributes
    ----------
    params["weight"] : (out_channels, in_channels, kh, kw)
    params["bias"] : (out_channels,)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, *, rng: np.random.Generator | int | None = None,
                 dtype=np.float32) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_channels = _positive(in_channels, "in_channels", name)
        self.out_channels = _positive(out_channels, "out_channels", name)
        self.kernel_size = _pair(kernel_size, "kernel_size", name, 1)
        self.stride = _pair(stride, "stride", name, 1)
        self.padding = _pair(padding, "padding", name, 0)
        self.dtype = as_dtype(dtype)
        rng = as_rng(rng)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weight = self.add_param("weight", uniform_fan_in(
            rng, (self.out_channels, self.in_channels, kh, kw), fan_in, self.dtype))
        self.bias = (self.add_param("bias", uniform_fan_in(
            rng, (self.out_channels,), fan_in, self.dtype)) if bias else None)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def output_shape(self, input_shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``(N, C, H, W) -> (N, out_channels, OH, OW)`` by the formula in the class docstring."""
        N, _, H, W = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return N, self.out_channels, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple]:
        """Convolve: ``y = (W2 @ im2col(x) + b)`` reshaped to NCHW.

        Parameters
        ----------
        x : (N, in_channels, H, W), with ``H + 2 ph >= kh`` and ``W + 2 pw >= kw``
        train : unused (the layer behaves the same in both modes)

        Returns
        -------
        y : (N, out_channels, OH, OW), C-contiguous
        cache : ``(cols, x_shape)``, ``cols`` of shape (in_channels*kh*kw, N*OH*OW)
        """
        x = self._checked_input(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        N, O, OH, OW = self.output_shape(x.shape)
        W2 = self.weight.reshape(O, -1)                           # (O, C*kh*kw)
        cols = ops.im2col(x, kh, kw, sh, sw, ph, pw)              # (C*kh*kw, N*OH*OW)
        y2 = W2 @ cols                                            # (O, N*OH*OW)
        y = xp.ascontiguousarray(y2.reshape(O, N, OH, OW).transpose(1, 0, 2, 3))
        if self.bias is not None:
            y += self.bias[None, :, None, None]
        return y, (cols, x.shape)

    def _checked_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` checked (rank, channels, padded size at least the kernel), in the layer dtype."""
        x = self._check_input(x, 4, _NCHW, {1: self.in_channels})
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ValueError(f"{self!r}: argument 'x' expected shape {_NCHW} with padded size "
                             f"(H + 2*{ph}, W + 2*{pw}) at least the kernel ({kh}, {kw}), "
                             f"got {_fmt_shape(x.shape)}")
        return x

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Gradients of the convolution, with ``dy2 = dy`` laid out as (O, N*OH*OW).

        Equations
        ---------
        ::

            W2 = W.reshape(O, C*kh*kw)
            dL/dW += (dy2 @ cols^T).reshape(O, C, kh, kw)    (O, C*kh*kw) = (O, M) @ (M, C*kh*kw)
            dL/db += sum over n, oh, ow of dy                 (O,)
            dL/dx  = col2im(W2^T @ dy2)                       (C*kh*kw, M) -> (N, C, H, W)

        with ``M = N*OH*OW``; ``col2im`` sums the gradient of every window back onto the input
        pixels it read, and drops what fell on the padding.

        Parameters
        ----------
        dy : (N, out_channels, OH, OW)
        cache : ``(cols, x_shape)`` from :meth:`forward`
        param_grads : if False, only ``dL/dx`` is computed
        input_grad : if False, ``dL/dx`` is not computed and None is returned

        Returns
        -------
        dx : (N, in_channels, H, W), or None
        """
        cols, x_shape = cache
        dy = _check_grad(self, dy, self.output_shape(x_shape))
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        O = self.out_channels
        W2 = self.weight.reshape(O, -1)                           # (O, C*kh*kw)
        dy2 = dy.transpose(1, 0, 2, 3).reshape(O, -1)             # (O, N*OH*OW)
        if param_grads:
            self._grads["weight"] += (dy2 @ cols.T).reshape(self.weight.shape)
            if self.bias is not None:
                self._grads["bias"] += dy.sum(axis=(0, 2, 3))
        if not input_grad:
            return None
        dcols = W2.T @ dy2                                        # (C*kh*kw, N*OH*OW)
        return ops.col2im(dcols, tuple(x_shape), kh, kw, sh, sw, ph, pw)

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Forward-mode derivative of the convolution along ``x_dot`` (``W``, ``b`` fixed).

        Equations
        ---------
        ::

            cols_dot = im2col(x_dot)                         (C*kh*kw, M)
            y_dot    = (W2 @ cols_dot) as NCHW               (N, O, OH, OW)

        The layer is linear in ``x``: ``y_dot`` is the convolution of ``x_dot`` without the bias.

        Parameters
        ----------
        x_dot : (N, in_channels, H, W), the direction ``x`` moves in
        cache : ``(cols, x_shape)`` from :meth:`forward`

        Returns
        -------
        y_dot : (N, out_channels, OH, OW); tcache : ``cols_dot``, (in_channels*kh*kw, M)
        """
        x_shape = tuple(cache[1])
        x_dot = self._check_input(x_dot, 4, _NCHW, {1: self.in_channels}, "x_dot")
        if x_dot.shape != x_shape:
            raise ValueError(f"{self!r}: argument 'x_dot' expected shape {_fmt_shape(x_shape)} "
                             f"(the forward input), got {_fmt_shape(x_dot.shape)}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        N, O, OH, OW = self.output_shape(x_shape)
        cols_dot = ops.im2col(x_dot, kh, kw, sh, sw, ph, pw)
        y2 = self.weight.reshape(O, -1) @ cols_dot
        return xp.ascontiguousarray(y2.reshape(O, N, OH, OW).transpose(1, 0, 2, 3)), cols_dot

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: tuple,
                     tcache: np.ndarray, *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        With ``dy2``, ``dy2_dot`` laid out as (O, M), ``M = N*OH*OW``, the backward pass is
        bilinear in ``(dy2, cols)``, so its derivative is the product rule.

        Equations
        ---------
        ::

            dx      = col2im(W2^T @ dy2)                           (N, C, H, W)
            dx_dot  = col2im(W2^T @ dy2_dot)                       (N, C, H, W)
            dW_dot += (dy2_dot @ cols^T + dy2 @ cols_dot^T)
                      .reshape(O, C, kh, kw)                       (O, C, kh, kw)
            db_dot += sum over n, oh, ow of dy_dot                 (O,)

        ``dW_dot`` and ``db_dot`` (the second-order parameter gradients) are ADDED into
        :attr:`grads`.

        Parameters
        ----------
        dy, dy_dot : (N, out_channels, OH, OW)
        cache : ``(cols, x_shape)`` from :meth:`forward`
        tcache : ``cols_dot`` from :meth:`jvp`
        param_grads : if False, nothing is added into :attr:`grads`
        input_grad : if False, ``dx`` and ``dx_dot`` are not computed (None is returned)

        Returns
        -------
        dx, dx_dot : (N, in_channels, H, W) each, or None, None
        """
        cols, x_shape = cache
        cols_dot = tcache
        out_shape = self.output_shape(x_shape)
        dy = _check_grad(self, dy, out_shape)
        dy_dot = _check_grad(self, dy_dot, out_shape)
        O = self.out_channels
        dy2 = dy.transpose(1, 0, 2, 3).reshape(O, -1)             # (O, M)
        dy2_dot = dy_dot.transpose(1, 0, 2, 3).reshape(O, -1)     # (O, M)
        if param_grads:
            dW = dy2_dot @ cols.T + dy2 @ cols_dot.T
            self._grads["weight"] += dW.reshape(self.weight.shape)
            if self.bias is not None:
                self._grads["bias"] += dy_dot.sum(axis=(0, 2, 3))
        if not input_grad:
            return None, None
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        W2 = self.weight.reshape(O, -1)
        x_shape = tuple(x_shape)
        dx = ops.col2im(W2.T @ dy2, x_shape, kh, kw, sh, sw, ph, pw)
        dx_dot = ops.col2im(W2.T @ dy2_dot, x_shape, kh, kw, sh, sw, ph, pw)
        return dx, dx_dot
