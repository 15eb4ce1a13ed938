"""Metrics for images of any shape: MMD and KID in pixel space or in features the user supplies.

The MNIST metrics (:mod:`nanogan.metrics.evaluate`) need the MNIST classifier, so they apply to
28 x 28 grey images only. For any other data these apply:

* ``mmd``: unbiased MMD^2 with a Gaussian kernel whose bandwidth is the median pairwise distance
  of the reference set (fixed by the reference, so values are comparable between runs on the
  same data); 0 in expectation when the samples come from the data's distribution.
* ``kid``: the same with KID's cubic kernel ``(x . y / D + 1)^3`` (Binkowski et al. 2018).

Both are computed on flattened images in [-1, 1], or on ``features(images)`` when a feature map
is given (e.g. a pretrained network the user trusts for their data).

Computed on the host in NumPy float64 whatever the array backend (:mod:`nanogan.backend`): inputs
may be arrays of any backend (CuPy's, the strict test arrays); they are copied to the host first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import to_numpy
from .mmd import median_bandwidth, mmd2_unbiased, subset_mmd2

__all__ = ["pixel_metrics", "reference_bandwidth"]


def reference_bandwidth(real: np.ndarray) -> float:
    """Median pairwise distance between the two halves of (at most 2,000 rows of) ``real``."""
    real = np.asarray(to_numpy(real), np.float64).reshape(len(real), -1)
    half = min(len(real) // 2, 1000)
    return median_bandwidth(real[:half], real[half:2 * half])


def pixel_metrics(samples: np.ndarray, real: np.ndarray, *,
                  features: Callable[[np.ndarray], np.ndarray] | None = None,
                  n_subsets: int = 20, subset_size: int = 1000, seed: int = 0
                  ) -> dict[str, Any]:
    """MMD^2 (rbf) and KID of ``samples`` against ``real``.

    Parameters
    ----------
    samples, real : (N, C, H, W) or (N, D), floats in [-1, 1], N >= 2 each
    features : optional map (N, C, H, W) -> (N, F) applied to both first
    n_subsets, subset_size : KID's subset protocol (:func:`nanogan.metrics.mmd.subset_mmd2`)

    Returns
    -------
    dict: ``mmd``, ``mmd_std``, ``kid``, ``kid_std``, ``space`` ("pixels" or "features"),
    ``dims``, ``n``, ``n_reference``
    """
    a = features(samples) if features is not None else samples
    b = features(real) if features is not None else real
    a = np.asarray(to_numpy(a), np.float64).reshape(len(a), -1)
    b = np.asarray(to_numpy(b), np.float64).reshape(len(b), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"pixel_metrics: samples have {a.shape[1]} values each, the reference "
                         f"{b.shape[1]}; sample at the data's image size and channels")
    sigma = reference_bandwidth(b)
    if min(len(a), len(b)) <= subset_size:
        mmd, mmd_std = mmd2_unbiased(a, b, "rbf", sigma), 0.0
        kid, kid_std = mmd2_unbiased(a, b, "poly"), 0.0
    else:
        mmd, mmd_std = subset_mmd2(a, b, "rbf", n_subsets, subset_size, seed, sigma)
        kid, kid_std = subset_mmd2(a, b, "poly", n_subsets, subset_size, seed)
    return {"mmd": mmd, "mmd_std": mmd_std, "kid": kid, "kid_std": kid_std,
            "space": "features" if features is not None else "pixels", "dims": int(a.shape[1]),
            "n": len(a), "n_reference": len(b)}
