"""``Plan``: a ``Sequential`` run as a list of fused steps (see :mod:`nanogan.fast`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import xp
from ..layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    GradientReversal,
    LayerNorm,
    LeakyReLU,
    Maxout,
    Module,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
)
from . import steps as S

#: Layers whose output for a sample depends on that sample alone and on nothing random: a batch
#: of ``a`` and ``b`` stacked gives ``f(a)`` and ``f(b)`` stacked (not BatchNorm: its statistics
#: mix the samples; not Dropout: one pass would draw the masks in another order).
SAMPLEWISE = (Dense, Conv2d, ConvTranspose2d, LeakyReLU, ReLU, Tanh, Sigmoid, Maxout, LayerNorm,
              Flatten, Reshape, GradientReversal)


def samplewise(model: Module) -> bool:
    """True when every layer of ``model`` is in :data:`SAMPLEWISE` (exact types: a subclass may
    add batch behaviour), nested ``Sequential`` included."""
    if type(model) is Sequential:
        return all(samplewise(m) for m in model.layers)
    return type(model) in SAMPLEWISE


def _activation_slope(layer: Module | None) -> float | None:
    """The slope of a ``LeakyReLU``/``ReLU`` that a producer can apply in its own pass, else
    None (a negative slope flips the sign of the output, so its mask cannot be read from it)."""
    if type(layer) in (LeakyReLU, ReLU) and layer.negative_slope >= 0:
        return layer.negative_slope
    return None


def layouts(steps: list[S.Step]) -> list[str]:
    """The order of the images (:data:`~nanogan.fast.steps.NCHW` or ``CNHW``) each step takes and
    gives: its own, or for an elementwise step the one it is handed (the plan's input is
    NCHW)."""
    out, cur = [], S.NCHW
    for step in steps:
        cur = step.layout or cur
        out.append(cur)
    return out


def relayout(x: Any, have: str, want: str) -> Any:
    """``x`` (an image batch, or anything else: returned as it is) from the order ``have`` into
    ``want``: to CNHW as a transposed view (the steps read their input through views, or make it
    contiguous where they need to), to NCHW as a contiguous copy (none for one channel)."""
    if have == want or x is None or getattr(x, "ndim", 0) != 4:
        return x
    return S.nchw(x) if want == S.CNHW else xp.ascontiguousarray(S.nchw(x))


def plan_steps(layers: list[Module]) -> list[S.Step]:
    """The steps that run ``layers`` in order, each fusable producer merged with the activation
    after it."""
    steps: list[S.Step] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        slope = _activation_slope(layers[i + 1] if i + 1 < len(layers) else None)
        kind = type(layer)
        if kind is Dense and i + 1 < len(layers) and type(layers[i + 1]) is Tanh:
            step: S.Step = S.DenseStep(layer, tanh=True)
        elif kind is Dense:
            step = S.DenseStep(layer, slope if layer.bias is not None else None)
        elif kind is Conv2d:
            step = S.ConvStep(layer, slope)
        elif kind is ConvTranspose2d:
            step = S.ConvTransposeStep(layer)
        elif kind in (BatchNorm1d, BatchNorm2d) and slope is not None:
            step = S.BatchNormActStep(layer, slope)
        elif kind in (LeakyReLU, ReLU):
            step = S.ActivationStep(layer)
        elif kind is Tanh:
            step = S.TanhStep(layer)
        elif isinstance(layer, Sequential):
            step = S.LayerStep(Plan(layer))
        else:
            step = S.LayerStep(layer)
        steps.append(step)
        i += step.size
    return steps


class Plan(Module):
    """A :class:`~nanogan.layers.Sequential` compiled into fused steps, with its contract.

    ``plan.forward(x, train) -> (y, cache)`` and ``plan.backward(dy, cache, param_grads=...,
    input_grad=...)`` behave as the network's own (gradients are added into the network's
    ``grads``); a plan's cache is its own (one entry per step) and goes back to the same plan.
    The plan holds the network's layers, not copies: ``plan.params``, ``plan.grads`` and
    ``plan.state_dict()`` are the network's, under the same keys.

    Parameters
    ----------
    model : Sequential
    """

    def __init__(self, model: Sequential) -> None:
        super().__init__()
        if not isinstance(model, Sequential):
            raise TypeError(f"Plan: argument 'model' expected a Sequential, got "
                            f"{type(model).__name__}")
        self.model = model
        self._children = model._children  # the same layers: same params, grads, keys
        self.dtype = None
        self.steps = plan_steps(model.layers)
        #: the order of the images each step takes and gives (see :func:`layouts`)
        self.layouts = layouts(self.steps)
        #: whether :meth:`forward_pair` runs two batches as one (see :func:`samplewise`)
        self.stacks = samplewise(model)
        #: whether :meth:`split_pair` can cut a stacked pass's cache into the two batches' caches
        #: (every step's cache holds samples first: see :meth:`~nanogan.fast.steps.Step.rows`)
        self.splits = self.stacks and all(
            step.splits and layout == S.NCHW for step, layout in zip(self.steps, self.layouts))

    def __repr__(self) -> str:
        return "Plan(\n" + "\n".join(f"  {s!r}" for s in self.steps) + "\n)"

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, list[Any]]:
        """Run each step, the images turned into the order it takes where it differs from the
        last one's; the cache is the list of the steps' caches. Takes and gives NCHW."""
        caches: list[Any] = []
        have = S.NCHW
        for step, want in zip(self.steps, self.layouts):
            x, have = relayout(x, have, want), want
            x, c = step.forward(x, train)
            caches.append(c)
        return relayout(x, have, S.NCHW), caches

    def forward_pair(self, a: np.ndarray, b: np.ndarray, train: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(f(a), f(b), cache)``: the discriminator on the real and the fake batch.

        When every layer treats each sample on its own (:attr:`stacks`) and the batches agree in
        shape and dtype, they run as one batch of ``Na + Nb`` samples: one product per layer
        instead of two, the same outputs up to the order of BLAS's sums, and in
        :meth:`backward_pair` one weight-gradient product over both batches (the sum of the two
        passes' gradients, added in another order). Otherwise: two passes.
        """
        if self.stacks and a.shape[1:] == b.shape[1:] and a.dtype == b.dtype:
            y, cache = self.forward(xp.concatenate([a, b]), train)
            n = a.shape[0]
            return y[:n], y[n:], (True, cache, n)
        ya, ca = self.forward(a, train)
        yb, cb = self.forward(b, train)
        return ya, yb, (False, ca, cb)

    def backward_pair(self, da: np.ndarray, db: np.ndarray, cache: tuple, *,
                      param_grads: bool = True, input_grad: bool = True,
                      accumulate: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The backward pass of :meth:`forward_pair`: gradients of both batches added into the
        network's ``grads`` (written, with ``accumulate=False``: see :meth:`backward`); returns
        ``(dL/da, dL/db)`` (``(None, None)`` without ``input_grad``)."""
        stacked, c1, c2 = cache
        if not stacked:
            return (self.backward(da, c1, param_grads=param_grads, input_grad=input_grad,
                                  accumulate=accumulate),
                    self.backward(db, c2, param_grads=param_grads, input_grad=input_grad))
        dx = self.backward(xp.concatenate([da, db]), c1, param_grads=param_grads,
                           input_grad=input_grad, accumulate=accumulate)
        return (None, None) if dx is None else (dx[:c2], dx[c2:])

    def split_pair(self, cache: tuple) -> tuple[list[Any], list[Any]]:
        """The caches of ``f(a)`` and of ``f(b)`` alone, from :meth:`forward_pair`'s: each one
        goes to :meth:`backward` as if its batch had gone forward by itself.

        The generator's two batches of an iteration, ``G(z1)`` for the discriminator's update and
        ``G(z2)`` for its own, go forward as one batch of ``2N`` (G's parameters do not change in
        between; see :meth:`nanogan.GAN.step`), and only the second is sent back. A stacked
        pass's cache is cut by samples (views, nothing copied), which needs :attr:`splits`.
        """
        stacked, c1, c2 = cache
        if not stacked:
            return c1, c2
        if not self.splits:
            raise ValueError("Plan.split_pair: this plan's steps cannot cut their caches by "
                             "samples (Plan.splits is False)")
        n = c2
        return ([s.rows(c, 0, n) for s, c in zip(self.steps, c1)],
                [s.rows(c, n, None) for s, c in zip(self.steps, c1)])

    # second order (gradient penalties) runs on the plain layers, with their own caches
    def jvp(self, x_dot: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        """The network's :meth:`~nanogan.layers.Sequential.jvp` (``cache`` from the network's own
        ``plan.model.forward``, one entry per layer; a fused cache is refused)."""
        return self.model.jvp(x_dot, cache)

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: Any, tcache: Any, *,
                     param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The network's :meth:`~nanogan.layers.Sequential.backward_jvp`."""
        return self.model.backward_jvp(dy, dy_dot, cache, tcache, param_grads=param_grads,
                                       input_grad=input_grad)

    def backward(self, dy: np.ndarray, cache: list[Any], *, param_grads: bool = True,
                 input_grad: bool = True, accumulate: bool = True) -> np.ndarray | None:
        """The steps' backward passes in reverse order, as ``Sequential.backward``: with
        ``input_grad=False`` the steps before the first one with parameters are skipped and that
        one computes no input gradient (None is returned).

        ``accumulate=False`` (with ``param_grads``): the pass starts the gradients instead of
        adding to them. Every parameter's gradient is written, equal to what ``zero_grad()``
        then ``backward(...)`` leaves, without the zero-fill and one addition per parameter (a
        Dense weight gradient is its product's output array)."""
        steps = self.steps
        if not isinstance(cache, list) or len(cache) != len(steps):
            raise ValueError(f"Plan.backward: argument 'cache' expected the {len(steps)}-entry "
                             "list of this plan's forward pass")
        if not input_grad and not param_grads:
            return None
        first = 0 if input_grad or not param_grads else next(
            (i for i, s in enumerate(steps) if s.has_params), len(steps))
        have = S.NCHW
        for i in range(len(steps) - 1, first - 1, -1):
            dy, have = relayout(dy, have, self.layouts[i]), self.layouts[i]
            dy = steps[i].backward(dy, cache[i], param_grads=param_grads,
                                   input_grad=input_grad or i > first, accumulate=accumulate)
        return relayout(dy, have, S.NCHW) if input_grad else None
