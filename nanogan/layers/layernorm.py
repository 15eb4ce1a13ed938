"""Layer normalisation (PyTorch's ``nn.LayerNorm``): each sample normalised over its own values.

Unlike BatchNorm, no statistic crosses the batch: sample ``n``'s output depends on sample ``n``
alone, so the per-sample gradient ``dD(x_n)/dx_n`` of a gradient penalty is well defined through
it (the WGAN-GP paper uses it in the critic in place of BatchNorm). The layer behaves the same in
training and in evaluation and has no buffers.

The input ``(*, normalized_shape)`` is viewed as ``(B, D)``: ``D`` the number of values in
``normalized_shape`` (the trailing dimensions), ``B`` the product of the leading ones. Per row::

    mu   = mean_j x_j                  var = mean_j (x_j - mu)^2      (biased, as PyTorch)
    r    = 1 / sqrt(var + eps)         xhat = (x - mu) * r
    y    = weight * xhat + bias        (weight, bias of normalized_shape, shared by all rows)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import asarray, xp
from .base import Module, _fmt_shape, as_dtype, check_real


def _mean(a: np.ndarray) -> np.ndarray:
    """Row means of a (B, D) array, kept as (B, 1) for broadcasting."""
    return a.mean(axis=1, keepdims=True)


class LayerNorm(Module):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` over the trailing ``normalized_shape``.

    Parameters
    ----------
    normalized_shape : int or tuple of ints, the trailing dimensions normalised together
        (``C`` for features ``(N, C)``; ``(C, H, W)`` for a whole image ``(N, C, H, W)``)
    eps : float, default 1e-5, added to the variance before the square root
    elementwise_affine : bool, default True, learn ``weight`` (ones) and ``bias`` (zeros)
    bias : bool, default True, learn ``bias`` (when ``elementwise_affine``), as PyTorch
    dtype : float32 (default) or float64

    Attributes
    ----------
    params["weight"] : normalized_shape; params["bias"] : normalized_shape
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, *,
                 dtype=np.float32) -> None:
        super().__init__()
        shape = (tuple(normalized_shape) if isinstance(normalized_shape, tuple | list)
                 else (normalized_shape,))
        if not shape or not all(isinstance(s, int | np.integer) and not isinstance(s, bool)
                                and s > 0 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a non-empty "
                             f"tuple of positive ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = check_real(self, "eps", eps, 0.0)
        self.elementwise_affine = bool(elementwise_affine)
        self.dtype = as_dtype(dtype)
        self.weight = self.bias = None
        if self.elementwise_affine:
            self.weight = self.add_param("weight", np.ones(self.normalized_shape, self.dtype))
            if bias:
                self.bias = self.add_param("bias", np.zeros(self.normalized_shape, self.dtype))

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")

    # ------------------------------------------------------------------ helpers
    def _rows(self, x: Any, arg: str = "x") -> tuple[np.ndarray, tuple[int, ...]]:
        """Check ``x`` is ``(N, *, normalized_shape)``; return it viewed as (B, D), and its
        shape."""
        k = len(self.normalized_shape)
        layout = "(N, *, " + ", ".join(map(str, self.normalized_shape)) + ")"
        x = self._check_input(x, tuple(range(k + 1, 33)), layout, arg=arg)
        if tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"{self!r}: argument {arg!r} expected shape {layout} (trailing "
                             f"dimensions {_fmt_shape(self.normalized_shape)}), "
                             f"got {_fmt_shape(x.shape)}")
        return x.reshape(-1, int(np.prod(self.normalized_shape))), x.shape

    def _dxhat(self, dy2: np.ndarray) -> np.ndarray:
        """``dL/dxhat = dy * weight`` (``dy`` itself without the affine map), rows (B, D)."""
        return dy2 if self.weight is None else dy2 * self.weight.reshape(1, -1)

    def _add_param_grads(self, dy2: np.ndarray, xhat: np.ndarray) -> None:
        """``dL/dweight += sum_b dy * xhat``, ``dL/dbias += sum_b dy`` (``xhat`` may be a
        tangent: the second order reuses this with the product rule)."""
        if self.weight is not None:
            self._grads["weight"] += (dy2 * xhat).sum(axis=0).reshape(self.normalized_shape)
        if self.bias is not None:
            self._grads["bias"] += dy2.sum(axis=0).reshape(self.normalized_shape)

    # ------------------------------------------------------------------ first order
    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple]:
        """Normalise each sample's trailing ``normalized_shape`` values.

        Parameters
        ----------
        x : (N, *, *normalized_shape)
        train : unused (the layer behaves the same in both modes)

        Returns
        -------
        y : shape of x
        cache : ``(xhat, r, x_shape)``, ``xhat`` of shape (B, D) and ``r = 1/sqrt(var + eps)``
            of shape (B, 1)
        """
        x2, x_shape = self._rows(x)
        mu = _mean(x2)
        xc = x2 - mu
        r = 1.0 / xp.sqrt(_mean(xc * xc) + x2.dtype.type(self.eps))
        xhat = xc * r
        y = xhat if self.weight is None else xhat * self.weight.reshape(1, -1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1)
        return y.reshape(x_shape), (xhat, r, x_shape)

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Gradients of the normalisation, per row of D values.

        Equations
        ---------
        ::

            g      = dy * weight                                   (B, D)
            dL/dx  = r * (g - mean_j g - xhat * mean_j(g * xhat))  (B, D)
            dL/dweight += sum_b dy * xhat                          normalized_shape
            dL/dbias   += sum_b dy                                 normalized_shape

        ``dL/dx`` is ``g`` projected away from the two directions the normalisation removes
        (constant shifts and rescalings of the row), then scaled by ``r``: the Jacobian of
        ``xhat`` w.r.t. ``x`` is the symmetric ``r (I - 1 1^T / D - xhat xhat^T / D)``.

        Parameters
        ----------
        dy : shape of x
        cache : ``(xhat, r, x_shape)`` from :meth:`forward`
        param_grads : if False, the parameter gradients are not computed
        input_grad : if False, ``dL/dx`` is not computed and None is returned

        Returns
        -------
        dx : shape of x, or None
        """
        xhat, r, x_shape = cache
        dy2 = self._grad_rows(dy, x_shape, "dy")
        if param_grads:
            self._add_param_grads(dy2, xhat)
        if not input_grad:
            return None
        return self._project(self._dxhat(dy2), xhat, r).reshape(x_shape)

    @staticmethod
    def _project(g: np.ndarray, xhat: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``r * (g - mean_j g - xhat * mean_j(g * xhat))``: the Jacobian of ``xhat`` (symmetric)
        applied to ``g``, row by row."""
        return r * (g - _mean(g) - xhat * _mean(g * xhat))

    def _grad_rows(self, dy: Any, x_shape: tuple, arg: str) -> np.ndarray:
        dy = asarray(dy)
        if dy.shape != tuple(x_shape):
            raise ValueError(f"{self!r}: argument {arg!r} expected shape "
                             f"{_fmt_shape(tuple(x_shape))} (the forward output), "
                             f"got {_fmt_shape(dy.shape)}")
        return dy.astype(self.dtype, copy=False).reshape(-1, int(np.prod(self.normalized_shape)))

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: tuple) -> tuple[np.ndarray, tuple]:
        """Forward-mode derivative along ``x_dot`` (``weight``, ``bias`` fixed).

        Equations
        ---------
        ::

            m1       = mean_j(xhat * x_dot)                                  (B, 1)
            xhat_dot = r * (x_dot - mean_j x_dot - xhat * m1)                (B, D)
            r_dot    = -r^2 * m1                                             (B, 1)
            y_dot    = weight * xhat_dot                                     (B, D)

        (``var_dot = 2 mean_j((x - mu) x_dot) = 2 m1 / r``, ``r_dot = -r^3 var_dot / 2``.)

        Parameters
        ----------
        x_dot : shape of x; cache : from :meth:`forward`

        Returns
        -------
        y_dot : shape of x; tcache : ``(xhat_dot, r_dot)``
        """
        xhat, r, x_shape = cache
        x_dot2 = self._grad_rows(self._check_input(x_dot, len(x_shape), "the shape of x",
                                                   arg="x_dot"), x_shape, "x_dot")
        xhat_dot = self._project(x_dot2, xhat, r)
        r_dot = -r * r * _mean(xhat * x_dot2)
        return self._dxhat(xhat_dot).reshape(x_shape), (xhat_dot, r_dot)

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: tuple, tcache: tuple, *,
                     param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        Equations
        ---------
        ::

            g = dy * weight,   g_dot = dy_dot * weight                                  (B, D)
            dx     = r * (g - mean g - xhat * mean(g xhat))
            dx_dot = (r_dot / r) * dx
                     + r * (g_dot - mean g_dot - xhat_dot * mean(g xhat)
                            - xhat * mean(g_dot xhat + g xhat_dot))
            dweight_dot += sum_b (dy_dot * xhat + dy * xhat_dot)                 normalized_shape
            dbias_dot   += sum_b dy_dot                                          normalized_shape

        (every mean over the row's D values), the product rule applied to each factor of
        :meth:`backward`. The parameter terms are ADDED into :attr:`grads`.

        Parameters
        ----------
        dy, dy_dot : shape of x
        cache : from :meth:`forward`; tcache : ``(xhat_dot, r_dot)`` from :meth:`jvp`
        param_grads : if False, nothing is added into :attr:`grads`
        input_grad : if False, ``dx`` and ``dx_dot`` are not computed (None is returned)

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None
        """
        xhat, r, x_shape = cache
        xhat_dot, r_dot = tcache
        dy2 = self._grad_rows(dy, x_shape, "dy")
        dy2_dot = self._grad_rows(dy_dot, x_shape, "dy_dot")
        if param_grads:
            self._add_param_grads(dy2_dot, xhat)
            if self.weight is not None:
                self._grads["weight"] += (dy2 * xhat_dot).sum(axis=0).reshape(
                    self.normalized_shape)
        if not input_grad:
            return None, None
        g, g_dot = self._dxhat(dy2), self._dxhat(dy2_dot)
        m_gx = _mean(g * xhat)
        dx = self._project(g, xhat, r)
        dx_dot = (r_dot / r) * dx + r * (g_dot - _mean(g_dot) - xhat_dot * m_gx
                                         - xhat * _mean(g_dot * xhat + g * xhat_dot))
        return dx.reshape(x_shape), dx_dot.reshape(x_shape)
