"""Unbiased maximum mean discrepancy (Gretton et al. 2012) between two feature sets.

For samples ``x_1..x_m ~ P`` and ``y_1..y_n ~ Q`` and a kernel ``k``::

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
              - 2/(mn) sum_{i, j} k(x_i, y_j)

is an unbiased estimate of ``MMD^2(P, Q)``: its expectation is 0 when P = Q (so single estimates
can be negative). Kernels:

* ``"poly"``: ``k(x, y) = (x . y / D + 1)^3``, the kernel of the Kernel Inception Distance
  (Binkowski et al. 2018); needs no bandwidth.
* ``"rbf"``: ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``; ``sigma`` defaults to the median
  pairwise distance of the pooled samples.

:func:`subset_mmd2` averages the estimate over random subsets (KID's protocol: 100 subsets of
1,000), which bounds the memory and gives a standard deviation.

Computed on the host in NumPy float64 whatever the array backend (:mod:`nanogan.backend`): inputs
may be arrays of any backend (CuPy's, the strict test arrays); they are copied to the host first.
(The squared distances also serve the MMD generator loss on the device.)
"""

from __future__ import annotations

import numpy as np

from ..backend import array_namespace, to_numpy

__all__ = ["kernel_matrix", "median_bandwidth", "mmd2_unbiased", "subset_mmd2"]


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||^2`` (M, N), clipped at 0, on the arrays' own backend (the MMD loss of
    :mod:`nanogan.mmd_loss` calls it on device arrays)."""
    ns = array_namespace(a)
    d = -2.0 * (a @ b.T)
    d += ns.einsum("ij,ij->i", a, a)[:, None]
    d += ns.einsum("ij,ij->i", b, b)[None, :]
    return ns.maximum(d, 0.0, out=d)


def median_bandwidth(x: np.ndarray, y: np.ndarray, max_points: int = 1000) -> float:
    """Median pairwise distance of the pooled samples (the first ``max_points`` of each)."""
    z = np.concatenate([np.asarray(to_numpy(x), np.float64)[:max_points],
                        np.asarray(to_numpy(y), np.float64)[:max_points]])
    d = np.sqrt(_sq_dist(z, z)[np.triu_indices(len(z), 1)])
    med = float(np.median(d)) if d.size else 1.0
    return med if med > 0 else 1.0


def kernel_matrix(a: np.ndarray, b: np.ndarray, kernel: str = "poly",
                  sigma: float | None = None) -> np.ndarray:
    """``K[i, j] = k(a_i, b_j)``, float64 (len(a), len(b)).

    Parameters
    ----------
    a : (M, D); b : (N, D)
    kernel : "poly" or "rbf"
    sigma : rbf bandwidth (required for "rbf")
    """
    a, b = np.asarray(to_numpy(a), np.float64), np.asarray(to_numpy(b), np.float64)
    if kernel == "poly":
        return (a @ b.T / a.shape[1] + 1.0) ** 3
    if kernel == "rbf":
        if sigma is None or not sigma > 0:
            raise ValueError(f"kernel_matrix: the rbf kernel needs sigma > 0, got {sigma}")
        return np.exp(_sq_dist(a, b) * (-0.5 / sigma**2))
    raise ValueError(f"kernel_matrix: kernel must be 'poly' or 'rbf', got {kernel!r}")


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, kernel: str = "poly",
                  sigma: float | None = None) -> float:
    """The unbiased estimate ``MMD^2_u`` between ``x`` (M, D) and ``y`` (N, D), M, N >= 2.

    ``sigma`` (rbf only) defaults to :func:`median_bandwidth` of ``x`` and ``y``.
    """
    x, y = np.asarray(to_numpy(x), np.float64), np.asarray(to_numpy(y), np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd2_unbiased: expected x (M >= 2, D) and y (N >= 2, D), got "
                         f"{x.shape} and {y.shape}")
    if kernel == "rbf" and sigma is None:
        sigma = median_bandwidth(x, y)
    m, n = len(x), len(y)
    kxx = kernel_matrix(x, x, kernel, sigma)
    kyy = kernel_matrix(y, y, kernel, sigma)
    kxy = kernel_matrix(x, y, kernel, sigma)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def subset_mmd2(x: np.ndarray, y: np.ndarray, kernel: str = "poly", n_subsets: int = 100,
                subset_size: int = 1000, rng: np.random.Generator | int | None = 0,
                sigma: float | None = None) -> tuple[float, float]:
    """Mean and standard deviation of :func:`mmd2_unbiased` over random subsets (KID's protocol).

    Each subset draws ``min(subset_size, len(x), len(y))`` rows of ``x`` and of ``y`` without
    replacement. Returns ``(mean, std)``.
    """
    x, y = np.asarray(to_numpy(x), np.float64), np.asarray(to_numpy(y), np.float64)
    gen = np.random.default_rng(rng)
    size = min(subset_size, len(x), len(y))
    if kernel == "rbf" and sigma is None:
        sigma = median_bandwidth(x, y)
    vals = [mmd2_unbiased(x[gen.choice(len(x), size, replace=False)],
                          y[gen.choice(len(y), size, replace=False)], kernel, sigma)
            for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals))
