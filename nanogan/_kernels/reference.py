"""Reference kernels: readable NumPy, the version a learner reads.

Every compiled kernel set (``numba``, ``cython``) offers exactly these op names with exactly these
semantics; the tests hold each of them to this file. Matrix products are not kernels: they go to
BLAS (``@``; ``gemm`` at the end says how the compiled sets share a large one among their
threads). Kernels do the data movement (im2col/col2im), the elementwise work and the fusion.

Conventions
-----------
im2col layout: for an input ``x`` of shape ``(N, C, H, W)`` and a ``kh x kw`` window with stride
``(sh, sw)`` and zero padding ``(ph, pw)``::

    OH = (H + 2 ph - kh) // sh + 1          OW = (W + 2 pw - kw) // sw + 1
    cols[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = xpad[n, c, oh*sh + i, ow*sw + j]

so ``cols`` has shape ``(C*kh*kw, N*OH*OW)`` and a convolution is one matrix product
``W.reshape(O, C*kh*kw) @ cols``. ``col2im`` is the adjoint (transpose) of ``im2col``: it scatters
and ADDS each column entry back to the input pixel it was read from.
"""

from __future__ import annotations

import math

import numpy as np

NAME = "reference"


def conv_output_size(size: int, k: int, stride: int, pad: int) -> int:
    """``out = (size + 2 pad - k) // stride + 1``."""
    return (size + 2 * pad - k) // stride + 1


# ---------------------------------------------------------------------------- im2col / col2im
def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    """Unfold sliding windows of ``x`` into columns.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kh, kw : window size; sh, sw : stride; ph, pw : zero padding

    Returns
    -------
    cols : ndarray, shape (C*kh*kw, N*OH*OW), C-contiguous, dtype of ``x``
    """
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    cols = np.empty((C, kh, kw, N, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output position (oh, ow) reads the input pixel (oh*sh + i, ow*sw + j)
            patch = xp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw]
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * OH * OW)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int,
           sh: int, sw: int, ph: int, pw: int, out: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of :func:`im2col`: fold columns back, summing overlapping windows.

    Parameters
    ----------
    cols : ndarray, shape (C*kh*kw, N*OH*OW)
    x_shape : (N, C, H, W), the shape of the image the columns were (or would be) read from
    out : optional ndarray of shape ``x_shape`` (any strides) to write the result into

    Returns
    -------
    x : ndarray, shape (N, C, H, W), with ``x[n, c, h, w] = sum of cols entries read from it``
        (``out`` when given)
    """
    if out is not None:
        if tuple(out.shape) != tuple(x_shape):
            raise ValueError(f"col2im: argument 'out' expected shape {tuple(x_shape)}, got "
                             f"{tuple(out.shape)}")
        out[...] = col2im(cols, x_shape, kh, kw, sh, sw, ph, pw)
        return out
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
    cols6 = cols.reshape(C, kh, kw, N, OH, OW)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw] += \
                cols6[:, i, j].transpose(1, 0, 2, 3)
    return xp[:, :, ph:ph + H, pw:pw + W] if (ph or pw) else xp


# ---------------------------------------------------------------------------- convolution products
# A convolution (and a transposed one) is three products with the column matrix of its input:
#
#     forward          y2 = W2 @ im2col(x)                   im2col_matmul(W2, x, ...)
#     input gradient   dx = col2im(W2^T @ dy2)               matmul_col2im(W2.T, dy2, x.shape, ...)
#     weight gradient  dW2 = dy2 @ im2col(x)^T               matmul_im2col_t(dy2, x, ...)
#
# (W2 = W.reshape(O, C*kh*kw), y2 = y as (O, N*OH*OW); a transposed convolution runs the same three
# with the roles of x and y exchanged). As ops, a kernel set may compute them without ever holding
# the whole column matrix: the compiled sets unfold one tile of images at a time into a buffer
# that stays in the cache and run the tile's product from there.
def expect_shape(op: str, name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    """Refuse an argument of the wrong shape, naming the op, the argument and both shapes."""
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{op}: argument {name!r} expected shape {tuple(shape)}, got "
                         f"{tuple(arr.shape)}")


def expect_same_length(op: str, **lists: list) -> None:
    """Refuse lists of different lengths, naming the op and each list's length."""
    if len({len(v) for v in lists.values()}) > 1:
        got = ", ".join(f"{k} {len(v)}" for k, v in lists.items())
        raise ValueError(f"{op}: the lists {', '.join(lists)} must be of one length, got {got}")


def _conv_sizes(x_shape: tuple[int, ...], kh: int, kw: int, sh: int, sw: int, ph: int,
                pw: int) -> tuple[int, int]:
    """``(C*kh*kw, N*OH*OW)``: the shape of the column matrix of an image of shape ``x_shape``."""
    N, C, H, W = x_shape
    return C * kh * kw, N * conv_output_size(H, kh, sh, ph) * conv_output_size(W, kw, sw, pw)


def through_leaky(op: str, d: np.ndarray, y: np.ndarray | None,
                  slope: float | None) -> np.ndarray:
    """The operand ``d`` of a product taken first through a leaky ReLU's gradient from that
    activation's output ``y`` (:func:`leaky_relu_backward`), or ``d`` itself when ``y`` is None:
    the products below fuse a layer's activation gradient this way (the kernel sets value by
    value as they read ``d``)."""
    if y is None:
        return d
    check_leaky(op, d, y, slope)
    return leaky_relu_backward(d, y, slope)


def check_leaky(op: str, d: np.ndarray, y: np.ndarray, slope: float | None) -> None:
    """The checks of :func:`through_leaky`: ``y`` of ``d``'s shape, and a ``slope``."""
    if slope is None:
        raise ValueError(f"{op}: argument 'slope' is needed with 'y' (the leaky ReLU's output)")
    expect_shape(op, "y", y, d.shape)


def im2col_matmul(a: np.ndarray, x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int,
                  pw: int, out: np.ndarray | None = None,
                  slope: float | None = None) -> np.ndarray:
    """``a @ im2col(x)``: a convolution's output, channels first; with ``slope``, the leaky
    ReLU after it too.

    Parameters
    ----------
    a : ndarray, shape (M, C*kh*kw)
    x : ndarray, shape (N, C, H, W)
    kh, kw, sh, sw, ph, pw : the window, as in :func:`im2col`
    out : optional ndarray of shape (M, N*OH*OW) to write the result into
    slope : optional float; when given, the result is ``leaky_relu(a @ im2col(x), slope)``

    Returns
    -------
    y2 : ndarray, shape (M, N*OH*OW) (``out`` when given)

    Equations
    ---------
    ``z2[m, (n*OH + oh)*OW + ow] = sum_{c, i, j} a[m, (c*kh + i)*kw + j] xpad[n, c, oh*sh + i,
    ow*sw + j]``; ``y2 = z2``, or with ``slope``: ``y2 = z2 if z2 > 0 else slope * z2``
    """
    K, NL = _conv_sizes(x.shape, kh, kw, sh, sw, ph, pw)
    expect_shape("im2col_matmul", "a", a, (a.shape[0], K))
    if out is not None:
        expect_shape("im2col_matmul", "out", out, (a.shape[0], NL))
    y2 = a @ im2col(x, kh, kw, sh, sw, ph, pw)
    if slope is not None:
        y2 = leaky_relu(y2, slope)
    if out is None:
        return y2
    out[...] = y2
    return out


def matmul_col2im(a: np.ndarray, b: np.ndarray, x_shape: tuple[int, int, int, int], kh: int,
                  kw: int, sh: int, sw: int, ph: int, pw: int, out: np.ndarray | None = None,
                  y: np.ndarray | None = None, slope: float | None = None) -> np.ndarray:
    """``col2im(a @ b)``: a convolution's input gradient (``a = W2^T``, ``b = dy2``), or a
    transposed convolution's output; with ``y`` and ``slope``, ``b`` is first taken through the
    gradient of the leaky ReLU whose output is ``y`` (a convolution with its activation: ``b`` is
    the gradient at the activation's output).

    Parameters
    ----------
    a : ndarray, shape (C*kh*kw, M)
    b : ndarray, shape (M, N*OH*OW)
    x_shape : (N, C, H, W), the image the columns fold into
    kh, kw, sh, sw, ph, pw : the window, as in :func:`im2col`
    out : optional ndarray of shape ``x_shape`` (any strides) to write the result into
    y : optional ndarray, shape (M, N*OH*OW), the leaky ReLU's output
    slope : float, the leaky ReLU's negative slope (needed with ``y``)

    Returns
    -------
    x : ndarray, shape (N, C, H, W) (``out`` when given)

    Equations
    ---------
    ``x = col2im(a @ d)`` with ``d = b``, or with ``y``: ``d = b if y > 0 else slope * b``
    """
    K, NL = _conv_sizes(x_shape, kh, kw, sh, sw, ph, pw)
    expect_shape("matmul_col2im", "a", a, (K, a.shape[1]))
    expect_shape("matmul_col2im", "b", b, (a.shape[1], NL))
    if out is not None:
        expect_shape("matmul_col2im", "out", out, x_shape)
    b = through_leaky("matmul_col2im", b, y, slope)
    return col2im(a @ b, x_shape, kh, kw, sh, sw, ph, pw, out)


def matmul_im2col_t(a: np.ndarray, x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int,
                    pw: int, y: np.ndarray | None = None,
                    slope: float | None = None) -> np.ndarray:
    """``a @ im2col(x)^T``: a convolution's weight gradient (``a = dy2``); with ``y`` and
    ``slope``, ``a`` is first taken through the gradient of the leaky ReLU whose output is ``y``,
    as in :func:`matmul_col2im`.

    Parameters
    ----------
    a : ndarray, shape (M, N*OH*OW)
    x : ndarray, shape (N, C, H, W)
    kh, kw, sh, sw, ph, pw : the window, as in :func:`im2col`
    y : optional ndarray, shape (M, N*OH*OW), the leaky ReLU's output
    slope : float, the leaky ReLU's negative slope (needed with ``y``)

    Returns
    -------
    g : ndarray, shape (M, C*kh*kw); it may be a transposed view

    Equations
    ---------
    ``g[m, (c*kh + i)*kw + j] = sum_{n, oh, ow} d[m, (n*OH + oh)*OW + ow] xpad[n, c, oh*sh + i,
    ow*sw + j]`` with ``d = a``, or with ``y``: ``d = a if y > 0 else slope * a``
    """
    expect_shape("matmul_im2col_t", "a", a, (a.shape[0], _conv_sizes(x.shape, kh, kw, sh, sw,
                                                                      ph, pw)[1]))
    a = through_leaky("matmul_im2col_t", a, y, slope)
    return a @ im2col(x, kh, kw, sh, sw, ph, pw).T


# ---------------------------------------------------------------------------- whole-window products
# A convolution whose unpadded window covers each whole image (an output of size 1 x 1, as a
# DCGAN discriminator's last layer) has no column matrix to form: each output is one dot product
# of the weight with the image. On images stored channels first, ``x (C, N, P)`` (P = H*W, the
# plans' CNHW layout), its three products are these.
def window_forward(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The forward pass of a whole-window convolution on images stored channels first.

    Parameters
    ----------
    w : ndarray, shape (O, C, P), the weight (P = kh*kw = H*W)
    x : ndarray, shape (C, N, P), the images

    Returns
    -------
    y : ndarray, shape (O, N)

    Equations
    ---------
    ``y[o, n] = sum_{c, p} w[o, c, p] x[c, n, p]``
    """
    _, C, P = w.shape
    expect_shape("window_forward", "x", x, (C, x.shape[1], P))
    return (w.transpose(1, 0, 2) @ x.transpose(0, 2, 1)).sum(axis=0)   # sum_c (O, P) @ (P, N)


def window_weight_grad(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The weight gradient of :func:`window_forward`.

    Parameters
    ----------
    dy : ndarray, shape (O, N)
    x : ndarray, shape (C, N, P)

    Returns
    -------
    dw : ndarray, shape (O, C, P); it may be a transposed view

    Equations
    ---------
    ``dw[o, c, p] = sum_n dy[o, n] x[c, n, p]``
    """
    expect_shape("window_weight_grad", "dy", dy, (dy.shape[0], x.shape[1]))
    return (dy[None] @ x).transpose(1, 0, 2)                           # per c: (O, N) @ (N, P)


def window_input_grad(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The input gradient of :func:`window_forward`.

    Parameters
    ----------
    dy : ndarray, shape (O, N)
    w : ndarray, shape (O, C, P)

    Returns
    -------
    dx : ndarray, shape (C, N, P)

    Equations
    ---------
    ``dx[c, n, p] = sum_o dy[o, n] w[o, c, p]``
    """
    expect_shape("window_input_grad", "dy", dy, (w.shape[0], dy.shape[1]))
    return dy.T[None] @ w.transpose(1, 0, 2)                           # per c: (N, O) @ (O, P)


# ---------------------------------------------------------------------------- activations
def leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    """``y = x if x > 0 else slope * x`` (``slope = 0`` is ReLU)."""
    return np.where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_backward(dy: np.ndarray, x: np.ndarray, slope: float) -> np.ndarray:
    """``dx = dy if x > 0 else slope * dy``."""
    return np.where(x > 0, dy, dy * dy.dtype.type(slope))


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy * (1 - y^2)``, the gradient of ``y = tanh(x)`` from its output."""
    return dy * (1 - y * y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable logistic ``1 / (1 + exp(-x))``: never exponentiates a positive number."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus(x: np.ndarray) -> np.ndarray:
    """Stable ``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``; finite for any finite x."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def bias_leaky_relu(z: np.ndarray, b: np.ndarray, slope: float) -> np.ndarray:
    """Fused bias and activation, IN PLACE: ``z = leaky_relu(z + b[c], slope)``.

    Parameters
    ----------
    z : ndarray, shape (N, C, M), C-contiguous; overwritten with the result
    b : ndarray, shape (C,), added to every value of channel ``c``
    slope : float >= 0, the negative slope (0 is ReLU)

    Returns
    -------
    y : ``z`` itself, ``y = u if u > 0 else slope * u`` with ``u = z + b[None, :, None]``
    """
    z += b[None, :, None]
    np.multiply(z, np.where(z > 0, z.dtype.type(1), z.dtype.type(slope)), out=z)
    return z


def bias_tanh(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fused bias and ``tanh``, IN PLACE: ``z = tanh(z + b[c])`` (a layer's output and the
    ``Tanh`` after it; the backward pass is :func:`tanh_backward` on the output, then the bias
    sum).

    Parameters
    ----------
    z : ndarray, shape (N, C, M), C-contiguous; overwritten with the result
    b : ndarray, shape (C,), added to every value of channel ``c``

    Returns
    -------
    y : ``z`` itself, ``y = tanh(z + b[None, :, None])``
    """
    z += b[None, :, None]
    np.tanh(z, out=z)
    return z


def bias_leaky_relu_backward(dy: np.ndarray, y: np.ndarray, slope: float
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Backward of :func:`bias_leaky_relu` from its OUTPUT ``y`` (for ``slope >= 0``,
    ``y > 0`` exactly where the pre-activation ``u > 0``).

    Equations (per channel, sums over the batch and ``M`` axes)::

        du = dy if y > 0 else slope * dy             (N, C, M)
        db = sum du                                  (C,)

    Returns ``du (N, C, M)`` and ``db (C,)``.
    """
    du = leaky_relu_backward(dy, y, slope)
    return du, du.sum(axis=(0, 2))


# ---------------------------------------------------------------------------- batch norm
def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode batch normalisation over axes 0 and 2.

    Parameters
    ----------
    x : ndarray, shape (N, C, M)   (M = H*W for images, 1 for features)
    gamma, beta : ndarray, shape (C,)

    Returns
    -------
    y : (N, C, M), ``gamma * (x - mean) * inv_std + beta``
    mean : (C,), var : (C,) biased batch variance, inv_std : (C,) ``1 / sqrt(var + eps)``
    """
    mean = x.mean(axis=(0, 2))
    xc = x - mean[None, :, None]
    var = (xc * xc).mean(axis=(0, 2))
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    y = xc * (gamma * inv_std)[None, :, None] + beta[None, :, None]
    return y, mean, var, inv_std


def batchnorm_backward(dy: np.ndarray, x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                       gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`batchnorm_forward` with ``m = N*M`` values per channel.

    Equations (per channel, sums over the batch and spatial axes)::

        xhat   = (x - mean) * inv_std
        dbeta  = sum dy
        dgamma = sum dy * xhat
        dx     = gamma * inv_std / m * (m * dy - dbeta - xhat * dgamma)

    Returns ``dx (N, C, M)``, ``dgamma (C,)``, ``dbeta (C,)``.
    """
    m = x.shape[0] * x.shape[2]
    xhat = (x - mean[None, :, None]) * inv_std[None, :, None]
    dbeta = dy.sum(axis=(0, 2))
    dgamma = (dy * xhat).sum(axis=(0, 2))
    dx = (gamma * inv_std / m)[None, :, None] * (
        m * dy - dbeta[None, :, None] - xhat * dgamma[None, :, None])
    return dx, dgamma, dbeta


def batchnorm_leaky_relu(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
                         slope: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation followed by a leaky ReLU, ``y = leaky_relu(bn(x), slope)``.

    Returns ``y (N, C, M)`` and the statistics ``mean, var, inv_std (C,)`` of
    :func:`batchnorm_forward`.
    """
    u, mean, var, inv_std = batchnorm_forward(x, gamma, beta, eps)
    return leaky_relu(u, slope), mean, var, inv_std


def batchnorm_leaky_relu_backward(dy: np.ndarray, y: np.ndarray, x: np.ndarray,
                                  mean: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray,
                                  slope: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`batchnorm_leaky_relu` from its output ``y`` (``slope >= 0``).

    Equations::

        du = dy if y > 0 else slope * dy          (the activation's backward)
        dx, dgamma, dbeta = batchnorm_backward(du, x, mean, inv_std, gamma)

    Returns ``dx (N, C, M)``, ``dgamma (C,)``, ``dbeta (C,)``.
    """
    return batchnorm_backward(leaky_relu_backward(dy, y, slope), x, mean, inv_std, gamma)


# ---------------------------------------------------------------------------- loss
def bce_with_logits(s: np.ndarray, t: float) -> tuple[float, np.ndarray]:
    """Stable binary cross-entropy on logits ``s`` against one target ``t`` in [0, 1]: the mean
    value and its gradient.

    Equations (``N`` = number of elements of ``s``)::

        value = mean(t softplus(-s) + (1 - t) softplus(s))        (float, summed in float64)
        grad  = ((1 - t) sigmoid(s) - t sigmoid(-s)) / N          (shape and dtype of s)

    (``-log sigma(s) = softplus(-s)`` and ``-log(1 - sigma(s)) = softplus(s)``; for ``t = 1`` the
    gradient is ``-sigmoid(-s) / N``, never the cancelling ``(sigmoid(s) - 1) / N``.)
    """
    n = s.dtype.type(s.size)
    per = np.float64(t) * softplus(-s) + np.float64(1 - t) * softplus(s)
    if t == 1:
        grad = -sigmoid(-s) / n
    elif t == 0:
        grad = sigmoid(s) / n
    else:
        grad = ((1 - t) * sigmoid(s) - t * sigmoid(-s)).astype(s.dtype) / n
    return float(np.mean(per, dtype=np.float64)), grad


# ---------------------------------------------------------------------------- optimizer updates
def sgd_update(p: np.ndarray, g: np.ndarray, buf: np.ndarray, lr: float, momentum: float,
               dampening: float, nesterov: bool, weight_decay: float, first: bool) -> None:
    """PyTorch's SGD, in place on ``p`` and the momentum buffer ``buf``::

        g = g + wd * p
        buf = g                              (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        d = g + momentum * buf if nesterov else buf  (d = g when momentum = 0)
        p -= lr * d
    """
    d = g + weight_decay * p if weight_decay else g
    if momentum:
        if first:
            buf[...] = d
        else:
            buf *= momentum
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
                beta1: float, beta2: float, eps: float, weight_decay: float, step: int) -> None:
    """PyTorch's Adam (L2 weight decay, bias correction), in place on ``p``, ``m`` and ``v``::

        g = g + wd * p
        m = beta1 m + (1 - beta1) g            v = beta2 v + (1 - beta2) g^2
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Every array operation runs in the array dtype, the scalars ``lr / (1 - beta1^t)``,
    ``sqrt(1 - beta2^t)`` and ``eps`` rounded to it first, as ``torch.optim.Adam`` computes its
    denominator (``(v.sqrt() / bias_correction2_sqrt).add_(eps)`` in float32 for float32
    parameters). PyTorch updates ``m`` by ``lerp``, so float32 results differ from its by about
    one rounding (``tests/test_optim.py``).
    """
    if weight_decay:
        g = g + weight_decay * p
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    t = p.dtype.type
    denom = np.sqrt(v) / t(math.sqrt(bc2)) + t(eps)
    p -= t(lr / bc1) * m / denom


def adam_update_many(ps: list[np.ndarray], gs: list[np.ndarray], ms: list[np.ndarray],
                     vs: list[np.ndarray], lr: float, beta1: float, beta2: float, eps: float,
                     weight_decay: float, step: int) -> None:
    """:func:`adam_update` on every ``(p, g, m, v)`` of the four lists (a model's parameters,
    gradients and Adam states, in one call: the compiled sets update them all in one parallel
    loop, with the same results)."""
    expect_same_length("adam_update_many", ps=ps, gs=gs, ms=ms, vs=vs)
    for p, g, m, v in zip(ps, gs, ms, vs):
        adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)


def rmsprop_update(p: np.ndarray, g: np.ndarray, sq: np.ndarray, lr: float, alpha: float,
                   eps: float, weight_decay: float) -> None:
    """PyTorch's RMSprop (no momentum, not centred), in place::

        g = g + wd * p;  sq = alpha sq + (1 - alpha) g^2;  p -= lr * g / (sqrt(sq) + eps)
    """
    if weight_decay:
        g = g + weight_decay * p
    sq *= alpha
    sq += (1 - alpha) * g * g
    p -= lr * g / (np.sqrt(sq) + eps)


# ---------------------------------------------------------------------------- noise
#: ``2 pi / 2^24``: the angle of one step of the 24-bit integer in :func:`normal_from_bits`.
ANGLE_STEP = 2 * math.pi / 2 ** 24


def normal_from_bits(words: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Standard normal values from 64-bit random words, two per word (Box-Muller), in place.

    Parameters
    ----------
    words : (h,) uint64, ``h = ceil(n / 2)``: uniformly random words (``bit_generator.random_raw``)
    out : (n,) float32 or float64, C-contiguous: written with ``n`` independent N(0, 1) values

    Returns
    -------
    out : (n,)

    Equations
    ---------
    Word ``w_i`` is cut into its top 40 bits ``a_i`` and its low 24 bits ``b_i``::

        u_i     = (a_i + 1) 2^-40                  in (0, 1], exact in float64
        r_i     = sqrt(-2 ln u_i)                  in float64, then rounded to out's dtype
        theta_i = b_i (2 pi 2^-24)                 in out's dtype, in [0, 2 pi)
        out[2i] = r_i cos(theta_i),  out[2i + 1] = r_i sin(theta_i)     in out's dtype

    ``(r cos theta, r sin theta)`` of a radius with ``P(r > t) = exp(-t^2 / 2)`` and a uniform
    angle are two independent N(0, 1) values (Box and Muller, 1958). The last word's sine is
    dropped when ``n`` is odd. The radii are at most ``sqrt(80 ln 2) = 7.45`` (a value beyond
    that has probability 1e-13) and the angles take 2^24 steps, as fine as float32 resolves.

    Every step is one NumPy operation on whole arrays; the compiled sets run the same operations
    (NumPy's own log, sin and cos loops) on runs that stay in cache, so every set writes the same
    bits.
    """
    if words.dtype != np.uint64 or words.ndim != 1:
        raise ValueError(f"normal_from_bits: words must be a 1-D uint64 array, got "
                         f"{words.dtype} with shape {words.shape}")
    if out.ndim != 1 or out.dtype not in (np.float32, np.float64):
        raise ValueError(f"normal_from_bits: out must be a 1-D float32 or float64 array, got "
                         f"{out.dtype} with shape {out.shape}")
    n = out.shape[0]
    expect_shape("normal_from_bits", "words", words, ((n + 1) // 2,))
    dt = out.dtype.type
    u = (words >> np.uint64(24)).astype(np.float64)
    u += 1.0
    u *= 2.0 ** -40
    np.log(u, out=u)
    u *= -2.0
    np.sqrt(u, out=u)                               # r, float64
    r = u.astype(dt)
    theta = (words & np.uint64(0xFFFFFF)).astype(dt)
    theta *= dt(ANGLE_STEP)
    pairs = np.empty((len(words), 2), dtype=dt)
    np.cos(theta, out=pairs[:, 0])
    np.sin(theta, out=pairs[:, 1])
    pairs *= r[:, None]
    out[:] = pairs.reshape(-1)[:n]
    return out


# ---------------------------------------------------------------------------- products
def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, par: bool = True,
         blocks: int | None = None) -> np.ndarray:
    """``a @ b`` (``np.matmul``: BLAS, on the BLAS library's own threads).

    Parameters
    ----------
    a : (m, k); b : (k, n); out : optional (m, n) array to write into
    par : the compiled sets cut the product over their own threads when true (each block of rows
        or columns of the result one single-threaded BLAS call; see
        :mod:`nanogan._kernels._cblas`); the reference has no threads of its own and ignores it
    blocks : how many blocks the compiled sets cut it into (default: one per thread); ignored

    Returns
    -------
    c : (m, n)
    """
    return np.matmul(a, b, out=out)
