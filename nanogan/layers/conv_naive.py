"""Convolutions as explicit loops: the definitions the fast layers are checked against.

These functions are slow on purpose. Each output pixel (or, for the transposed convolution, each
input pixel) gets its own loop iteration, so the code reads like the formula. The layers in
``conv.py`` and ``conv_transpose.py`` compute the same numbers with im2col and one matrix product.
"""

from __future__ import annotations

import numpy as np

from ..backend import xp


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (value, value)


def _pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def conv2d_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                 stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0) -> np.ndarray:
    """Cross-correlation, one output pixel at a time.

    ::

        y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, c, oh*sh + i, ow*sw + j]

    Parameters
    ----------
    x : (N, C, H, W)
    w : (O, C, kh, kw)
    b : (O,) or None
    stride, padding : int or pair

    Returns
    -------
    y : (N, O, OH, OW), ``OH = (H + 2 ph - kh) // sh + 1``
    """
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, _, H, W = x.shape
    O, _, kh, kw = w.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    xpad = _pad(x, ph, pw)
    y = xp.zeros((N, O, OH, OW), dtype=np.result_type(x.dtype, w.dtype))
    for n in range(N):
        for o in range(O):
            for oh in range(OH):
                for ow in range(OW):
                    window = xpad[n, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw]
                    y[n, o, oh, ow] = (window * w[o]).sum() + (b[o] if b is not None else 0)
    return y


def conv2d_naive_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray,
                          stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_naive`, one output pixel at a time.

    Equations
    ---------
    Every output pixel ``y[n, o, oh, ow]`` read one window of ``xpad`` through ``w[o]``, so::

        dxpad[n, :, window(oh, ow)] += dy[n, o, oh, ow] * w[o]
        dw[o]                       += dy[n, o, oh, ow] * xpad[n, :, window(oh, ow)]
        db[o]                       += dy[n, o, oh, ow]

    and ``dx`` is ``dxpad`` without its padding.

    Parameters
    ----------
    dy : (N, O, OH, OW)
    x : (N, C, H, W)
    w : (O, C, kh, kw)
    stride, padding : int or pair

    Returns
    -------
    dx : (N, C, H, W), dw : (O, C, kh, kw), db : (O,)
    """
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, _, H, W = x.shape
    O, _, kh, kw = w.shape
    _, _, OH, OW = dy.shape
    xpad = _pad(x, ph, pw)
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    db = xp.zeros(O, dtype=w.dtype)
    for n in range(N):
        for o in range(O):
            for oh in range(OH):
                for ow in range(OW):
                    g = dy[n, o, oh, ow]
                    rows, cols = slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)
                    dxpad[n, :, rows, cols] += g * w[o]
                    dw[o] += g * xpad[n, :, rows, cols]
                    db[o] += g
    return dxpad[:, :, ph:ph + H, pw:pw + W], dw, db


def conv_transpose2d_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                           stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                           output_padding: int | tuple[int, int] = 0) -> np.ndarray:
    """Transposed convolution, one input pixel at a time: each scatters a weighted kernel.

    ::

        ypad[n, :, h*sh + i, w*sw + j] += x[n, c, h, w] * w[c, :, i, j]
        y = ypad[:, :, ph:ph + OH, pw:pw + OW] + b
        OH = (H - 1) sh - 2 ph + kh + oph

    Parameters
    ----------
    x : (N, Cin, H, W)
    w : (Cin, Cout, kh, kw)
    b : (Cout,) or None
    stride, padding, output_padding : int or pair

    Returns
    -------
    y : (N, Cout, OH, OW)
    """
    (sh, sw), (ph, pw), (oph, opw) = _pair(stride), _pair(padding), _pair(output_padding)
    N, Cin, H, W = x.shape
    _, Cout, kh, kw = w.shape
    OH, OW = (H - 1) * sh - 2 * ph + kh + oph, (W - 1) * sw - 2 * pw + kw + opw
    ypad = xp.zeros((N, Cout, (H - 1) * sh + kh + oph, (W - 1) * sw + kw + opw),
                    dtype=np.result_type(x.dtype, w.dtype))
    for n in range(N):
        for c in range(Cin):
            for h in range(H):
                for ww in range(W):
                    ypad[n, :, h * sh:h * sh + kh, ww * sw:ww * sw + kw] += x[n, c, h, ww] * w[c]
    y = ypad[:, :, ph:ph + OH, pw:pw + OW].copy()
    if b is not None:
        y += b[None, :, None, None]
    return y
