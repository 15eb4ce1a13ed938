"""Inverted dropout (PyTorch's ``nn.Dropout``)."""

from __future__ import annotations

import numpy as np

from ..backend import asarray, xp
from .base import Module, as_rng, check_dy, check_real


class Dropout(Module):
    """Zero each value with probability ``p`` in training and scale the kept ones by ``1/(1-p)``.

    In evaluation (``train=False``) the layer is the identity, so no rescaling is needed at test
    time. The mask is drawn from the layer's generator: a layer built with the same integer seed
    drops the same values in the same order of calls. It is drawn on the host (a NumPy
    ``Generator``, so every array backend drops the same values) and then moved to the backend.
    ``p = 1`` drops everything (the output is zero, without dividing by zero), as PyTorch.

    Parameters
    ----------
    p : float in [0, 1], default 0.5, the probability of dropping a value
    rng : numpy Generator, int seed or None, the source of the masks
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = check_real(self, "p", p, 0.0, 1.0)
        self.rng = as_rng(rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: np.ndarray, train: bool = True
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """``y = x * mask``, ``mask = [u >= p] / (1 - p)`` with ``u ~ U[0, 1)`` per value.

        Parameters
        ----------
        x : (N, *), any float array
        train : drop (True) or pass through unchanged (False)

        Returns
        -------
        y : shape of ``x``; cache : the scaled mask, shape of ``x`` (None when nothing is dropped)
        """
        x = self._check_input(x, tuple(range(1, 33)), "(N, *)")
        if not train or self.p == 0.0:
            return x, None
        if self.p == 1.0:
            mask = xp.zeros_like(x)
        else:
            keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p  # drawn on the host
            mask = keep.astype(x.dtype)
            mask *= x.dtype.type(1.0 / (1.0 - self.p))
            mask = asarray(mask)  # to the backend's device
        return x * mask, mask

    def backward(self, dy: np.ndarray, cache: np.ndarray | None, *,
                 param_grads: bool = True) -> np.ndarray:
        """Gradient of ``y = x * mask``.

        Equations
        ---------
        ::

            dL/dx = dy * [u >= p] / (1 - p)      (the same mask as the forward pass)
            dL/dx = dy                           (evaluation, or p = 0)

        Parameters
        ----------
        dy : shape of the output
        cache : the scaled mask from :meth:`forward`, or None

        Returns
        -------
        dx : shape of ``dy``
        """
        if cache is None:
            return asarray(dy)
        return check_dy(self, dy, cache.shape) * cache

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: np.ndarray | None) -> tuple[np.ndarray, None]:
        """Forward-mode derivative along ``x_dot``: with its mask fixed by the forward pass the
        layer is linear.

        Equations
        ---------
        ``y_dot = x_dot * mask`` (``x_dot`` itself when nothing was dropped)

        Parameters
        ----------
        x_dot : shape of x; cache : the mask from :meth:`forward`, or None

        Returns
        -------
        y_dot : shape of x; tcache : None
        """
        return (x_dot if cache is None else x_dot * cache), None

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: np.ndarray | None,
                     tcache: None, *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x_dot``, ``dy_dot``.

        Equations
        ---------
        ::

            dx     = dy * mask
            dx_dot = dy_dot * mask        (the backward does not depend on x)

        Parameters
        ----------
        dy, dy_dot : shape of x; cache : the mask, or None; tcache : None, from :meth:`jvp`
        param_grads : unused (no parameters)
        input_grad : if False, None, None is returned

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None
        """
        if not input_grad:
            return None, None
        if cache is None:
            return dy, dy_dot
        return dy * cache, dy_dot * cache
