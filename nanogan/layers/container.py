"""``Sequential``: layers applied in order, backpropagated in reverse order."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Module


class Sequential(Module):
    """``y = f_L(... f_2(f_1(x)))``.

    Children are named ``"0"``, ``"1"``, ... so parameters are keyed ``"0.weight"``,
    ``"1.running_mean"``, ... exactly as PyTorch's ``nn.Sequential``.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        self.dtype = None  # each child converts its own input

    @property
    def layers(self) -> list[Module]:
        return list(self._children.values())

    def __len__(self) -> int:
        return len(self._children)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, list[Any]]:
        """Run each layer; the cache is the list of the layers' caches."""
        caches = []
        for layer in self._children.values():
            x, c = layer.forward(x, train)
            caches.append(c)
        return x, caches

    def backward(self, dy: np.ndarray, cache: list[Any], *,
                 param_grads: bool = True) -> np.ndarray:
        """Chain rule in reverse: ``dL/dx_{l-1} = f_l.backward(dL/dx_l)``, from the last layer."""
        for layer, c in zip(reversed(self.layers), reversed(cache), strict=True):
            dy = layer.backward(dy, c, param_grads=param_grads)
        return dy
