"""Shape layers: ``Flatten`` and ``Reshape`` (the batch dimension is always kept)."""

from __future__ import annotations

import numpy as np

from .base import Module, _fmt_shape, check_dy, check_sizes


class Flatten(Module):
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


class Reshape(Module):
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
