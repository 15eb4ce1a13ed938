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

    # ------------------------------------------------------------------ second order
    def jvp(self, x_dot: np.ndarray, cache: list[Any]) -> tuple[np.ndarray, list[Any]]:
        """Forward-mode chain rule: ``x_dot_l = f_l.jvp(x_dot_{l-1})``, from the first layer.

        Equations
        ---------
        ``y_dot = J_L ... J_2 J_1 x_dot`` with ``J_l = df_l/dx_{l-1}`` at the cached point.

        Parameters
        ----------
        x_dot : shape of x; cache : from :meth:`forward`

        Returns
        -------
        y_dot : shape of y; tcache : the list of the layers' tangent caches
        """
        layers = self._checked_layers(cache, "jvp")
        tcaches: list[Any] = []
        for layer, c in zip(layers, cache):
            x_dot, tc = layer.jvp(x_dot, c)
            tcaches.append(tc)
        return x_dot, tcaches

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: list[Any],
                     tcache: list[Any], *, param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The chain rule of :meth:`backward` run on pairs ``(dy, dy_dot)``, from the last layer.

        Equations
        ---------
        ::

            (dx_{l-1}, dx_dot_{l-1}) = f_l.backward_jvp(dx_l, dx_dot_l)     l = L, ..., 1

        with ``(dx_L, dx_dot_L) = (dy, dy_dot)``; each layer ADDS its second-order parameter
        gradients into :attr:`grads`. With ``input_grad=False`` the layers before the first one
        with parameters are skipped, and that layer computes no input gradient.

        Parameters
        ----------
        dy, dy_dot : shape of y
        cache : from :meth:`forward`; tcache : from :meth:`jvp`

        Returns
        -------
        dx, dx_dot : shape of x each, or None, None
        """
        layers = self._checked_layers(cache, "backward_jvp")
        if len(tcache) != len(layers):
            raise ValueError(f"{type(self).__name__}.backward_jvp: argument 'tcache' expected "
                             f"{len(layers)} entries (one per layer), got {len(tcache)}")
        if not input_grad and not param_grads:
            return None, None
        first = 0 if input_grad or not param_grads else next(
            (i for i, layer in enumerate(layers) if _has_params(layer)), len(layers))
        for i in range(len(layers) - 1, first - 1, -1):
            dy, dy_dot = layers[i].backward_jvp(dy, dy_dot, cache[i], tcache[i],
                                                param_grads=param_grads,
                                                input_grad=input_grad or i > first)
        return (dy, dy_dot) if input_grad else (None, None)

    def _checked_layers(self, cache: list[Any], method: str) -> list[Module]:
        """The layers, after checking ``cache`` has one entry per layer."""
        layers = self.layers
        where = f"{type(self).__name__}.{method}: argument 'cache'"
        if len(cache) != len(layers):
            raise ValueError(f"{where} expected one entry per layer ({len(layers)}), "
                             f"got {len(cache)}")
        return layers
