"""2-D transposed convolution (PyTorch's ``nn.ConvTranspose2d``), the adjoint of ``Conv2d``.

A convolution is ``y = W2 @ im2col(x)``; its transpose maps the other way, ``x -> col2im(W2^T @
x)``: every input pixel scatters a ``kh x kw`` patch, weighted by the kernel, into the output.
So the layer is built on the same two kernels as :class:`~nanogan.layers.conv.Conv2d` with their
roles swapped: ``col2im`` in the forward pass, ``im2col`` in the backward pass.
"""

from __future__ import annotations

import numpy as np

from .._kernels import ops
from ..backend import xp
from .base import Module, _fmt_shape, as_dtype, as_rng
from .conv import _check_grad, _pair, _positive
from .init import uniform_fan_in

_NCHW = "(N, C, H, W)"


class ConvTranspose2d(Module):
    """Transposed 2-D convolution over NCHW images (PyTorch's ``nn.ConvTranspose2d``).

    ::

        ypad[n, o, h*sh + i, w*sw + j] += sum_c x[n, c, h, w] * W[c, o, i, j]
        y = ypad cropped by (ph, pw) on each side, plus b[o]
        OH = (H - 1) sh - 2 ph + kh + oph          OW = (W - 1) sw - 2 pw + kw + opw

    It is the gradient of ``Conv2d(out_channels, in_channels, kernel_size, stride, padding)``
    with respect to its input; ``output_padding`` picks among the output sizes that such a
    convolution maps to the same ``(H, W)``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default 1
    padding : int or (ph, pw), default 0 (rows/columns cropped from each side of the output)
    output_padding : int or (oph, opw), default 0, each smaller than its stride
    bias : bool, default True
    rng : numpy Generator, int seed or None, for PyTorch's default initialisation
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = out_channels * kh * kw``
        (PyTorch reads it from dimension 1 of the weight)
    dtype : float32 (default) or float64

    Attributes
    ----------
    params["weight"] : (in_channels, out_channels, kh, kw)
    params["bias"] : (out_channels,)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, bias: bool = True, *,
                 rng: np.random.Generator | int | None = None, dtype=np.float32) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_channels = _positive(in_channels, "in_channels", name)
        self.out_channels = _positive(out_channels, "out_channels", name)
        self.kernel_size = _pair(kernel_size, "kernel_size", name, 1)
        self.stride = _pair(stride, "stride", name, 1)
        self.padding = _pair(padding, "padding", name, 0)
        self.output_padding = _pair(output_padding, "output_padding", name, 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"{name}: output_padding must be smaller than stride, got "
                             f"output_padding={self.output_padding}, stride={self.stride}")
        self.dtype = as_dtype(dtype)
        rng = as_rng(rng)
        kh, kw = self.kernel_size
        fan_in = self.out_channels * kh * kw
        self.weight = self.add_param("weight", uniform_fan_in(
            rng, (self.in_channels, self.out_channels, kh, kw), fan_in, self.dtype))
        self.bias = (self.add_param("bias", uniform_fan_in(
            rng, (self.out_channels,), fan_in, self.dtype)) if bias else None)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def output_shape(self, input_shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``(N, C, H, W) -> (N, out_channels, OH, OW)`` by the formula in the class docstring."""
        N, _, H, W = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        (ph, pw), (oph, opw) = self.padding, self.output_padding
        return (N, self.out_channels, (H - 1) * sh - 2 * ph + kh + oph,
                (W - 1) * sw - 2 * pw + kw + opw)

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple]:
        """Scatter every input pixel through the kernel: ``y = col2im(W2^T @ x2) + b``.

        Parameters
        ----------
        x : (N, in_channels, H, W), with a positive output size ``OH, OW``
        train : unused (the layer behaves the same in both modes)

        Returns
        -------
        y : (N, out_channels, OH, OW), C-contiguous
        cache : ``(x2, x_shape)``, ``x2`` = ``x`` laid out as (in_channels, N*H*W)
        """
        x = self._checked_input(x)
        out_shape = self.output_shape(x.shape)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Cin = self.in_channels
        W2 = self.weight.reshape(Cin, -1)                         # (Cin, Cout*kh*kw)
        x2 = x.transpose(1, 0, 2, 3).reshape(Cin, -1)             # (Cin, N*H*W)
        cols = W2.T @ x2                                          # (Cout*kh*kw, N*H*W)
        y = xp.ascontiguousarray(ops.col2im(cols, out_shape, kh, kw, sh, sw, ph, pw))
        if self.bias is not None:
            y += self.bias[None, :, None, None]
        return y, (x2, x.shape)

    def _checked_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` validated (rank, channels, a positive output size) in the layer's dtype."""
        x = self._check_input(x, 4, _NCHW, {1: self.in_channels})
        out_shape = self.output_shape(x.shape)
        if out_shape[2] < 1 or out_shape[3] < 1:
            raise ValueError(f"{self!r}: argument 'x' of shape {_fmt_shape(x.shape)} gives a "
                             f"non-positive output size {_fmt_shape(out_shape[2:])}; expected "
                             f"shape {_NCHW} with (H - 1)*stride - 2*padding + kernel_size "
                             "+ output_padding >= 1")
        return x

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Gradients of the transposed convolution: ``im2col`` reads back what ``col2im`` wrote.

        Equations
        ---------
        ::

            W2 = W.reshape(Cin, Cout*kh*kw)          dcols = im2col(dy)   (Cout*kh*kw, N*H*W)
            dL/dx  = W2 @ dcols                      (Cin, N*H*W) -> (N, Cin, H, W)
            dL/dW += (x2 @ dcols^T).reshape(W.shape) (Cin, Cout*kh*kw)
            dL/db += sum over n, oh, ow of dy        (Cout,)

        Parameters
        ----------
        dy : (N, out_channels, OH, OW)
        cache : ``(x2, x_shape)`` from :meth:`forward`
        param_grads : if False, only ``dL/dx`` is computed
        input_grad : if False, ``dL/dx`` is not computed and None is returned

        Returns
        -------
        dx : (N, in_channels, H, W), or None
        """
        x2, x_shape = cache
        dy = _check_grad(self, dy, self.output_shape(x_shape))
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        N, Cin, H, W = x_shape
        W2 = self.weight.reshape(Cin, -1)                         # (Cin, Cout*kh*kw)
        dcols = ops.im2col(dy, kh, kw, sh, sw, ph, pw)            # (Cout*kh*kw, N*H*W)
        if param_grads:
            self._grads["weight"] += (x2 @ dcols.T).reshape(self.weight.shape)
            if self.bias is not None:
                self._grads["bias"] += dy.sum(axis=(0, 2, 3))
        if not input_grad:
            return None
        dx2 = W2 @ dcols                                          # (Cin, N*H*W)
        return xp.ascontiguousarray(dx2.reshape(Cin, N, H, W).transpose(1, 0, 2, 3))

    # ------------------------------------------------------------------ second order
    def _nchw(self, a2: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
        """(Cin, N*H*W) back to (N, Cin, H, W), C-contiguous."""
        N, Cin, H, W = x_shape
        return xp.ascontiguousarray(a2.reshape(Cin, N, H, W).transpose(1, 0, 2, 3))

    def jvp(self, x_dot: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Forward-mode derivative along ``x_dot`` (``W``, ``b`` fixed).

        Equations
        ---------
        ::

            y_dot = col2im(W2^T @ x2_dot)        (N, Cout, OH, OW)

        The layer is linear in ``x``: ``y_dot`` is the transposed convolution of ``x_dot``
        without the bias.

        Parameters
        ----------
        x_dot : (N, in_channels, H, W), the direction ``x`` moves in
        cache : ``(x2, x_shape)`` from :meth:`forward`

        Returns
        -------
        y_dot : (N, out_channels, OH, OW); tcache : ``x2_dot``, (in_channels, N*H*W)
        """
        x_shape = tuple(cache[1])
        x_dot = self._check_input(x_dot, 4, _NCHW, {1: self.in_channels}, "x_dot")
        if x_dot.shape != x_shape:
            raise ValueError(f"{self!r}: argument 'x_dot' expected shape {_fmt_shape(x_shape)} "
                             f"(the forward input), got {_fmt_shape(x_dot.shape)}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Cin = self.in_channels
        x2_dot = x_dot.transpose(1, 0, 2, 3).reshape(Cin, -1)     # (Cin, N*H*W)
        cols_dot = self.weight.reshape(Cin, -1).T @ x2_dot             # (Cout*kh*kw, N*H*W)
        y_dot = ops.col2im(cols_dot, self.output_shape(x_shape), kh, kw, sh, sw, ph, pw)
        return xp.ascontiguousarray(y_dot), x2_dot

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: tuple,
                     tcache: np.ndarray, *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        The backward pass is bilinear in ``(dcols, x2)``, with ``dcols = im2col(dy)`` linear in
        ``dy``: the product rule.

        Equations
        ---------
        ::

            dcols, dcols_dot = im2col(dy), im2col(dy_dot)              (Cout*kh*kw, N*H*W)
            dx      = W2 @ dcols,   dx_dot = W2 @ dcols_dot            (Cin, N*H*W) as NCHW
            dW_dot += (x2_dot @ dcols^T + x2 @ dcols_dot^T).reshape(W.shape)
            db_dot += sum over n, oh, ow of dy_dot                     (Cout,)

        ``dW_dot`` and ``db_dot`` (the second-order parameter gradients) are ADDED into
        :attr:`grads`.

        Parameters
        ----------
        dy, dy_dot : (N, out_channels, OH, OW)
        cache : ``(x2, x_shape)`` from :meth:`forward`; tcache : ``x2_dot`` from :meth:`jvp`
        param_grads : if False, nothing is added into :attr:`grads`
        input_grad : if False, ``dx`` and ``dx_dot`` are not computed (None is returned)

        Returns
        -------
        dx, dx_dot : (N, in_channels, H, W) each, or None, None
        """
        x2, x_shape = cache
        x2_dot = tcache
        out_shape = self.output_shape(x_shape)
        dy = _check_grad(self, dy, out_shape)
        dy_dot = _check_grad(self, dy_dot, out_shape)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        dcols = ops.im2col(dy, kh, kw, sh, sw, ph, pw)             # (Cout*kh*kw, N*H*W)
        dcols_dot = ops.im2col(dy_dot, kh, kw, sh, sw, ph, pw)
        if param_grads:
            dW = x2_dot @ dcols.T + x2 @ dcols_dot.T
            self._grads["weight"] += dW.reshape(self.weight.shape)
            if self.bias is not None:
                self._grads["bias"] += dy_dot.sum(axis=(0, 2, 3))
        if not input_grad:
            return None, None
        W2 = self.weight.reshape(self.in_channels, -1)
        return self._nchw(W2 @ dcols, x_shape), self._nchw(W2 @ dcols_dot, x_shape)
