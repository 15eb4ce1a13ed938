"""Inverted dropout (PyTorch's ``nn.Dropout``)."""

from __future__ import annotations

import numpy as np

from .base import Module, as_rng, check_dy, check_real


class Dropout(Module):
    """Zero each value with probability ``p`` in training and scale the kept ones by ``1/(1-p)``.

    In evaluation (``train=False``) the layer is the identity, so no rescaling is needed at test
    time. The mask is drawn from the layer's generator: a layer built with the same integer seed
    drops the same values in the same order of calls. ``p = 1`` drops everything (the output is
    zero, without dividing by zero), as PyTorch.

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
            mask = np.zeros_like(x)
        else:
            keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
            mask = keep.astype(x.dtype)
            mask *= x.dtype.type(1.0 / (1.0 - self.p))
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
            return np.asarray(dy)
        return check_dy(self, dy, cache.shape) * cache
