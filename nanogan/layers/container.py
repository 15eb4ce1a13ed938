"""``Sequential``: layers applied in order, backpropagated in reverse order.

This is the whole chain rule of a network: the forward pass keeps one cache per layer, the backward
pass hands each layer the gradient of the layer after it. ``nanogan.fast.compile`` turns a
``Sequential`` into a plan that runs the same layers with fused kernels (what ``GAN`` trains with
by default); its results equal this plain loop's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Module, accepts_input_grad


def _has_params(layer: Module) -> bool:
    return any(m._params for _, m in layer.named_modules())


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
        """Run each layer in turn; the cache is the list of the layers' caches."""
        caches: list[Any] = []
        for layer in self.layers:
            x, c = layer.forward(x, train)
            caches.append(c)
        return x, caches

    def backward(self, dy: np.ndarray, cache: list[Any], *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Chain rule in reverse: ``dL/dx_{l-1} = f_l.backward(dL/dx_l)``, from the last layer.

        With ``input_grad=False`` the layers before the first one with parameters are skipped and
        that layer is asked not to compute its input gradient (if its ``backward`` takes the
        keyword); the result is then None.
        """
        layers = self.layers
        if len(cache) != len(layers):
            raise ValueError(f"{type(self).__name__}.backward: argument 'cache' expected "
                             f"{len(layers)} entries (one per layer), got {len(cache)}")
        # layer i must return dL/dx_i iff the caller wants dL/dx or a layer before it has params
        first = 0 if input_grad or not param_grads else next(
            (i for i, layer in enumerate(layers) if _has_params(layer)), len(layers))
        if not input_grad and not param_grads:
            return None
        for i in range(len(layers) - 1, first - 1, -1):
            layer, c = layers[i], cache[i]
            kw: dict[str, Any] = {"param_grads": param_grads}
            if i == first and not input_grad and accepts_input_grad(layer):
                kw["input_grad"] = False
            dy = layer.backward(dy, c, **kw)
        return dy if input_grad else None
