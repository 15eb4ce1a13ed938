"""MMD^2 as a training loss: the generative matching network's objective, gradient by hand.

A generative moment matching network (Li, Swersky & Zemel 2015; Dziugaite, Roy & Ghahramani 2015)
has no discriminator: the generator is trained to minimise the unbiased estimate of the squared
maximum mean discrepancy (Gretton et al. 2012) between a minibatch it generated,
``x_1..x_m``, and a minibatch of data, ``y_1..y_n``::

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j)          (generated vs generated)
            + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)          (data vs data: constant in x)
            - 2/(mn)     sum_{i, j}   k(x_i, y_j)          (generated vs data)

with a sum of Gaussian kernels at several bandwidths ``sigma_s``, so that both coarse and fine
differences between the two distributions are seen::

    k(a, b) = sum_s exp(-||a - b||^2 / (2 sigma_s^2))

The first term pushes the generated samples apart (it is smallest when they spread), the third
pulls each one toward the data; in expectation the estimate is 0 exactly when the two
distributions are equal (for a characteristic kernel such as the Gaussian), and it can be
negative for a single pair of minibatches.

The kernel matrices come from :mod:`nanogan.metrics.mmd` (the same squared distances the
MMD metric uses); the gradient with respect to the generated samples is in
:func:`mmd2_loss`'s docstring. Computations run in float64; the gradient is returned in the
generated samples' dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backend import asarray, xp
from .metrics.mmd import _sq_dist

__all__ = ["DEFAULT_SIGMAS", "MMDLoss", "mixture_kernel", "mmd2_loss"]

#: Bandwidths of Li et al. (2015)'s MNIST GMMN (pixels in [0, 1]); ``examples/gmn_mnist.py``
#: doubles them for pixels in [-1, 1], where distances are twice as long.
DEFAULT_SIGMAS: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


def _as_samples(a: object, arg: str, dim: int | None = None) -> np.ndarray:
    x = asarray(a)
    if x.dtype.kind != "f":
        raise ValueError(f"mmd2_loss: argument {arg!r} expected a floating-point array of shape "
                         f"(N, D), got dtype {x.dtype} with shape {x.shape}")
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"mmd2_loss: argument {arg!r} expected shape (N, D) with N >= 2, got "
                         f"{x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"mmd2_loss: argument {arg!r} expected shape (N, {dim}) (the features "
                         f"of 'x'), got {x.shape}")
    return x


def _check_sigmas(sigmas: Sequence[float]) -> tuple[float, ...]:
    s = tuple(float(v) for v in np.atleast_1d(np.asarray(sigmas, dtype=np.float64)))
    if not s or not all(np.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"mmd2_loss: sigmas must be one or more positive bandwidths, got "
                         f"{sigmas!r}")
    return s


def mixture_kernel(a: np.ndarray, b: np.ndarray, sigmas: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The mixture of Gaussian kernels and its distance weights.

    Parameters
    ----------
    a : (M, D); b : (N, D)
    sigmas : bandwidths ``sigma_s`` (S,)

    Returns
    -------
    K : (M, N) float64, ``K[i, j] = sum_s exp(-||a_i - b_j||^2 / (2 sigma_s^2))``
    W : (M, N) float64, ``W[i, j] = sum_s exp(-||a_i - b_j||^2 / (2 sigma_s^2)) / sigma_s^2``,
        so that ``dK[i, j]/da_i = -W[i, j] (a_i - b_j)``
    """
    d2 = _sq_dist(asarray(a, np.float64), asarray(b, np.float64))
    K = xp.zeros_like(d2)
    W = xp.zeros_like(d2)
    for s in sigmas:
        ks = xp.exp(d2 * (-0.5 / (s * s)))
        K += ks
        W += ks / (s * s)
    return K, W


def mmd2_loss(x: np.ndarray, y: np.ndarray, sigmas: Sequence[float] = DEFAULT_SIGMAS
              ) -> tuple[float, np.ndarray]:
    """Unbiased ``MMD^2`` between generated ``x`` and data ``y``, and its gradient in ``x``.

    Parameters
    ----------
    x : (M, D), generated samples (M >= 2), float32 or float64
    y : (N, D), data samples (N >= 2)
    sigmas : Gaussian bandwidths ``sigma_s`` of the kernel mixture (see the module docstring)

    Returns
    -------
    value : float, ``MMD^2_u`` (can be slightly negative)
    dx : (M, D), dtype of ``x``, ``d MMD^2_u / dx``

    Equations
    ---------
    ::

        k_s(a, b)     = exp(-||a - b||^2 / (2 sigma_s^2))
        d k_s(a, b)/da = -k_s(a, b) (a - b) / sigma_s^2
        W[i, j]       = sum_s k_s(x_i, z_j) / sigma_s^2        (z = x or y)

        dMMD^2/dx_i = 2/(M(M-1)) sum_{j != i} dk(x_i, x_j)/dx_i - 2/(MN) sum_j dk(x_i, y_j)/dx_i
                    = -2/(M(M-1)) sum_j Wxx[i, j] (x_i - x_j)
                      + 2/(MN)    sum_j Wxy[i, j] (x_i - y_j)

    (the factor 2 in the first term: ``x_i`` appears in row i and in column i of the symmetric
    sum; the ``j = i`` term vanishes since ``x_i - x_i = 0``). In matrix form, with ``r = W 1``
    the row sums::

        sum_j W[i, j] (x_i - z_j) = r_i x_i - (W z)_i
    """
    x = _as_samples(x, "x")
    y = _as_samples(y, "y", x.shape[1])
    sig = _check_sigmas(sigmas)
    m, n = len(x), len(y)
    x64, y64 = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    kxx, wxx = mixture_kernel(x64, x64, sig)
    kyy, _ = mixture_kernel(y64, y64, sig)
    kxy, wxy = mixture_kernel(x64, y64, sig)
    value = ((kxx.sum() - xp.trace(kxx)) / (m * (m - 1))
             + (kyy.sum() - xp.trace(kyy)) / (n * (n - 1))
             - 2.0 * kxy.sum() / (m * n))
    xp.fill_diagonal(wxx, 0.0)  # j = i contributes nothing (and must not through rounding)
    pull_apart = wxx.sum(axis=1)[:, None] * x64 - wxx @ x64     # sum_j Wxx[i,j] (x_i - x_j)
    pull_in = wxy.sum(axis=1)[:, None] * x64 - wxy @ y64        # sum_j Wxy[i,j] (x_i - y_j)
    dx = -2.0 / (m * (m - 1)) * pull_apart + 2.0 / (m * n) * pull_in
    return float(value), dx.astype(x.dtype, copy=False)


class MMDLoss:
    """The generator loss of a generative matching network: ``mmd2_loss`` with fixed bandwidths.

    Parameters
    ----------
    sigmas : Gaussian bandwidths (default :data:`DEFAULT_SIGMAS`)

    Usage::

        loss = MMDLoss(sigmas=(4, 10, 20, 40, 80, 160))
        fake, cache = G.forward(z)
        value, dfake = loss(fake, real)        # d MMD^2 / d fake
        G.backward(dfake, cache)
    """

    def __init__(self, sigmas: Sequence[float] = DEFAULT_SIGMAS) -> None:
        self.sigmas = _check_sigmas(sigmas)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """``mmd2_loss(x, y, self.sigmas)``: x (M, D) generated, y (N, D) data ->
        (value, dx (M, D))."""
        return mmd2_loss(x, y, self.sigmas)

    def __repr__(self) -> str:
        return f"MMDLoss(sigmas={self.sigmas})"
