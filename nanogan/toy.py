"""Toy data sets of GAN theory, and the ring's mode-coverage metrics.

Two problems small enough to train in seconds and to reason about exactly:

* **1-D Gaussian** (Goodfellow et al. 2014, Fig. 1): ``p_data = N(mu, sigma^2)``.
  :func:`sample_normal_1d` draws from it, :func:`normal_pdf` evaluates any normal density
  (the generator ``G(z) = z + m`` with ``z ~ N(0, 1)`` has ``p_g = N(m, 1)``).
* **2-D ring of Gaussians** (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017, VEEGAN):
  a mixture of ``K = 8`` isotropic Gaussians of standard deviation ``std = 0.02`` whose means lie
  evenly on a circle of radius ``2``, each with weight ``1/K``::

      c_k = radius (cos(2 pi k / K), sin(2 pi k / K)),   k = 0 .. K-1
      x ~ c_k + std * N(0, I_2),  k ~ Uniform{0 .. K-1}

  A generator that has *collapsed* puts its samples on one or a few of the modes.

Ring metrics (:func:`ring_metrics`), VEEGAN's / PacGAN's protocol:

* a sample is **high quality** if it lies within ``n_std = 3`` standard deviations of its nearest
  mode: ``min_k ||x - c_k|| <= n_std * std``;
* a mode is **covered** if it receives at least ``min_count`` high-quality samples;
  ``min_count`` defaults to 10 % of a mode's fair share, ``ceil(0.1 * n / K)`` (at least 1), so
  that a few stray samples do not count as capturing a mode;
* reported: the number of modes covered (out of K), the share of high-quality samples among all
  samples, and the high-quality count per mode.

The defaults (:data:`RING_MODES`, :data:`RING_RADIUS`, :data:`RING_STD`) are part of the API:
examples and tests that train on the ring use them unless they say otherwise.

Example::

    from nanogan import toy
    rng = np.random.default_rng(0)
    x = toy.sample_ring(2500, rng)                   # (2500, 2), float32
    m = toy.ring_metrics(x)                         # RingMetrics(modes_covered=8, ...)
    batches = toy.ring_batches(64, rng)             # endless iterator for GAN.step
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .backend import to_numpy
from .layers.base import Module, as_dtype, as_rng

__all__ = [
    "RING_MODES", "RING_RADIUS", "RING_STD", "RingMetrics", "Shift", "normal_batches", "normal_pdf",
    "ring_batches", "ring_centers", "ring_metrics", "sample_normal_1d", "sample_ring",
]

#: Number of mixture components on the ring.
RING_MODES: int = 8
#: Radius of the circle the means lie on.
RING_RADIUS: float = 2.0
#: Standard deviation of every component (isotropic).
RING_STD: float = 0.02


# ---------------------------------------------------------------------------------- 1-D Gaussian
def normal_pdf(x: np.ndarray | float, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    """Density of ``N(mu, sigma^2)`` at ``x``.

    Parameters
    ----------
    x : ndarray of any shape (or a float)
    mu, sigma : mean and standard deviation (``sigma > 0``)

    Returns
    -------
    p : ndarray, shape of ``x``, float64

    Equations
    ---------
    ::

        p(x) = exp(-(x - mu)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))
    """
    if not sigma > 0:
        raise ValueError(f"normal_pdf: sigma must be positive, got {sigma}")
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def sample_normal_1d(n: int, mu: float = 0.0, sigma: float = 1.0,
                     rng: np.random.Generator | int | None = None,
                     dtype: np.dtype | type = np.float32) -> np.ndarray:
    """``n`` draws from ``N(mu, sigma^2)`` as a column, shape ``(n, 1)`` (one feature)."""
    rng = as_rng(rng)
    return (mu + sigma * rng.standard_normal((int(n), 1))).astype(dtype)


def normal_batches(batch_size: int, mu: float = 0.0, sigma: float = 1.0,
                   rng: np.random.Generator | int | None = None,
                   dtype: np.dtype | type = np.float32) -> Iterator[np.ndarray]:
    """Endless iterator of ``(batch_size, 1)`` batches from ``N(mu, sigma^2)`` (for GAN.step)."""
    rng = as_rng(rng)
    while True:
        yield sample_normal_1d(batch_size, mu, sigma, rng, dtype)


class Shift(Module):
    """The simplest generator: ``G(z) = z + shift``, one learnable offset per feature.

    With ``z ~ N(0, 1)`` it generates ``p_g = N(shift, 1)``, so ``p_g = p_data = N(mu, 1)`` exactly
    when ``shift = mu``: the 1-D game in which every quantity of the theory has a closed form.

    Parameters
    ----------
    features : number of features of ``z`` (1 for the 1-D game)
    shift : initial offset ``m``
    dtype : float32 or float64

    Equations
    ---------
    ::

        forward    y = z + m                   z, y: (N, features), m: (features,)
        backward   dL/dz = dL/dy,  dL/dm = sum_n dL/dy_n
    """

    def __init__(self, features: int = 1, shift: float = 0.0, *, dtype=np.float32) -> None:
        super().__init__()
        self.features = int(features)
        self.dtype = as_dtype(dtype)
        self.add_param("shift", np.full((self.features,), shift, dtype=self.dtype))

    def extra_repr(self) -> str:
        return f"features={self.features}"

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, None]:
        """``z (N, features) -> z + m``; nothing to cache."""
        x = self._check_input(x, 2, "(N, features)", {1: self.features}, arg="z")
        return x + self._params["shift"], None

    def backward(self, dy: np.ndarray, cache: None, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """``dL/dm += sum_n dL/dy_n``; returns ``dL/dz = dL/dy`` (None if not ``input_grad``)."""
        if param_grads:
            self._grads["shift"] += dy.sum(axis=0).astype(self.dtype, copy=False)
        return dy if input_grad else None


# ---------------------------------------------------------------------------------- 2-D ring
def ring_centers(n_modes: int = RING_MODES, radius: float = RING_RADIUS) -> np.ndarray:
    """The ``K`` means ``c_k = radius (cos(2 pi k/K), sin(2 pi k/K))``, shape ``(K, 2)``,
    float64."""
    if int(n_modes) < 1:
        raise ValueError(f"ring_centers: n_modes must be >= 1, got {n_modes}")
    angles = 2 * np.pi * np.arange(int(n_modes)) / int(n_modes)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_ring(n: int, rng: np.random.Generator | int | None = None, *,
                n_modes: int = RING_MODES, radius: float = RING_RADIUS, std: float = RING_STD,
                dtype: np.dtype | type = np.float32, return_modes: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``n`` samples of the ring mixture.

    Parameters
    ----------
    n : number of samples
    rng : generator or seed
    n_modes, radius, std : the mixture (see the module docstring)
    dtype : dtype of the samples
    return_modes : also return each sample's component index

    Returns
    -------
    x : ndarray, shape ``(n, 2)``
    k : ndarray of int64, shape ``(n,)`` (only with ``return_modes``)
    """
    rng = as_rng(rng)
    centers = ring_centers(n_modes, radius)
    k = rng.integers(0, len(centers), size=int(n))
    x = (centers[k] + std * rng.standard_normal((int(n), 2))).astype(dtype)
    return (x, k) if return_modes else x


def ring_batches(batch_size: int, rng: np.random.Generator | int | None = None, *,
                 n_modes: int = RING_MODES, radius: float = RING_RADIUS, std: float = RING_STD,
                 dtype: np.dtype | type = np.float32) -> Iterator[np.ndarray]:
    """Endless iterator of ``(batch_size, 2)`` ring batches (for :meth:`nanogan.GAN.step`)."""
    rng = as_rng(rng)
    while True:
        yield sample_ring(batch_size, rng, n_modes=n_modes, radius=radius, std=std, dtype=dtype)


@dataclass
class RingMetrics:
    """Result of :func:`ring_metrics`.

    Attributes
    ----------
    modes_covered : int, modes with at least ``min_count`` high-quality samples
    high_quality : float in [0, 1], share of all samples within ``n_std * std`` of a mode
    counts : ndarray of int64, shape ``(K,)``, high-quality samples per mode
    n_modes : K
    min_count : the threshold that was used
    """

    modes_covered: int
    high_quality: float
    counts: np.ndarray = field(repr=False)
    n_modes: int = RING_MODES
    min_count: int = 1

    def as_dict(self) -> dict[str, float]:
        """``{"modes_covered": ..., "high_quality": ...}`` for logs and tables."""
        return {"modes_covered": float(self.modes_covered), "high_quality": self.high_quality}


def ring_metrics(samples: np.ndarray, *, n_modes: int = RING_MODES, radius: float = RING_RADIUS,
                 std: float = RING_STD, n_std: float = 3.0, min_count: int | None = None
                 ) -> RingMetrics:
    """Modes covered and share of high-quality samples (VEEGAN / PacGAN protocol).

    Parameters
    ----------
    samples : ndarray, shape ``(n, 2)``, generated points
    n_modes, radius, std : the ring the samples are judged against
    n_std : a sample is high quality within ``n_std * std`` of its nearest mode
    min_count : high-quality samples a mode needs to count as covered; default
        ``max(1, ceil(0.1 * n / n_modes))`` (10 % of a mode's fair share)

    Returns
    -------
    RingMetrics

    Equations
    ---------
    ::

        d_i      = min_k ||x_i - c_k||,    k_i = argmin_k ||x_i - c_k||
        hq_i     = [d_i <= n_std * std]
        counts_k = sum_i hq_i [k_i = k]
        covered  = #{k : counts_k >= min_count},   high_quality = mean_i hq_i
    """
    x = np.asarray(to_numpy(samples), dtype=np.float64)  # judged on the host
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"ring_metrics: argument 'samples' expected shape (n, 2) with n >= 1, "
                         f"got {x.shape}")
    n = x.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(0.1 * n / n_modes))
    centers = ring_centers(n_modes, radius)
    dist = np.linalg.norm(x[:, None, :] - centers[None, :, :], axis=2)  # (n, K)
    nearest = np.argmin(dist, axis=1)
    hq = dist[np.arange(n), nearest] <= n_std * std
    hq &= np.isfinite(x).all(axis=1)
    counts = np.bincount(nearest[hq], minlength=n_modes).astype(np.int64)
    return RingMetrics(modes_covered=int((counts >= min_count).sum()),
                       high_quality=float(hq.mean()), counts=counts, n_modes=int(n_modes),
                       min_count=int(min_count))
