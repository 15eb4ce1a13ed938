"""Improved precision and recall (Kynkaanniemi et al. 2019) with k-nearest-neighbour manifolds.

The manifold of a feature set ``Phi`` is the union of balls centred on its points, each with the
radius of the distance to its k-th nearest neighbour in ``Phi`` (itself excluded)::

    f(x, Phi) = 1 if ||x - phi|| <= ||phi - NN_k(phi, Phi)|| for some phi in Phi, else 0
    precision = mean over generated x of f(x, Phi_real)   (how many samples look real)
    recall    = mean over real x of f(x, Phi_generated)   (how much of the data is covered)

Distances are Euclidean in the classifier's features, computed in float64 by blocks, so memory
stays ``O(block * N)``. The paper uses k = 3.

Computed on the host in NumPy float64 whatever the array backend (:mod:`nanogan.backend`): inputs
may be arrays of any backend (CuPy's, the strict test arrays); they are copied to the host first.
"""

from __future__ import annotations

import numpy as np

from .._kernels._threads import matmul
from ..backend import to_numpy

__all__ = ["knn_radii", "manifold_coverage", "precision_recall"]


def _sq_dist(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = matmul(a, b.T)  # BLAS; on nanogan's threads when configured (nanogan.performance)
    d *= -2.0
    d += np.einsum("ij,ij->i", a, a)[:, None]
    d += b_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(to_numpy(x), dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"precision_recall: argument {name!r} expected shape (N, D), "
                         f"got {x.shape}")
    return x


def knn_radii(features: np.ndarray, k: int = 3, block: int = 1000) -> np.ndarray:
    """Distance of each point to its k-th nearest other point, (N,) float64.

    Parameters
    ----------
    features : (N, D) with N > k
    k : neighbour rank, >= 1
    """
    f = _as_features(features, "features")
    if not 1 <= k < len(f):
        raise ValueError(f"knn_radii: need 1 <= k < N, got k={k}, N={len(f)}")
    sq = np.einsum("ij,ij->i", f, f)
    radii = np.empty(len(f))
    for start in range(0, len(f), block):
        d = _sq_dist(f[start:start + block], f, sq)
        # the k+1 smallest include the point itself (distance 0)
        radii[start:start + block] = np.sqrt(np.partition(d, k, axis=1)[:, k])
    return radii


def manifold_coverage(x: np.ndarray, manifold: np.ndarray, radii: np.ndarray,
                      block: int = 1000) -> np.ndarray:
    """For each row of ``x`` (M, D): is it inside a ball of ``manifold`` (N, D) with ``radii``?

    Returns
    -------
    inside : bool (M,)
    """
    x, m = _as_features(x, "x"), _as_features(manifold, "manifold")
    if x.shape[1] != m.shape[1]:
        raise ValueError(f"manifold_coverage: x has {x.shape[1]} features, manifold "
                         f"{m.shape[1]}")
    r2 = np.asarray(to_numpy(radii), np.float64) ** 2
    sq = np.einsum("ij,ij->i", m, m)
    out = np.empty(len(x), dtype=bool)
    for start in range(0, len(x), block):
        xb = x[start:start + block]
        d = _sq_dist(xb, m, sq)
        # rounding of ||x||^2 + ||m||^2 - 2 x.m is relative to the norms: a point is inside its
        # own ball even when its computed distance to itself is not exactly 0
        tol = 1e-10 * (np.einsum("ij,ij->i", xb, xb)[:, None] + sq[None, :])
        out[start:start + block] = (d <= r2[None, :] + tol).any(axis=1)
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` (M, D) against ``real`` (N, D) features.

    Returns
    -------
    precision, recall : floats in [0, 1]
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    precision = manifold_coverage(fake, real, knn_radii(real, k)).mean()
    recall = manifold_coverage(real, fake, knn_radii(fake, k)).mean()
    return float(precision), float(recall)
