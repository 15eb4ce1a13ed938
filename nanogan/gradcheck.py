"""Central-difference gradient checking, for nanogan's tests and for learners' own layers.

The analytic gradient of ``L = sum(y * dy)`` (``dy`` a fixed random array, so every output matters)
is compared with the numerical one::

    dL/dtheta_i ~ (L(theta + h e_i) - L(theta - h e_i)) / (2 h)

and summarised by the relative error ``||a - n|| / max(||a|| + ||n||, tiny)``. In float64 with
``h = 1e-6`` a correct backward pass gives about 1e-8 or less; a wrong one gives about 1e-1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backend import asarray, to_numpy, xp
from .layers.base import Module


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error ``||a - b|| / max(||a|| + ||b||, tiny)`` of two arrays of the same shape.

    0 when both are zero (or equal); ``inf`` when either holds a NaN or the two differ in an
    infinite entry, so that a non-finite result never passes for agreement. Equal infinities
    (same position, same sign) count as agreement and the finite entries are compared.

    Parameters
    ----------
    a, b : arrays of the same shape (any dtype convertible to float64), on any backend (compared
        on the host)

    Returns
    -------
    error : float in [0, 1], or ``inf``

    Examples
    --------
    >>> rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    >>> round(rel_error(np.array([1.0, 0.0]), np.array([0.0, 1.0])), 4)
    0.7071
    >>> rel_error(np.array([np.nan]), np.array([np.nan]))
    inf
    """
    a, b = np.asarray(to_numpy(a), np.float64), np.asarray(to_numpy(b), np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        return float("inf")
    inf_a, inf_b = np.isinf(a), np.isinf(b)
    if inf_a.any() or inf_b.any():
        if not np.array_equal(a[inf_a | inf_b], b[inf_a | inf_b]):
            return float("inf")
        a, b = a[~inf_a], b[~inf_b]
    # scale first so that the norms of huge or tiny arrays neither overflow nor underflow
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    if scale == 0.0:
        return 0.0
    a, b = a / scale, b / scale
    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x`` (perturbed in place).

    Parameters
    ----------
    f : callable with no arguments that reads ``x`` and returns a float
    x : array of the active backend, any shape, modified in place and restored
    h : step

    Returns
    -------
    grad : NumPy array, shape of ``x``
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not xp.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def gradcheck(module: Module, x: np.ndarray, *, dy: np.ndarray | None = None, train: bool = True,
              h: float = 1e-6, rng: np.random.Generator | int | None = 0,
              params: bool = True) -> dict[str, float]:
    """Check ``module.backward`` against central differences, in float64.

    Parameters
    ----------
    module : a nanogan Module built with ``dtype=np.float64``
    x : input, shape the module accepts (converted to float64)
    dy : upstream gradient, shape of the output; random normal if None
    train : forward mode to check
    params : also check every parameter gradient

    Returns
    -------
    errors : dict mapping ``"x"`` and each parameter name to its relative error

    Examples
    --------
    >>> from nanogan import Dense, gradcheck
    >>> import numpy as np
    >>> errs = gradcheck(Dense(3, 2, dtype=np.float64, rng=0), np.ones((4, 3)))
    >>> max(errs.values()) < 1e-7
    True
    """
    x = xp.array(x, dtype=np.float64, copy=True, order="C")  # on the active backend
    gen = np.random.default_rng(rng)
    y, cache = module.forward(x, train)
    if dy is None:
        dy = gen.standard_normal(y.shape)
    dy = asarray(dy, dtype=np.float64)  # drawn on the host, moved to the backend
    if dy.shape != y.shape:
        raise ValueError(f"gradcheck: dy expected shape {y.shape}, got {dy.shape}")

    module.zero_grad()
    dx = module.backward(dy, cache)
    analytic = {"x": dx}
    if params:
        analytic.update({k: g.copy() for k, g in module.grads.items()})

    def loss() -> float:
        return float(xp.sum(module.forward(x, train)[0] * dy))

    errors = {"x": rel_error(dx, numerical_gradient(loss, x, h))}
    if params:
        for name, p in module.params.items():
            errors[name] = rel_error(analytic[name], numerical_gradient(loss, p, h))
    return errors
