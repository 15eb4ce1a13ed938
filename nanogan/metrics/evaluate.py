"""All of nanogan's quality metrics of MNIST samples in one call, and a table of them.

:func:`evaluate` scores samples against the 10,000 MNIST test images:

==================  ================================================================  ==========
key                 what                                                               better
==================  ================================================================  ==========
``parzen``          Parzen-window log-likelihood of the test set (Goodfellow et al.)  higher
``fid``             Frechet distance in the classifier's 128 features (FID-MNIST)      lower
``is``              classifier-based Inception Score (max 10)                          higher
``modes``           digits receiving >= 1 % of the samples (of 10)                     higher
``precision``       samples inside the k-NN manifold of the test features (k = 3)      higher
``recall``          test features inside the k-NN manifold of the samples (k = 3)      higher
``mmd``             unbiased MMD^2, Gaussian kernel, 100 subsets of 1,000              lower
==================  ================================================================  ==========

The Gaussian kernel's bandwidth is fixed by the reference set (the median distance between test
features), so ``mmd`` is comparable between rows; it is at most 2. ``kid`` (in the JSON only) is
the same estimate with KID's cubic kernel ``(x . y / 128 + 1)^3``: these 128 classifier features
are larger than Inception's, so its values run to thousands and are not on KID's usual scale.

Typical use::

    from nanogan.metrics.evaluate import evaluate, load_samples
    x, pixel_range = load_samples("runs/vanilla/checkpoint.npz", n=10000)
    print(evaluate(x, pixel_range))

Whatever the array backend (:mod:`nanogan.backend`), the generator and the classifier run on it
and the metrics compute on the host in NumPy: samples of any backend are copied to the host
first, and the results are NumPy arrays and Python floats.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from .fid import fid
from .inception import class_histogram, inception_score
from .mmd import median_bandwidth, subset_mmd2
from .parzen import mnist_parzen
from .precision_recall import precision_recall

__all__ = ["COLUMNS", "MIN_REFERENCE", "MIN_SAMPLES", "N_REFERENCE", "check_samples", "evaluate",
           "format_table", "load_samples", "real_samples", "reference_features"]

#: Test images available as the reference set.
N_REFERENCE = 10000
#: Fewest samples and reference images the metrics are defined for (precision/recall's k-NN
#: radii with k = 3 need 4 points; FID's covariances and MMD's unbiased estimate need 2).
MIN_SAMPLES = 4
MIN_REFERENCE = 4
#: Slack allowed past the declared pixel range (float rounding), as a fraction of its width.
RANGE_TOLERANCE = 1e-4

#: (key, header, format, better) of the table's columns.
COLUMNS = (
    ("parzen", "Parzen LL (nats)", "{:.1f} +- {:.1f}", "higher"),
    ("fid", "FID-MNIST", "{:.2f}", "lower"),
    ("is", "IS (max 10)", "{:.2f}", "higher"),
    ("modes", "modes (of 10)", "{:d}", "higher"),
    ("precision", "precision", "{:.3f}", "higher"),
    ("recall", "recall", "{:.3f}", "higher"),
    ("mmd", "MMD^2 (rbf)", "{:.4f}", "lower"),
)

_REFERENCE: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def reference_features(features: Any, n: int = 10000) -> tuple[np.ndarray, np.ndarray]:
    """Classifier features and probabilities of the first ``n`` MNIST test images (memoised)."""
    from ..data import load_mnist

    key = (str(getattr(features, "path", id(features))), n)
    if key not in _REFERENCE:
        images, _ = load_mnist("test")
        _REFERENCE[key] = features(images[:n])
    return _REFERENCE[key]


def _reference_bandwidth(ref_feats: np.ndarray) -> float:
    """Median pairwise distance of (at most 2,000 of) the reference features."""
    return median_bandwidth(ref_feats[:1000], ref_feats[1000:2000] if len(ref_feats) > 1000
                            else ref_feats[:0])


def real_samples(n: int = 10000) -> tuple[np.ndarray, tuple[float, float]]:
    """The first ``n`` MNIST training images as "samples" in [0, 1] (the ceiling of the table)."""
    from ..data import load_mnist

    images, _ = load_mnist("train")
    return images[:n].reshape(n, 1, 28, 28).astype(np.float32) / np.float32(255.0), (0.0, 1.0)


def generator_range(gan: Any) -> tuple[float, float]:
    """The pixel range of ``gan.G``'s output, from its last layer (before any Reshape or
    Flatten): (0, 1) for a Sigmoid, (-1, 1) for a Tanh; ValueError for any other last layer."""
    from ..layers import Flatten, Reshape, Sequential, Sigmoid, Tanh

    last = gan.G
    while isinstance(last, Sequential) and len(last):
        i = len(last) - 1
        while i > 0 and isinstance(last[i], Reshape | Flatten):  # shapes keep the range
            i -= 1
        last = last[i]
    if isinstance(last, Sigmoid):
        return (0.0, 1.0)
    if isinstance(last, Tanh):
        return (-1.0, 1.0)
    raise ValueError(f"cannot tell the pixel range of a generator ending in "
                     f"{type(last).__name__}; sample it to .npy and pass the range")


def check_samples(x: np.ndarray, pixel_range: tuple[float, float] | None, source: str = "samples"
                  ) -> tuple[float, float]:
    """Check samples for :func:`evaluate`; return the pixel range they are in.

    ValueError (one line: what was found, what is expected) on NaN or infinity, fewer than
    :data:`MIN_SAMPLES` images, or values outside ``pixel_range`` (None: [0, 1] if every value
    is in it, else [-1, 1] if every value is in that). Nothing is clipped. ``x`` may be an
    array of any backend (it is checked on the host).
    """
    x = np.asarray(to_numpy(x))
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"{source}: {len(x)} images, the metrics need at least {MIN_SAMPLES}")
    finite = np.isfinite(x)
    if not finite.all():
        bad = x[~finite]
        what = "NaN" if np.isnan(bad).any() else "infinity"
        raise ValueError(f"{source}: {bad.size} values are {what} (not finite), expected pixel "
                         "values; the generator or the file is broken")
    lo, hi = float(x.min()), float(x.max())

    def inside(r: tuple[float, float]) -> bool:
        slack = RANGE_TOLERANCE * (r[1] - r[0])
        return lo >= r[0] - slack and hi <= r[1] + slack

    if pixel_range is not None:
        r = (float(pixel_range[0]), float(pixel_range[1]))
        if not inside(r):
            raise ValueError(f"{source}: values span [{lo:.4g}, {hi:.4g}], outside the declared "
                             f"pixel range [{r[0]:g}, {r[1]:g}]; pass the right --range or rescale "
                             "the samples (they are not clipped)")
        return r
    for r in ((0.0, 1.0), (-1.0, 1.0)):
        if inside(r):
            return r
    raise ValueError(f"{source}: values span [{lo:.4g}, {hi:.4g}], outside both [0, 1] and "
                     "[-1, 1]; rescale the samples to one of them (they are not clipped)")


def read_npy(path: str | os.PathLike, expected: str) -> np.ndarray:
    """The one array of a ``.npy`` file; a one-line ValueError naming ``path`` and ``expected``
    (e.g. ``"images (N, C, H, W)"``) for an unreadable file, an archive or an empty array."""
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy file ({e})") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{path}: expected one array (.npy), got an archive")
    if x.size == 0:
        raise ValueError(f"{path}: the array is empty ({x.dtype} {x.shape}), expected {expected}")
    return x


def load_samples(path: str | os.PathLike, n: int = 10000, seed: int = 0,
                 pixel_range: tuple[float, float] | None = None
                 ) -> tuple[np.ndarray, tuple[float, float]]:
    """Samples from a training checkpoint (``.npz``, ``n`` drawn with ``seed``) or a ``.npy``.

    Parameters
    ----------
    path : training checkpoint or samples ``.npy`` (uint8 in [0, 255] or floats)
    n, seed : samples drawn from a checkpoint
    pixel_range : the declared range of the values; None: the generator's output range (from
        its last layer), or for a float ``.npy`` [0, 1] if every value is in it, else [-1, 1]

    Returns
    -------
    samples : float32 (N, 1, 28, 28), checked by :func:`check_samples`
    pixel_range : (0, 1) or (-1, 1); uint8 arrays are returned scaled to [0, 1]

    Raises
    ------
    ValueError : one line naming the file, what was found and what is expected (not MNIST-sized,
        empty, too few, NaN or infinite, outside the pixel range, a generator with non-finite
        weights)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a training checkpoint .npz or "
                                "samples .npy)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes), expected a training checkpoint "
                         ".npz or samples .npy")
    if path.suffix == ".npy":
        x = read_npy(path, "MNIST images (N, 784) or (N, 1, 28, 28)")
        if x.dtype.kind not in "fu" or x.size % 784 or x.ndim < 2 or x.shape[0] * 784 != x.size:
            raise ValueError(f"{path}: expected MNIST images (N, 784) or (N, 1, 28, 28) of floats "
                             f"or uint8, got {x.dtype} {x.shape}")
        if x.dtype == np.uint8:
            if pixel_range is not None:
                raise ValueError(f"{path}: uint8 images are in [0, 255]; --range applies to "
                                 "float samples only")
            x = x.reshape(len(x), 1, 28, 28).astype(np.float32) / np.float32(255)
            return x, check_samples(x, (0.0, 1.0), str(path))
        if x.dtype.kind != "f":
            raise ValueError(f"{path}: expected float or uint8 images, got {x.dtype}")
        x = x.reshape(len(x), 1, 28, 28).astype(np.float32)
        return x, check_samples(x, pixel_range, str(path))
    from ..train import load_generator_checkpoint

    gan = load_generator_checkpoint(path)
    rng = np.random.default_rng(seed)
    chunks = [to_numpy(gan.G(gan.sample_noise(min(1000, n - s), rng), train=False))
              for s in range(0, n, 1000)]
    x = np.concatenate(chunks).astype(np.float32).reshape(n, 1, 28, 28)
    declared = pixel_range if pixel_range is not None else generator_range(gan)
    return x, check_samples(x, declared, f"{path}: samples of its generator")


def evaluate(samples: np.ndarray, pixel_range: tuple[float, float] = (-1.0, 1.0), *,
             features: Any = None, parzen: bool = True, k: int = 3, n_reference: int = 10000,
             seed: int = 0) -> dict[str, Any]:
    """Every metric of ``samples`` against the MNIST test set.

    Parameters
    ----------
    samples : (N, 1, 28, 28) or (N, 784) floats in ``pixel_range`` (the paper's protocol uses
        N = 10,000), an array of any backend (copied to the host)
    pixel_range : (-1, 1) for Tanh generators, (0, 1) for sigmoid ones
    features : a :class:`~nanogan.metrics.features.MnistFeatures`; the default classifier if None
    parzen : also compute the Parzen log-likelihood (about 10 s for 10,000 samples)
    k : neighbourhood size of precision/recall
    n_reference : number of test images to compare with

    Returns
    -------
    dict with the keys of :data:`COLUMNS` (``parzen`` as ``{"mean", "se", "sigma"}``), plus
    ``is_std``, ``mmd_std``, ``kid``, ``kid_std``, ``class_fractions``, ``kl_to_uniform``, ``n``
    and ``seconds``
    """
    from .features import load_classifier

    t0 = time.perf_counter()
    lo, hi = map(float, pixel_range)
    x = np.asarray(to_numpy(samples))
    if x.ndim < 2 or x.size % 784 or x.dtype.kind != "f" or x.shape[0] * 784 != x.size:
        raise ValueError(f"evaluate: expected float MNIST images (N, 784) or (N, 1, 28, 28), "
                         f"got {x.dtype} {x.shape}")
    if not MIN_REFERENCE <= int(n_reference) <= N_REFERENCE:
        raise ValueError(f"evaluate: n_reference must be in [{MIN_REFERENCE}, {N_REFERENCE}] (the "
                         f"MNIST test images), got {n_reference}")
    check_samples(x, pixel_range, "evaluate: samples")
    x = x.reshape(len(x), 784)
    features = features if features is not None else load_classifier()
    ref_feats, _ = reference_features(features, n_reference)
    feats, probs = features(x, pixel_range)
    out: dict[str, Any] = {"n": len(x)}
    if parzen:
        x01 = np.clip((x.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
        res = mnist_parzen(x01, n_test=n_reference)
        out["parzen"] = {"mean": res.mean, "se": res.se, "sigma": res.sigma}
    out["fid"] = fid(feats, ref_feats)
    out["is"], out["is_std"] = inception_score(probs, splits=10 if len(probs) >= 10 else 1)
    hist = class_histogram(probs)
    out["modes"], out["kl_to_uniform"] = hist["modes"], hist["kl_to_uniform"]
    out["class_fractions"] = hist["fractions"]
    m = min(len(feats), len(ref_feats))
    out["precision"], out["recall"] = precision_recall(ref_feats[:m], feats[:m], k=k)
    size = min(1000, m)
    out["mmd"], out["mmd_std"] = subset_mmd2(feats, ref_feats, "rbf", n_subsets=100,
                                             subset_size=size, rng=seed,
                                             sigma=_reference_bandwidth(ref_feats))
    out["kid"], out["kid_std"] = subset_mmd2(feats, ref_feats, "poly", n_subsets=100,
                                             subset_size=size, rng=seed)
    out["seconds"] = time.perf_counter() - t0
    return out


def _cell(key: str, fmt: str, r: dict[str, Any]) -> str:
    if key not in r:
        return "-"
    if key == "parzen":
        return fmt.format(r["parzen"]["mean"], r["parzen"]["se"])
    return fmt.format(r[key])


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per name of ``rows`` (results of :func:`evaluate`); the arrows
    say which way is better."""
    head = ["model", *(f"{h} {'↑' if b == 'higher' else '↓'}" for _, h, _, b in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [name, *(_cell(key, fmt, r) for key, _, fmt, _ in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
