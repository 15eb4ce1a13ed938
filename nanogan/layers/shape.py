"""Shape layers: ``Flatten`` and ``Reshape`` (the batch dimension is always kept)."""

from __future__ import annotations

import numpy as np

from ..backend import asarray
from .base import Module, _fmt_shape, check_dy, check_sizes


class _Reshaping(Module):
    """Second order of a layer that only reshapes (shared by :class:`Flatten` and
    :class:`Reshape`): a linear map, whose backward does not depend on ``x``."""

    def jvp(self, x_dot: np.ndarray, cache: tuple) -> tuple[np.ndarray, None]:
        """Forward-mode derivative along ``x_dot``: the layer is linear, so it maps ``x_dot``
        as it maps ``x``.

        Equations
        ---------
        ``y_dot = x_dot.reshape(y.shape)``

        Parameters
        ----------
        x_dot : shape of x; cache : x's shape, from :meth:`forward`

        Returns
        -------
        y_dot : shape of y; tcache : None
        """
        x_dot = asarray(x_dot)
        if x_dot.shape != tuple(cache):
            raise ValueError(f"{self!r}: argument 'x_dot' expected shape "
                             f"{_fmt_shape(tuple(cache))} (the forward input), "
                             f"got {_fmt_shape(x_dot.shape)}")
        return self.forward(x_dot)[0], None

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: tuple, tcache: None, *,
                     param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """:meth:`backward` differentiated along ``x_dot``, ``dy_dot``.

        Equations
        ---------
        ::

            dx     = dy.reshape(x.shape)
            dx_dot = dy_dot.reshape(x.shape)      (the backward does not depend on x)

        Parameters
        ----------
        dy, dy_dot : shape of y; cache : x's shape; tcache : None, from :meth:`jvp`
        param_grads : unused (no parameters)
        input_grad : if False, None, None is returned

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None
        """
        if not input_grad:
            return None, None
        return dy.reshape(cache), dy_dot.reshape(cache)


class Flatten(_Reshaping):
    """``(N, d1, d2, ...) -> (N, d1*d2*...)``, as PyTorch's ``nn.Flatten()``.

    Backward reshapes ``dy`` to the input shape: ``dL/dx = dy.reshape(x.shape)``.
    """

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple]:
        x = self._check_input(x, tuple(range(2, 33)), "(N, d1, *)")
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        dy = check_dy(self, dy, (cache[0], int(np.prod(cache[1:]))))
        return dy.reshape(cache) if input_grad else None


class Reshape(_Reshaping):
    """``(N, ...) -> (N, *shape)``; e.g. ``Reshape(100, 1, 1)`` turns noise into a 1x1 image.

    Backward reshapes ``dy`` back: ``dL/dx = dy.reshape(x.shape)``.
    """

    def __init__(self, *shape: int) -> None:
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        self.shape = check_sizes(self, **{f"shape[{i}]": s for i, s in enumerate(shape)})

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple]:
        x = self._check_input(x, tuple(range(1, 33)), "(N, *)")
        n = int(np.prod(x.shape[1:]))
        m = int(np.prod(self.shape))
        if n != m:
            raise ValueError(f"{self!r}: argument 'x' expected shape (N, ...) with {m} values per "
                             f"sample to give (N, {', '.join(map(str, self.shape))}), "
                             f"got {_fmt_shape(x.shape)}")
        return x.reshape((x.shape[0], *self.shape)), x.shape

    def backward(self, dy: np.ndarray, cache: tuple, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        dy = check_dy(self, dy, (cache[0], *self.shape))
        return dy.reshape(cache) if input_grad else None
