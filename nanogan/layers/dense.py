"""Fully connected layer ``y = x W^T + b`` (PyTorch's ``nn.Linear``)."""

from __future__ import annotations

import numpy as np

from .base import Module, as_dtype, as_rng, check_dy, check_sizes
from .init import uniform_fan_in


class Dense(Module):
    """Affine map ``y = x W^T + b``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    rng : numpy Generator, int seed or None, for PyTorch's default initialisation
    dtype : float32 (default) or float64

    Attributes
    ----------
    params["weight"] : (out_features, in_features)
    params["bias"] : (out_features,)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: np.random.Generator | int | None = None, dtype=np.float32) -> None:
        super().__init__()
        self.in_features, self.out_features = check_sizes(self, in_features=in_features,
                                                          out_features=out_features)
        self.dtype = as_dtype(dtype)
        rng = as_rng(rng)
        self.weight = self.add_param("weight", uniform_fan_in(
            rng, (self.out_features, self.in_features), self.in_features, self.dtype))
        self.bias = (self.add_param("bias", uniform_fan_in(
            rng, (self.out_features,), self.in_features, self.dtype)) if bias else None)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``y = x W^T + b``.

        Parameters
        ----------
        x : (N, in_features)

        Returns
        -------
        y : (N, out_features); cache : ``x``
        """
        x = self._check_input(x, 2, "(N, in_features)", {1: self.in_features})
        y = x @ self.weight.T
        if self.bias is not None:
            y += self.bias
        return y, x

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Gradients of ``y = x W^T + b``.

        Equations
        ---------
        ::

            dL/dx = dy W             (N, in)  = (N, out) @ (out, in)
            dL/dW += dy^T x          (out, in) = (out, N) @ (N, in)
            dL/db += sum_n dy[n]     (out,)

        Parameters
        ----------
        dy : (N, out_features)
        cache : x, (N, in_features)
        param_grads : if False, the parameter gradients are not computed
        input_grad : if False, ``dL/dx`` is not computed and None is returned

        Returns
        -------
        dx : (N, in_features), or None
        """
        x = cache
        dy = check_dy(self, dy, (len(x), self.out_features))
        if param_grads:
            self._grads["weight"] += dy.T @ x
            if self.bias is not None:
                self._grads["bias"] += dy.sum(axis=0)
        return dy @ self.weight if input_grad else None

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward-mode derivative of ``y = x W^T + b`` along ``x_dot`` (``W``, ``b`` fixed).

        Equations
        ---------
        ::

            y_dot = x_dot W^T        (N, out) = (N, in) @ (in, out)

        Parameters
        ----------
        x_dot : (N, in_features), the direction ``x`` moves in
        cache : x, (N, in_features), from :meth:`forward`

        Returns
        -------
        y_dot : (N, out_features); tcache : ``x_dot``
        """
        x_dot = self._check_input(x_dot, 2, "(N, in_features)", {1: self.in_features}, "x_dot")
        return x_dot @ self.weight.T, x_dot

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: np.ndarray,
                     tcache: np.ndarray, *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        The backward pass is bilinear in ``(dy, x)``, so its derivative is the product rule.

        Equations
        ---------
        ::

            dx      = dy W                              (N, in)
            dx_dot  = dy_dot W                          (N, in)
            dW_dot += dy_dot^T x + dy^T x_dot           (out, in)
            db_dot += sum_n dy_dot[n]                   (out,)

        ``dW_dot`` and ``db_dot`` (the second-order parameter gradients) are ADDED into
        :attr:`grads`.

        Parameters
        ----------
        dy, dy_dot : (N, out_features)
        cache : x, (N, in_features), from :meth:`forward`
        tcache : x_dot, (N, in_features), from :meth:`jvp`
        param_grads : if False, nothing is added into :attr:`grads`
        input_grad : if False, ``dx`` and ``dx_dot`` are not computed (None is returned)

        Returns
        -------
        dx, dx_dot : (N, in_features) each, or None, None
        """
        x, x_dot = cache, tcache
        dy = check_dy(self, dy, (len(x), self.out_features))
        dy_dot = check_dy(self, dy_dot, (len(x), self.out_features))
        if param_grads:
            self._grads["weight"] += dy_dot.T @ x + dy.T @ x_dot
            if self.bias is not None:
                self._grads["bias"] += dy_dot.sum(axis=0)
        if not input_grad:
            return None, None
        return dy @ self.weight, dy_dot @ self.weight
