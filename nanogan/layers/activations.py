"""Elementwise activations: ``LeakyReLU``, ``ReLU``, ``Tanh``, ``Sigmoid``.

They have no parameters and run in the dtype of their input.
"""

from __future__ import annotations

import numpy as np

from .base import Module

_ANY_SHAPE = "(N, *)"


class LeakyReLU(Module):
    """``y = x if x > 0 else negative_slope * x``.

    Equations
    ---------
    ``dL/dx = dy if x > 0 else negative_slope * dy``
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """x : any shape (N, *) -> y : same shape; cache : x"""
        x = self._check_input(x, tuple(range(1, 33)), _ANY_SHAPE)
        slope = x.dtype.type(self.negative_slope)
        return np.where(x > 0, x, slope * x), x

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """dy, cache (x) : same shape -> dx = dy * (1 if x > 0 else negative_slope)
        (None when ``input_grad`` is False: there are no parameters)"""
        if not input_grad:
            return None
        x = cache
        slope = dy.dtype.type(self.negative_slope)
        return np.where(x > 0, dy, slope * dy)


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
        y = np.tanh(x)
        return y, y

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        y = cache
        return dy * (1 - y * y) if input_grad else None


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
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return y, y

    def backward(self, dy: np.ndarray, cache: np.ndarray, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        y = cache
        return dy * y * (1 - y) if input_grad else None
