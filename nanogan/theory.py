"""Goodfellow et al. (2014), Section 4, on a grid: the optimal discriminator, C(G) and the JSD.

For densities ``p_data`` and ``p_g`` on the real line, tabulated on an evenly spaced grid ``x``
(wide enough that both are negligible at its ends), these functions evaluate the paper's
quantities by the trapezoidal rule:

* **Proposition 1**: for a fixed G the discriminator maximising
  ``V(D, G) = E_{p_data}[log D(x)] + E_{p_g}[log(1 - D(x))]`` is
  ``D*_G(x) = p_data(x) / (p_data(x) + p_g(x))`` (:func:`optimal_discriminator`).
* **Theorem 1**: the virtual training criterion ``C(G) = max_D V(D, G) = V(D*_G, G)``
  (:func:`virtual_criterion`) equals ``-log 4 + 2 JSD(p_data || p_g)`` (:func:`jsd`), so its
  global minimum ``-log 4`` is reached exactly when ``p_g = p_data``.

:func:`value` evaluates ``V(D, G)`` for any discriminator given as probabilities on the grid (e.g. a
trained network's ``sigma(D(x))``), which Proposition 1 says is at most ``C(G)``.
:func:`histogram_density` turns samples of a generator without a closed-form density into a
density on the grid. Everything is float64; ``0 log 0`` is taken as 0.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LOG4", "histogram_density", "jsd", "kl", "optimal_discriminator", "trapezoid", "value",
    "value_logits", "virtual_criterion",
]

#: ``log 4``: ``-C(G)`` at the optimum, and twice the JSD's upper bound ``log 2``.
LOG4: float = math.log(4.0)


def _grid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.diff(x) > 0):
        raise ValueError(f"argument 'x' expected an increasing 1-D grid of at least 2 points, got "
                         f"shape {x.shape}")
    return x


def _density(p: np.ndarray, x: np.ndarray, arg: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.shape != x.shape:
        raise ValueError(f"argument {arg!r} expected shape {x.shape} (the grid's), got {p.shape}")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError(f"argument {arg!r} must be a finite, non-negative density")
    return p


def trapezoid(f: np.ndarray, x: np.ndarray) -> float:
    """``int f(x) dx`` by the trapezoidal rule on the grid ``x`` (shape ``(G,)``)."""
    x = _grid(x)
    f = np.asarray(f, dtype=np.float64)
    return float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(x)))


def _xlogy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a log b`` with ``0 log 0 = 0`` (and ``0 log b = 0`` for any b)."""
    out = np.zeros_like(a)
    nz = a > 0
    out[nz] = a[nz] * np.log(b[nz])
    return out


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """Proposition 1: ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``.

    Parameters
    ----------
    p_data, p_g : ndarray, same shape, the two densities at the same points

    Returns
    -------
    d_star : ndarray, that shape; 1/2 where both densities are 0 (D* is arbitrary there)
    """
    p_data = np.asarray(p_data, dtype=np.float64)
    p_g = np.asarray(p_g, dtype=np.float64)
    s = p_data + p_g
    return np.divide(p_data, s, out=np.full(s.shape, 0.5), where=s > 0)


def kl(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """``KL(p || q) = int p log(p / q) dx`` on the grid (infinite if q = 0 where p > 0)."""
    x = _grid(x)
    p, q = _density(p, x, "p"), _density(q, x, "q")
    if np.any((p > 0) & (q == 0)):
        return math.inf
    return trapezoid(_xlogy(p, p) - _xlogy(p, q), x)


def jsd(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats, ``0 <= JSD <= log 2``.

    Parameters
    ----------
    p, q : ndarray, shape ``(G,)``, densities on the grid
    x : ndarray, shape ``(G,)``, increasing grid

    Equations
    ---------
    ::

        M   = (p + q) / 2
        JSD = KL(p || M) / 2 + KL(q || M) / 2
    """
    x = _grid(x)
    p, q = _density(p, x, "p"), _density(q, x, "q")
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m, x) + 0.5 * kl(q, m, x)


def value(d: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """The value function ``V(D, G)`` for a discriminator given as probabilities on the grid.

    Parameters
    ----------
    d : ndarray, shape ``(G,)``, ``D(x)`` in [0, 1] (e.g. ``sigmoid`` of a network's logits)
    p_data, p_g : ndarray, shape ``(G,)``, densities on the grid
    x : ndarray, shape ``(G,)``, increasing grid

    Equations
    ---------
    ::

        V(D, G) = int p_data(x) log D(x) + p_g(x) log(1 - D(x)) dx
    """
    x = _grid(x)
    p_data, p_g = _density(p_data, x, "p_data"), _density(p_g, x, "p_g")
    d = np.asarray(d, dtype=np.float64)
    if d.shape != x.shape:
        raise ValueError(f"argument 'd' expected shape {x.shape} (the grid's), got {d.shape}")
    with np.errstate(divide="ignore"):
        return trapezoid(_xlogy(p_data, d) + _xlogy(p_g, 1.0 - d), x)


def value_logits(s: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """``V(D, G)`` for a discriminator given as logits ``s`` on the grid (``D = sigma(s)``).

    Preferred over :func:`value` for a network's output: ``log sigma(s)`` is computed as
    ``-softplus(-s)``, finite where ``sigma(s)`` rounds to 0 or 1.

    Equations
    ---------
    ::

        V(D, G) = int -p_data(x) softplus(-s(x)) - p_g(x) softplus(s(x)) dx
    """
    x = _grid(x)
    p_data, p_g = _density(p_data, x, "p_data"), _density(p_g, x, "p_g")
    s = np.asarray(s, dtype=np.float64)
    if s.shape != x.shape:
        raise ValueError(f"argument 's' expected shape {x.shape} (the grid's), got {s.shape}")
    softplus = lambda v: np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))  # noqa: E731
    return trapezoid(-p_data * softplus(-s) - p_g * softplus(s), x)


def virtual_criterion(p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """``C(G) = V(D*_G, G)``, evaluated directly from D* (not through the JSD).

    Equations
    ---------
    ::

        C(G) = int p_data log(p_data / (p_data + p_g)) + p_g log(p_g / (p_data + p_g)) dx
             = -log 4 + 2 JSD(p_data || p_g)                  (Theorem 1)
    """
    x = _grid(x)
    p_data, p_g = _density(p_data, x, "p_data"), _density(p_g, x, "p_g")
    s = p_data + p_g  # p log(p / s) as p log p - p log s: no 0 * log(0) from an underflowed D*
    return trapezoid(_xlogy(p_data, p_data) - _xlogy(p_data, s)
                     + _xlogy(p_g, p_g) - _xlogy(p_g, s), x)


def histogram_density(samples: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A density on the grid from 1-D samples: a histogram whose bins are centred on the grid
    points (mass outside the grid is dropped), normalised by the number of samples.

    Parameters
    ----------
    samples : ndarray, shape ``(n,)`` or ``(n, 1)``
    x : ndarray, shape ``(G,)``, evenly spaced grid

    Returns
    -------
    p : ndarray, shape ``(G,)``, float64
    """
    x = _grid(x)
    s = np.asarray(samples, dtype=np.float64).reshape(-1)
    h = x[1] - x[0]
    edges = np.concatenate([x - h / 2, [x[-1] + h / 2]])
    counts, _ = np.histogram(s, bins=edges)
    return counts / (s.size * h)
