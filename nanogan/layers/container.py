"""``Sequential``: layers applied in order, backpropagated in reverse order.

Fusion: a layer that offers a fused activation (``Dense`` or ``Conv2d`` with a bias, BatchNorm)
directly followed by a ``LeakyReLU`` or ``ReLU`` is run as one step: the producer's last pass over
its output (adding the bias, or normalising) also applies the activation, in place, and its
backward computes the activation's gradient in the same pass as the bias (or BatchNorm) sums::

    forward    y = leaky_relu(z + b, slope)                 (one pass over z, written in place)
    backward   dz = dy if y > 0 else slope * dy;  db = sum dz   (one pass over dy)

This is exact, not an approximation: for ``slope >= 0``, ``y > 0`` exactly where ``z > 0``, so the
activation's backward can read its mask from the output ``y``, and writing ``y`` over ``z`` is safe
because the producer's cache never holds ``z``. Results equal the unfused layers' (set
``Sequential.fuse = False`` to run every layer alone); the caches of the pair are the producer's
fused cache and a placeholder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import LeakyReLU, ReLU
from .base import Module, accepts_input_grad


class _Fused:
    """Cache of a producer run with its activation fused (``slope``: the activation's)."""

    __slots__ = ("cache", "slope")

    def __init__(self, cache: Any, slope: float) -> None:
        self.cache, self.slope = cache, slope


#: Cache placeholder of an activation that ran inside the layer before it.
_IN_PRODUCER = "fused into the previous layer"


def _fusable_pair(layer: Module, nxt: Module | None) -> bool:
    """``layer`` can run ``nxt``, a LeakyReLU/ReLU of non-negative slope, in its own pass."""
    return (type(nxt) in (LeakyReLU, ReLU)
            and nxt.negative_slope >= 0 and hasattr(layer, "_forward_act") and layer._fusable())


def _has_params(layer: Module) -> bool:
    return any(m._params for _, m in layer.named_modules())


class Sequential(Module):
    """``y = f_L(... f_2(f_1(x)))``.

    Children are named ``"0"``, ``"1"``, ... so parameters are keyed ``"0.weight"``,
    ``"1.running_mean"``, ... exactly as PyTorch's ``nn.Sequential``. Adjacent producer and
    (Leaky)ReLU pairs are fused (see the module docstring) while :attr:`fuse` is true.
    """

    #: Fuse (Dense/Conv2d with bias, BatchNorm) + (Leaky)ReLU pairs; False runs each layer alone.
    fuse: bool = True

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
        """Run each layer (fused pairs as one step); the cache is the list of the layers' caches."""
        layers = self.layers
        caches: list[Any] = []
        i = 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if self.fuse and _fusable_pair(layer, nxt):
                x, c = layer._forward_act(x, train, nxt.negative_slope)
                caches += [_Fused(c, nxt.negative_slope), _IN_PRODUCER]
                i += 2
            else:
                x, c = layer.forward(x, train)
                caches.append(c)
                i += 1
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
        for i in range(len(layers) - 1, -1, -1):
            layer, c = layers[i], cache[i]
            if i < first or c is _IN_PRODUCER:
                continue
            kw: dict[str, Any] = {"param_grads": param_grads}
            if i == first and not input_grad and accepts_input_grad(layer):
                kw["input_grad"] = False
            if isinstance(c, _Fused):
                dy = layer._backward_act(dy, c.cache, c.slope, **kw)
            else:
                dy = layer.backward(dy, c, **kw)
        return dy if input_grad else None

    # ------------------------------------------------------------------ second order
    def forward_unfused(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, list[Any]]:
        """:meth:`forward` with every layer run alone (no fusion), so that each cache is the
        layer's own: the caches :meth:`jvp` and :meth:`backward_jvp` read. :meth:`backward`
        accepts them too."""
        caches: list[Any] = []
        for layer in self.layers:
            x, c = layer.forward_unfused(x, train)
            caches.append(c)
        return x, caches

    def jvp(self, x_dot: np.ndarray, cache: list[Any]) -> tuple[np.ndarray, list[Any]]:
        """Forward-mode chain rule: ``x_dot_l = f_l.jvp(x_dot_{l-1})``, from the first layer.

        Equations
        ---------
        ``y_dot = J_L ... J_2 J_1 x_dot`` with ``J_l = df_l/dx_{l-1}`` at the cached point.

        Parameters
        ----------
        x_dot : shape of x; cache : from :meth:`forward_unfused`

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
        cache : from :meth:`forward_unfused`; tcache : from :meth:`jvp`

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
        """The layers, after checking ``cache`` has one unfused entry per layer."""
        layers = self.layers
        where = f"{type(self).__name__}.{method}: argument 'cache'"
        if len(cache) != len(layers):
            raise ValueError(f"{where} expected one entry per layer ({len(layers)}), "
                             f"got {len(cache)}")
        if any(c is _IN_PRODUCER or isinstance(c, _Fused) for c in cache):
            raise ValueError(f"{where} holds fused layers' caches: run forward_unfused, "
                             "not forward, before the second-order methods")
        return layers
