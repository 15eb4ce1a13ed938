"""Fully connected layer ``y = x W^T + b`` (PyTorch's ``nn.Linear``)."""

from __future__ import annotations

import numpy as np

from .._kernels import matmul, ops
from .base import Module, as_dtype, as_rng
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
        self.in_features, self.out_features = int(in_features), int(out_features)
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
        y = matmul(x, self.weight.T)
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
        if param_grads and self.bias is not None:
            self._grads["bias"] += dy.sum(axis=0)
        return self._backward_product(dy, cache, param_grads, input_grad)

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
        return matmul(x_dot, self.weight.T), x_dot

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
        if param_grads:
            self._grads["weight"] += matmul(dy_dot.T, x) + matmul(dy.T, x_dot)
            if self.bias is not None:
                self._grads["bias"] += dy_dot.sum(axis=0)
        if not input_grad:
            return None, None
        return matmul(dy, self.weight), matmul(dy_dot, self.weight)

    def _backward_product(self, dy: np.ndarray, x: np.ndarray, param_grads: bool,
                          input_grad: bool) -> np.ndarray | None:
        """The product's part of :meth:`backward`: ``dL/dW += dy^T x``, ``dL/dx = dy W``."""
        if param_grads:
            self._grads["weight"] += matmul(dy.T, x)
        return matmul(dy, self.weight) if input_grad else None

    # ------------------------------------------------------------------ fused activation
    def _fusable(self) -> bool:
        return self.bias is not None

    def _forward_act(self, x: np.ndarray, train: bool, slope: float
                     ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``y = leaky_relu(x W^T + b, slope)`` with the bias and the activation in one pass over
        ``x W^T`` (in place: the cache holds ``x`` and ``y``, never ``x W^T``). Used by
        :class:`~nanogan.layers.container.Sequential` for a Dense followed by a (Leaky)ReLU."""
        x = self._check_input(x, 2, "(N, in_features)", {1: self.in_features})
        z = matmul(x, self.weight.T)
        N, O = z.shape
        y = ops.bias_leaky_relu(z.reshape(N, O, 1), self.bias, slope).reshape(N, O)
        return y, (x, y)

    def _backward_act(self, dy: np.ndarray, cache: tuple[np.ndarray, np.ndarray], slope: float,
                      *, param_grads: bool = True, input_grad: bool = True) -> np.ndarray | None:
        """Backward of :meth:`_forward_act`.

        Equations
        ---------
        ::

            dz = dy if y > 0 else slope * dy     (y > 0 exactly where z > 0, for slope >= 0)
            dL/db += sum_n dz[n]                 (in the same pass as dz)
            then the product's gradients of :meth:`backward` with dz in place of dy
        """
        x, y = cache
        N, O = y.shape
        dz, db = ops.bias_leaky_relu_backward(np.asarray(dy).reshape(N, O, 1),
                                              y.reshape(N, O, 1), slope)
        if param_grads:
            self._grads["bias"] += db
        return self._backward_product(dz.reshape(N, O), x, param_grads, input_grad)
