"""Gradient penalties on a critic: WGAN-GP (Gulrajani et al. 2017) and R1 (Mescheder et al. 2018).

Both penalise the per-sample input gradient of the critic ``D``::

    g_n = dD(x_n)/dx_n          (the rows of  dS/dx,  S = sum_n D(x_n))
    gradient_penalty  P = weight * mean_n (||g_n|| - target)^2
    r1_penalty        P = gamma / 2 * mean_n ||g_n||^2

and the critic's step needs ``dP/dtheta``: the gradient of a function of a gradient. Autograd
frameworks get it by differentiating the graph of the backward pass. nanogan's layers do it by
hand, in forward mode over their backward pass (see ``Module.jvp`` and ``Module.backward_jvp``).

The derivation. Let ``v = dP/dg`` (shape of ``x``). By the chain rule and the symmetry of second
derivatives::

    dP/dtheta = sum_i v_i d g_i/dtheta = d/dtheta (v . dS/dx) = d/de [dS/dtheta](x + e v) at e = 0

so ``dP/dtheta`` is the rate at which the ordinary parameter gradient of ``S`` changes when the
input moves along ``v``. Four passes compute it::

    1. y, cache   = D.forward(x)                            forward, every layer's cache
    2. g          = D.backward(1, cache)                    first order: dS/dx (per sample)
       P, v       = penalty(g), dP/dg                       (v: as in the formulas below)
    3. _, tcache  = D.jvp(v, cache)                         how each layer's input moves: x_dot_l
    4. D.backward_jvp(1, 0, cache, tcache)                  how each dS/dtheta moves: ADDED into
                                                            D.grads (dy = 1 is fixed: dy_dot = 0)

The same numbers as PyTorch's ``torch.autograd.grad(D(x).sum(), x, create_graph=True)`` followed by
a backward of the penalty (reverse over reverse): both are ``v^T (d^2 S / dx dtheta)``. (The
swap of derivatives needs each layer's backward to be the exact gradient of its forward; a layer
whose backward is deliberately not, like ``GradientReversal``, has no second-order backward.)

The critic runs in training mode (``train=True``), as in its own step, through its plain layers (a
fused plan of :mod:`nanogan.fast` is run as the network it was compiled from: same parameters,
same gradients). A critic containing BatchNorm is refused: through batch statistics ``D(x_n)``
depends on every sample, so the per-sample gradient the penalties are defined by does not exist
(the WGAN-GP paper uses LayerNorm instead).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backend import asarray, xp
from .layers.base import Module, _fmt_shape, as_rng
from .layers.batchnorm import _BatchNorm

__all__ = ["gradient_penalty", "input_gradient", "interpolate", "r1_penalty"]


def interpolate(x_real: np.ndarray, x_fake: np.ndarray,
                rng: np.random.Generator | int | None = None) -> np.ndarray:
    """WGAN-GP's random points on the lines between real and fake samples.

    Equations
    ---------
    ``x_hat_n = eps_n x_real_n + (1 - eps_n) x_fake_n``, ``eps_n ~ U[0, 1)``, one per sample.

    Parameters
    ----------
    x_real, x_fake : (N, *), the same shape and a floating dtype
    rng : numpy Generator, int seed or None, the source of ``eps``

    Returns
    -------
    x_hat : (N, *), the dtype of ``x_real``
    """
    x_real, x_fake = asarray(x_real), asarray(x_fake)
    if x_real.shape != x_fake.shape or x_real.ndim < 1:
        raise ValueError(f"interpolate: arguments 'x_real' and 'x_fake' expected the same shape "
                         f"(N, *), got {_fmt_shape(x_real.shape)} and "
                         f"{_fmt_shape(x_fake.shape)}")
    if x_real.dtype.kind != "f" or x_fake.dtype.kind != "f":
        raise ValueError(f"interpolate: expected floating-point arrays, got {x_real.dtype} "
                         f"and {x_fake.dtype}")
    eps = as_rng(rng).random((x_real.shape[0],) + (1,) * (x_real.ndim - 1))
    eps = asarray(eps.astype(x_real.dtype))  # drawn on the host, moved to the backend
    return (x_fake + eps * (x_real - x_fake)).astype(x_real.dtype, copy=False)


def _plain(D: Module) -> Module:
    """The network of a fused :class:`nanogan.fast.Plan` (its caches are the fused steps'),
    anything else as it is."""
    from .fast import Plan

    return D.model if isinstance(D, Plan) else D


def _check_critic(D: Module, caller: str) -> None:
    """ValueError for BatchNorm anywhere in ``D``; NotImplementedError for a layer without a
    second-order backward."""
    if not isinstance(D, Module):
        raise TypeError(f"{caller}: D must be a nanogan Module, got {type(D).__name__}")
    D = _plain(D)
    for name, m in D.named_modules():
        where = f"layer {name.rstrip('.')!r} " if name else ""
        if isinstance(m, _BatchNorm):
            raise ValueError(
                f"{caller}: the critic's {where}({type(m).__name__}) mixes the samples of a "
                "batch through its batch statistics, so the per-sample gradient dD(x_n)/dx_n "
                "the penalty is defined by does not exist; use LayerNorm (or no normalisation) "
                "in the critic")
        if type(m).jvp is Module.jvp or type(m).backward_jvp is Module.backward_jvp:
            raise NotImplementedError(
                f"{caller}: the critic's {where}({type(m).__name__}) has no second-order "
                f"backward (jvp/backward_jvp); layers with one: {', '.join(_second_order())}")


def _second_order() -> list[str]:
    """The names of nanogan's layers that have a second-order backward."""
    from . import layers

    return sorted(name for name in layers.__all__
                  if isinstance(cls := getattr(layers, name), type) and issubclass(cls, Module)
                  and cls.jvp is not Module.jvp)


def input_gradient(D: Module, x: np.ndarray) -> np.ndarray:
    """Per-sample input gradients ``g_n = dD(x_n)/dx_n``: ``dS/dx`` for ``S = sum D(x)``, as
    ``torch.autograd.grad(D(x).sum(), x)``. Leaves ``D.grads`` unchanged.

    Parameters
    ----------
    D : the critic (a nanogan Module); x : (N, *) its input

    Returns
    -------
    g : shape of x
    """
    D = _plain(D)
    y, cache = D.forward(x, True)
    return D.backward(xp.ones_like(y), cache, param_grads=False)


def _penalize(D: Module, x: np.ndarray,
              penalty: Callable[[np.ndarray], tuple[float, np.ndarray]], caller: str) -> float:
    """The four passes of the module docstring: ``penalty(g) -> (P, dP/dg)``; ADDS dP/dtheta
    into ``D.grads``; returns ``P``."""
    x = asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{caller}: argument 'x' expected a batch (N, *) with N >= 1, got shape "
                         f"{_fmt_shape(x.shape)}")
    D = _plain(D)
    y, cache = D.forward(x, True)
    ones = xp.ones_like(y)
    g = D.backward(ones, cache, param_grads=False)
    value, v = penalty(g)
    _, tcache = D.jvp(v.astype(g.dtype, copy=False), cache)
    D.backward_jvp(ones, xp.zeros_like(y), cache, tcache, input_grad=False)
    return float(value)


def _norms(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``g`` as (N, K) rows and the per-sample 2-norms ``||g_n||`` as (N, 1)."""
    g2 = g.reshape(g.shape[0], -1)
    return g2, xp.sqrt((g2 * g2).sum(axis=1, keepdims=True))


def gradient_penalty(D: Module, x: np.ndarray, weight: float = 10.0,
                     target: float = 1.0) -> float:
    """WGAN-GP's penalty on the critic's input-gradient norms; ADDS its gradient into ``D.grads``.

    Equations
    ---------
    ::

        P     = weight * mean_n (||g_n|| - target)^2          g_n = dD(x_n)/dx_n, all elements
        dP/dg_n = weight * 2 (||g_n|| - target) / N * g_n / ||g_n||   (0 where ||g_n|| = 0)

    then ``D.grads += dP/dtheta`` by the four passes of the module docstring.

    Parameters
    ----------
    D : the critic, a nanogan Module without BatchNorm (see the module docstring)
    x : (N, *) the points to penalise: for WGAN-GP the interpolates of :func:`interpolate`
    weight : the penalty coefficient (``lambda``, 10 in the paper)
    target : the norm the gradients are pulled to (1 for the 1-Lipschitz critic)

    Returns
    -------
    value : float, ``P``
    """
    _check_critic(D, "gradient_penalty")

    def penalty(g: np.ndarray) -> tuple[float, np.ndarray]:
        g2, n = _norms(g)
        N = g.shape[0]
        coef = weight * 2.0 * (n - target) / N
        pos = n > 0  # (xp.where, not divide(where=...): CuPy's ufuncs lack that argument)
        coef = xp.where(pos, coef / xp.where(pos, n, 1), 0).astype(coef.dtype, copy=False)
        return weight * float(xp.mean((n - target) ** 2)), (coef * g2).reshape(g.shape)

    return _penalize(D, x, penalty, "gradient_penalty")


def r1_penalty(D: Module, x: np.ndarray, gamma: float = 10.0) -> float:
    """R1: the squared input-gradient norm on (usually real) data; ADDS its gradient into
    ``D.grads``.

    Equations
    ---------
    ::

        P       = gamma / 2 * mean_n ||g_n||^2          g_n = dD(x_n)/dx_n, all elements
        dP/dg_n = gamma / N * g_n

    then ``D.grads += dP/dtheta`` by the four passes of the module docstring.

    Parameters
    ----------
    D : the critic, a nanogan Module without BatchNorm
    x : (N, *) the points to penalise (the real batch, in Mescheder et al.)
    gamma : the penalty coefficient

    Returns
    -------
    value : float, ``P``
    """
    _check_critic(D, "r1_penalty")

    def penalty(g: np.ndarray) -> tuple[float, np.ndarray]:
        _, n = _norms(g)
        return gamma / 2 * float(xp.mean(n * n)), gamma / g.shape[0] * g

    return _penalize(D, x, penalty, "r1_penalty")
