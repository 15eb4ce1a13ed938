"""Elementwise activations: ``LeakyReLU``, ``ReLU``, ``Tanh``, ``Sigmoid``.

They have no parameters and run in the dtype of their input.
"""

from __future__ import annotations

import numpy as np

from ..backend import xp
from .base import Module, check_dy, check_real

_ANY_SHAPE = "(N, *)"


class LeakyReLU(Module):
    """``y = x if x > 0 else negative_slope * x``.

    Equations
    ---------
    ``dL/dx = dy if x > 0 else negative_slope * dy``
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_real(self, "negative_slope", negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """x : any shape (N, *) -> y : same shape; cache : x"""
        x = self._check_input(x, tuple(range(1, 33)), _ANY_SHAPE)
        slope = x.dtype.type(self.negative_slope)
        return xp.where(x > 0, x, slope * x), x

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """dy, cache (x) : same shape -> dx = dy * (1 if x > 0 else negative_slope)
        (None when ``input_grad`` is False: there are no parameters)"""
        if not input_grad:
            return None
        x = cache
        dy = check_dy(self, dy, x.shape)
        return self._times_slope(dy, x)

    def _times_slope(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``d * f'(x)``: ``d`` where ``x > 0``, ``negative_slope * d`` elsewhere."""
        return xp.where(x > 0, d, d.dtype.type(self.negative_slope) * d)

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, None]:
        """Forward-mode derivative along ``x_dot``.

        Equations
        ---------
        ``y_dot = x_dot * f'(x)``, ``f'(x) = 1 if x > 0 else negative_slope``

        Parameters
        ----------
        x_dot : shape of x; cache : x, from :meth:`forward`

        Returns
        -------
        y_dot : shape of x; tcache : None (the layer is piecewise linear: ``f'' = 0``)
        """
        return self._times_slope(x_dot, cache), None

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: np.ndarray, tcache: None,
                     *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        Equations
        ---------
        ::

            dx     = dy * f'(x)
            dx_dot = dy_dot * f'(x) + dy * f''(x) * x_dot  =  dy_dot * f'(x)

        since ``f'' = 0`` away from ``x = 0`` (where, as in PyTorch, ``f'`` is that of ``x < 0``).

        Parameters
        ----------
        dy, dy_dot : shape of x; cache : x; tcache : None, from :meth:`jvp`

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None when ``input_grad`` is False
        """
        if not input_grad:
            return None, None
        return self._times_slope(dy, cache), self._times_slope(dy_dot, cache)


class ReLU(LeakyReLU):
    """``y = max(x, 0)``; ``dL/dx = dy * [x > 0]`` (the gradient at 0 is 0, as PyTorch)."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def extra_repr(self) -> str:
        return ""


class Tanh(Module):
    """``y = tanh(x)``.

    Equations
    ---------
    ``dL/dx = dy * (1 - y^2)`` (the cache is the output ``y``).
    """

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
        x = self._check_input(x, tuple(range(1, 33)), _ANY_SHAPE)
        y = xp.tanh(x)
        return y, y

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        y = cache
        dy = check_dy(self, dy, y.shape)
        return dy * (1 - y * y) if input_grad else None

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward-mode derivative along ``x_dot``: ``y_dot = x_dot * (1 - y^2)``.

        Parameters
        ----------
        x_dot : shape of x; cache : y, from :meth:`forward`

        Returns
        -------
        y_dot : shape of x; tcache : ``y_dot``
        """
        y = cache
        y_dot = x_dot * (1 - y * y)
        return y_dot, y_dot

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: np.ndarray,
                     tcache: np.ndarray, *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        Equations
        ---------
        ::

            dx     = dy * (1 - y^2)
            dx_dot = dy_dot * (1 - y^2) - 2 dy * y * y_dot        (y_dot = (1 - y^2) x_dot)

        Parameters
        ----------
        dy, dy_dot : shape of x; cache : y; tcache : y_dot, from :meth:`jvp`

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None when ``input_grad`` is False
        """
        if not input_grad:
            return None, None
        y, y_dot = cache, tcache
        d = 1 - y * y
        return dy * d, dy_dot * d - 2 * dy * y * y_dot


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))``, computed without overflow as ``1 / (1 + e)`` for ``x >= 0`` and
    ``e / (1 + e)`` for ``x < 0``, with ``e = exp(-|x|) <= 1``.

    Equations
    ---------
    ``dL/dx = dy * y * (1 - y)`` (the cache is the output ``y``). GAN discriminators should not end
    in a Sigmoid: the losses take logits (see :mod:`nanogan.losses`).
    """

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
        x = self._check_input(x, tuple(range(1, 33)), _ANY_SHAPE)
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return y, y

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        y = cache
        dy = check_dy(self, dy, y.shape)
        return dy * y * (1 - y) if input_grad else None

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward-mode derivative along ``x_dot``: ``y_dot = x_dot * y * (1 - y)``.

        Parameters
        ----------
        x_dot : shape of x; cache : y, from :meth:`forward`

        Returns
        -------
        y_dot : shape of x; tcache : ``y_dot``
        """
        y = cache
        y_dot = x_dot * y * (1 - y)
        return y_dot, y_dot

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: np.ndarray,
                     tcache: np.ndarray, *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x -> x + e x_dot``, ``dy -> dy + e dy_dot``.

        Equations
        ---------
        ::

            dx     = dy * y (1 - y)
            dx_dot = dy_dot * y (1 - y) + dy * (1 - 2 y) * y_dot     (y_dot = y (1 - y) x_dot)

        Parameters
        ----------
        dy, dy_dot : shape of x; cache : y; tcache : y_dot, from :meth:`jvp`

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None when ``input_grad`` is False
        """
        if not input_grad:
            return None, None
        y, y_dot = cache, tcache
        return dy * y * (1 - y), dy_dot * y * (1 - y) + dy * (1 - 2 * y) * y_dot
