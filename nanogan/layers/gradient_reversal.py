"""Gradient reversal (Ganin & Lempitsky 2015; Ganin et al. 2016, domain-adversarial training)."""

from __future__ import annotations

import numpy as np

from ..backend import asarray
from .base import Module


class GradientReversal(Module):
    """The identity on the way forward; the gradient times ``-lambda_`` on the way back.

    Placed between a feature extractor and a domain classifier, it lets one backward pass train
    the classifier to *tell* the domains apart while the features below it are trained to make
    them *indistinguishable*: the extractor receives the domain loss's gradient with its sign
    flipped (and scaled by ``lambda_``), i.e. it ascends the loss the classifier descends.

    Parameters
    ----------
    lambda_ : float, default 1.0, the reversal's scale (``>= 0``); a public attribute, so a
        schedule may change it between steps (Ganin et al. raise it from 0 to 1 as
        ``2 / (1 + exp(-10 p)) - 1``, ``p`` the fraction of training done)

    Equations
    ---------
    ::

        y     = x
        dL/dx = -lambda_ dL/dy
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = lambda_

    @property
    def lambda_(self) -> float:
        """The scale of the reversed gradient (``>= 0``)."""
        return self._lambda

    @lambda_.setter
    def lambda_(self, value: float) -> None:
        value = float(value)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"GradientReversal: lambda_ must be a finite number >= 0, got {value}")
        self._lambda = value

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}"

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, None]:
        """x : (N, *) -> y = x (the same array; nothing is cached)."""
        return self._check_input(x, tuple(range(1, 33)), "(N, *)"), None

    def backward(self, dy: np.ndarray, cache: None, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """dy : (N, *) -> dx = -lambda_ * dy, same shape and dtype (None if ``input_grad`` is
        False: there are no parameters)."""
        if not input_grad:
            return None
        dy = asarray(dy)
        return dy * dy.dtype.type(-self.lambda_)
