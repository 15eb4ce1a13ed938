"""Frechet distance between Gaussians fitted to two feature sets (FID; Heusel et al. 2017).

With ``mu, Sigma`` the mean and covariance (``ddof=1``) of each set's features::

    FID = ||mu_1 - mu_2||^2 + tr(Sigma_1) + tr(Sigma_2) - 2 tr((Sigma_1 Sigma_2)^(1/2))

``tr((S1 S2)^(1/2))`` is computed as ``sum_i sqrt(lambda_i)`` over the eigenvalues of the symmetric
positive semi-definite ``S1^(1/2) S2 S1^(1/2)`` (which has the same eigenvalues as ``S1 S2``), in
float64 with ``numpy.linalg.eigh``: no complex square roots, no SciPy. "FID-MNIST" in nanogan is
this distance in the 128 penultimate features of the MNIST classifier
(:mod:`nanogan.metrics.classifier`), not in Inception-v3's features: its values are not
comparable with ImageNet FIDs.

Computed on the host in NumPy float64 whatever the array backend (:mod:`nanogan.backend`): inputs
may be arrays of any backend (CuPy's, the strict test arrays); they are copied to the host first.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy

__all__ = ["fid", "frechet_distance", "gaussian_stats"]


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of ``features`` (N, D), float64, ``ddof=1``."""
    f = np.asarray(to_numpy(features), dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_stats: expected features of shape (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    Parameters
    ----------
    mu1, mu2 : (D,)
    sigma1, sigma2 : (D, D) symmetric positive semi-definite

    Returns
    -------
    d : float >= 0 (clipped at 0 against rounding)
    """
    mu1, mu2 = np.asarray(to_numpy(mu1), np.float64), np.asarray(to_numpy(mu2), np.float64)
    s1, s2 = np.asarray(to_numpy(sigma1), np.float64), np.asarray(to_numpy(sigma2), np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes mu1 {mu1.shape}, sigma1 {s1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {s2.shape} do not agree")
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid(features1: np.ndarray, features2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))
