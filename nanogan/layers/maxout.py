"""Maxout layer (Goodfellow et al. 2013): an affine map followed by a max over groups of pieces.

``Maxout(in_features, out_features, pieces)`` computes ``pieces`` affine functions per output unit
and keeps the largest::

    z = x W^T + b                      (N, out_features * pieces)
    y[n, j] = max_i z[n, j * pieces + i]

Unit ``j`` owns the ``pieces`` consecutive rows ``j * pieces ... j * pieces + pieces - 1`` of
``weight``, the layout of pylearn2's ``Maxout`` (``z[:, i::pieces]`` is piece ``i`` of every unit).
PyTorch has no Maxout; its equivalent is ``nn.Linear(in, out * pieces)`` followed by
``z.view(N, out, pieces).max(-1).values``, which has the same state-dict keys and shapes.
"""

from __future__ import annotations

import numpy as np

from ..backend import xp
from .base import Module, as_dtype, as_rng, check_dy, check_sizes
from .init import uniform_fan_in


class Maxout(Module):
    """``y[:, j] = max_i (x W^T + b)[:, j * pieces + i]``.

    Parameters
    ----------
    in_features, out_features : int
    pieces : int >= 1, affine pieces per output unit (``pieces=1`` is a plain ``Dense``)
    bias : bool, default True
    rng : numpy Generator, int seed or None, for PyTorch's default ``Linear`` initialisation
    dtype : float32 (default) or float64

    Attributes
    ----------
    params["weight"] : (out_features * pieces, in_features)
    params["bias"] : (out_features * pieces,)
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True, *,
                 rng: np.random.Generator | int | None = None, dtype=np.float32) -> None:
        super().__init__()
        self.in_features, self.out_features, self.pieces = check_sizes(
            self, in_features=in_features, out_features=out_features, pieces=pieces)
        self.dtype = as_dtype(dtype)
        rng = as_rng(rng)
        rows = self.out_features * self.pieces
        self.weight = self.add_param("weight", uniform_fan_in(
            rng, (rows, self.in_features), self.in_features, self.dtype))
        self.bias = (self.add_param("bias", uniform_fan_in(
            rng, (rows,), self.in_features, self.dtype)) if bias else None)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pieces={self.pieces}, bias={self.bias is not None}")

    def forward(self, x: np.ndarray, train: bool = True
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``z = x W^T + b``; ``y = max over each unit's pieces of z``.

        Parameters
        ----------
        x : (N, in_features)

        Returns
        -------
        y : (N, out_features)
        cache : (x, argmax) with ``argmax`` (N, out_features, 1) int64, the winning piece
            (the first one on a tie)
        """
        x = self._check_input(x, 2, "(N, in_features)", {1: self.in_features})
        z = x @ self.weight.T
        if self.bias is not None:
            z += self.bias
        z = z.reshape(len(x), self.out_features, self.pieces)
        arg = z.argmax(axis=2)[:, :, None]
        y = xp.take_along_axis(z, arg, axis=2)[:, :, 0]
        return y, (x, arg)

    def backward(self, dy: np.ndarray, cache: tuple[np.ndarray, np.ndarray], *,
                 param_grads: bool = True, input_grad: bool = True) -> np.ndarray | None:
        """Gradients of ``y = max_i z[:, j, i]``, ``z = x W^T + b``.

        Equations
        ---------
        ::

            dL/dz[n, j, i] = dy[n, j] if i == argmax_i' z[n, j, i'] else 0
                                                       (N, out * pieces), the winners only
            dL/dx  = dz W              (N, in)          = (N, out * pieces) @ (out * pieces, in)
            dL/dW += dz^T x            (out * pieces, in)
            dL/db += sum_n dz[n]       (out * pieces,)

        Parameters
        ----------
        dy : (N, out_features)
        cache : (x (N, in_features), argmax (N, out_features, 1)) from :meth:`forward`
        param_grads : add ``dL/dW`` and ``dL/db`` into the gradients
        input_grad : compute ``dL/dx`` (False: skip the product and return None)

        Returns
        -------
        dx : (N, in_features), or None when ``input_grad`` is False
        """
        x, arg = cache
        dy = check_dy(self, dy, arg.shape[:2])
        n = len(x)
        dz = xp.zeros((n, self.out_features, self.pieces), dtype=dy.dtype)
        xp.put_along_axis(dz, arg, dy[:, :, None], axis=2)
        dz = dz.reshape(n, self.out_features * self.pieces)
        if param_grads:
            self._grads["weight"] += dz.T @ x
            if self.bias is not None:
                self._grads["bias"] += dz.sum(axis=0)
        return dz @ self.weight if input_grad else None

    # ------------------------------------------------------------------ second order
    def _scatter(self, d: np.ndarray, arg: np.ndarray) -> np.ndarray:
        """``d`` (N, out) put at each unit's winning piece: (N, out * pieces), zeros elsewhere."""
        n = len(d)
        dz = xp.zeros((n, self.out_features, self.pieces), dtype=d.dtype)
        xp.put_along_axis(dz, arg, d[:, :, None], axis=2)
        return dz.reshape(n, self.out_features * self.pieces)

    def jvp(self, x_dot: np.ndarray, cache: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
        """Forward-mode derivative along ``x_dot`` (``W``, ``b`` fixed): the winning piece's.

        Equations
        ---------
        ::

            z_dot = x_dot W^T                              (N, out * pieces)
            y_dot[n, j] = z_dot[n, j, argmax_i z[n, j, i]] (N, out)

        Parameters
        ----------
        x_dot : (N, in_features); cache : (x, argmax) from :meth:`forward`

        Returns
        -------
        y_dot : (N, out_features); tcache : ``x_dot``
        """
        x_dot = self._check_input(x_dot, 2, "(N, in_features)", {1: self.in_features}, "x_dot")
        _, arg = cache
        z_dot = (x_dot @ self.weight.T).reshape(len(x_dot), self.out_features, self.pieces)
        return xp.take_along_axis(z_dot, arg, axis=2)[:, :, 0], x_dot

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray,
                     cache: tuple[np.ndarray, np.ndarray], tcache: np.ndarray, *,
                     param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        The winners do not change for a small step (the max is piecewise linear), so ``dz`` is
        linear in ``dy`` and the backward is bilinear in ``(dz, x)``: the product rule.

        Equations
        ---------
        ::

            dz, dz_dot = dy, dy_dot at the winning pieces, 0 elsewhere   (N, out * pieces)
            dx      = dz W,   dx_dot = dz_dot W                          (N, in)
            dW_dot += dz_dot^T x + dz^T x_dot                            (out * pieces, in)
            db_dot += sum_n dz_dot[n]                                    (out * pieces,)

        Parameters
        ----------
        dy, dy_dot : (N, out_features)
        cache : (x, argmax) from :meth:`forward`; tcache : x_dot from :meth:`jvp`
        param_grads : if False, nothing is added into :attr:`grads`
        input_grad : if False, ``dx`` and ``dx_dot`` are not computed (None is returned)

        Returns
        -------
        dx, dx_dot : (N, in_features) each, or None, None
        """
        x, arg = cache
        x_dot = tcache
        dz, dz_dot = self._scatter(dy, arg), self._scatter(dy_dot, arg)
        if param_grads:
            self._grads["weight"] += dz_dot.T @ x + dz.T @ x_dot
            if self.bias is not None:
                self._grads["bias"] += dz_dot.sum(axis=0)
        if not input_grad:
            return None, None
        return dz @ self.weight, dz_dot @ self.weight
