"""Parzen-window log-likelihood: the protocol of Goodfellow et al. (2014), Table 1.

A Gaussian kernel density estimate is fitted to generated samples ``mu_1 .. mu_M`` (D dims)::

    p(x) = 1/M sum_i N(x; mu_i, sigma^2 I)
    log p(x) = logmeanexp_i( -||x - mu_i||^2 / (2 sigma^2) ) - D/2 log(2 pi sigma^2)

and the mean log-likelihood of held-out images is reported with its standard error
``std / sqrt(N)``. The bandwidth ``sigma`` is the one of ``logspace(-1, 0, 10)`` that gives the
highest mean log-likelihood on a validation set. For MNIST (pixels in [0, 1], 784 dims) the paper
uses 10,000 samples, validation images ``train[50000:51000]`` and the 10,000 test images.

Everything is computed in float64: squared distances by one matrix product per batch
(``||x||^2 + ||mu||^2 - 2 x . mu``, clipped at 0) and the log-mean-exp shifted by its maximum, so
nothing overflows or underflows whatever sigma is.

Computed on the host in NumPy float64 whatever the array backend (:mod:`nanogan.backend`): inputs
may be arrays of any backend (CuPy's, the strict test arrays); they are copied to the host first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._kernels._threads import matmul
from ..backend import to_numpy

__all__ = [
    "ParzenResult", "mnist_parzen", "parzen_evaluate", "parzen_log_likelihood", "select_sigma",
]

#: The bandwidths searched by the 2014 protocol.
SIGMAS = np.logspace(-1.0, 0.0, 10)


def _as_2d(a: Any, name: str) -> np.ndarray:
    a = np.asarray(to_numpy(a))
    if a.dtype.kind not in "fiu":
        raise ValueError(f"parzen: argument {name!r} must be numeric, got dtype {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"parzen: argument {name!r} expected shape (N, D) or (N, C, H, W), "
                         f"got {a.shape}")
    return np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float64)


def _sq_distances(x: np.ndarray, x_sq: np.ndarray, mu: np.ndarray,
                  mu_sq: np.ndarray) -> np.ndarray:
    """``||x_n - mu_i||^2``, (B, M), clipped at 0 against rounding."""
    d = matmul(x, mu.T)  # BLAS; on nanogan's threads when configured (nanogan.performance)
    d *= -2.0
    d += x_sq[:, None]
    d += mu_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _log_mean_exp_rows(a: np.ndarray) -> np.ndarray:
    """``log(mean(exp(a), axis=1))`` with the row maximum shifted out. a : (B, M) -> (B,)"""
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).mean(axis=1))


def _log_likelihoods(samples: np.ndarray, x: np.ndarray, sigmas: np.ndarray,
                     batch_size: int) -> np.ndarray:
    """Per-example log-likelihoods under each bandwidth, (len(sigmas), N)."""
    mu_sq = np.einsum("ij,ij->i", samples, samples)
    x_sq = np.einsum("ij,ij->i", x, x)
    dim = samples.shape[1]
    out = np.empty((len(sigmas), len(x)))
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        d2 = _sq_distances(x[sl], x_sq[sl], samples, mu_sq)
        for k, sigma in enumerate(sigmas):
            out[k, sl] = (_log_mean_exp_rows(d2 * (-0.5 / sigma**2))
                          - dim * np.log(sigma * np.sqrt(2.0 * np.pi)))
    return out


def parzen_log_likelihood(samples: np.ndarray, x: np.ndarray, sigma: float, *,
                          batch_size: int = 500) -> np.ndarray:
    """Log-density of each row of ``x`` under the Parzen window of ``samples``.

    Parameters
    ----------
    samples : (M, D) or (M, C, H, W), the kernel centres (flattened)
    x : (N, D) or (N, C, H, W), the points to score, same D
    sigma : the kernel's standard deviation, > 0
    batch_size : rows of ``x`` per distance matrix (memory ``8 * batch_size * M`` bytes)

    Returns
    -------
    ll : float64 (N,), ``log p(x_n)`` in nats
    """
    if not sigma > 0:
        raise ValueError(f"parzen: sigma must be positive, got {sigma}")
    mu, x = _as_2d(samples, "samples"), _as_2d(x, "x")
    if mu.shape[1] != x.shape[1]:
        raise ValueError(f"parzen: samples have {mu.shape[1]} dims, x has {x.shape[1]}")
    return _log_likelihoods(mu, x, np.array([float(sigma)]), batch_size)[0]


def select_sigma(samples: np.ndarray, x_valid: np.ndarray, sigmas: Any = SIGMAS, *,
                 batch_size: int = 500) -> tuple[float, np.ndarray]:
    """The bandwidth with the highest mean validation log-likelihood.

    Parameters
    ----------
    samples : (M, D) or (M, C, H, W)
    x_valid : (V, D) or (V, C, H, W)
    sigmas : 1-D candidates, default ``logspace(-1, 0, 10)``

    Returns
    -------
    sigma : float, the best candidate
    mean_ll : float64 (len(sigmas),), mean validation log-likelihood of each candidate
    """
    mu, xv = _as_2d(samples, "samples"), _as_2d(x_valid, "x_valid")
    if mu.shape[1] != xv.shape[1]:
        raise ValueError(f"parzen: samples have {mu.shape[1]} dims, x_valid has {xv.shape[1]}")
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sigmas.size == 0 or not np.all(sigmas > 0):
        raise ValueError(f"parzen: sigmas must be a non-empty list of positive numbers, "
                         f"got {sigmas}")
    mean_ll = _log_likelihoods(mu, xv, sigmas, batch_size).mean(axis=1)
    return float(sigmas[int(np.argmax(mean_ll))]), mean_ll


@dataclass
class ParzenResult:
    """Mean test log-likelihood (nats), its standard error, the bandwidth and the search."""

    mean: float
    se: float
    sigma: float
    n_samples: int
    n_test: int
    sigmas: list[float] = field(default_factory=list)
    valid_mean_ll: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.1f} +- {self.se:.1f} (sigma {self.sigma:.4f})"


def parzen_evaluate(samples: np.ndarray, x_test: np.ndarray, x_valid: np.ndarray,
                    sigmas: Any = SIGMAS, *, batch_size: int = 500) -> ParzenResult:
    """Goodfellow et al.'s protocol: pick sigma on ``x_valid``, report the mean on ``x_test``.

    Parameters
    ----------
    samples : (M, D) or (M, C, H, W), generated samples in the data's range
    x_test : (N, D) or (N, C, H, W)
    x_valid : (V, D) or (V, C, H, W)
    sigmas : candidate bandwidths, default ``logspace(-1, 0, 10)``

    Returns
    -------
    :class:`ParzenResult` with ``mean`` and ``se = std(ll) / sqrt(N)``
    """
    sigma, valid = select_sigma(samples, x_valid, sigmas, batch_size=batch_size)
    ll = parzen_log_likelihood(samples, x_test, sigma, batch_size=batch_size)
    return ParzenResult(mean=float(ll.mean()), se=float(ll.std() / np.sqrt(len(ll))),
                        sigma=sigma, n_samples=len(samples), n_test=len(ll),
                        sigmas=[float(s) for s in np.asarray(sigmas).reshape(-1)],
                        valid_mean_ll=[float(v) for v in valid])


def mnist_parzen(samples: np.ndarray, *, n_valid: int = 1000, n_test: int | None = None,
                 batch_size: int = 500) -> ParzenResult:
    """The MNIST protocol of Table 1 on ``samples`` with pixels in [0, 1].

    Validation images are ``train[50000:50000 + n_valid]``, test images the first ``n_test``
    (default all 10,000) of the test split, both scaled to [0, 1] as ``pixels / 255``.

    Parameters
    ----------
    samples : (M, 784) or (M, 1, 28, 28) in [0, 1] (the paper uses M = 10,000)
    """
    from ..data import load_mnist

    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    valid = train[50000:50000 + n_valid].reshape(n_valid, -1) / 255.0
    test = test[:n_test].reshape(-1, 784) / 255.0
    return parzen_evaluate(samples, test, valid, batch_size=batch_size)
