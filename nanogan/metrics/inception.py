"""Classifier-based Inception Score and the class histogram of samples (mode coverage).

With ``p(y|x)`` the MNIST classifier's class probabilities of a sample and ``p(y)`` their mean
over the samples::

    IS = exp( E_x KL(p(y|x) || p(y)) )

It is high (at most 10 on MNIST) when every sample is classified confidently AND the classes are
balanced; it is computed over ``splits`` equal parts of the samples and reported as mean and
standard deviation (Salimans et al. 2016). "Inception" is a misnomer kept for recognition: the
classifier is nanogan's MNIST CNN, so the numbers are comparable only with MNIST-classifier scores.

The class histogram counts each sample's most likely class; ``modes`` is the number of digits
that receive at least ``min_fraction`` of the samples, and ``kl_to_uniform`` measures how far
the histogram is from the balanced one (0 when balanced; ``log 10`` ~ 2.30 when one class only).

Computed on the host in NumPy float64 whatever the array backend (:mod:`nanogan.backend`): inputs
may be arrays of any backend (CuPy's, the strict test arrays); they are copied to the host first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import to_numpy

__all__ = ["class_histogram", "inception_score"]


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(to_numpy(probs), np.float64)
    if p.ndim != 2 or len(p) == 0 or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0,
                                                                         atol=1e-6):
        raise ValueError(f"inception: expected class probabilities (N, K), rows summing to 1, "
                         f"got shape {p.shape}")
    return p


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """``exp(E KL(p(y|x) || p(y)))`` per split; returns (mean, std) over the splits.

    Parameters
    ----------
    probs : (N, K) class probabilities of N samples, N >= splits
    splits : number of equal parts (the last ones may be one shorter)
    """
    p = _check_probs(probs)
    if not 1 <= splits <= len(p):
        raise ValueError(f"inception_score: need 1 <= splits <= N, got {splits} and {len(p)}")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram(probs: np.ndarray, min_fraction: float = 0.01) -> dict[str, Any]:
    """The fraction of samples assigned to each class and how many classes are covered.

    Returns
    -------
    dict with ``fractions`` (list of K floats), ``modes`` (classes with at least
    ``min_fraction`` of the samples) and ``kl_to_uniform`` (KL(histogram || uniform), nats)
    """
    p = _check_probs(probs)
    k = p.shape[1]
    frac = np.bincount(p.argmax(axis=1), minlength=k) / len(p)
    nz = frac > 0
    kl = float(np.sum(frac[nz] * np.log(frac[nz] * k)))
    return {"fractions": [float(f) for f in frac], "modes": int((frac >= min_fraction).sum()),
            "kl_to_uniform": kl}
