"""Classifier features of MNIST images, with the classifier's weights found, checked or trained.

:func:`load_classifier` looks for the trained weights (``mnist_classifier.npz``, a nanogan
checkpoint) in this order:

1. ``path`` if given;
2. the checkout's ``data/mnist_classifier.npz`` (shipped with the repository; its SHA-256 is
   checked against :data:`CLASSIFIER_SHA256`);
3. the user cache: ``$NANOGAN_CACHE``, else ``$XDG_CACHE_HOME/nanogan``, else
   ``~/.cache/nanogan``.

If none is there (or ``retrain=True``) it trains the classifier on the MNIST training set (minutes
on a laptop CPU) and writes the weights atomically into the user cache, so the next call finds
them. :class:`MnistFeatures` then maps images to the classifier's 128 penultimate features and its
class probabilities.

The classifier runs on the active array backend (:mod:`nanogan.backend`), moved there if it was
loaded under another one; images may be arrays of any backend, and features and probabilities
are returned as NumPy arrays on the host, where the metrics compute.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import is_array, to_numpy
from ..checkpoint import flatten_state, load_checkpoint, save_checkpoint, unflatten_state
from .classifier import accuracy, mnist_classifier, run_classifier, train_classifier

__all__ = [
    "CLASSIFIER_FILE", "CLASSIFIER_SHA256", "MnistFeatures", "cache_dir", "load_classifier",
    "to_classifier_input", "train_default_classifier",
]

CLASSIFIER_FILE = "mnist_classifier.npz"
#: SHA-256 of the weights shipped in ``data/`` (test accuracy 0.9916; 8 epochs, seed 0).
CLASSIFIER_SHA256: str | None = "8b9bec65876d22b6c74937d19ad710e8e782162c13954876c057f41f26355170"
_FORMAT = "nanogan-mnist-classifier-1"


def cache_dir() -> Path:
    """``$NANOGAN_CACHE``, else ``$XDG_CACHE_HOME/nanogan``, else ``~/.cache/nanogan``."""
    if os.environ.get("NANOGAN_CACHE"):
        return Path(os.environ["NANOGAN_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "nanogan"
    return Path.home() / ".cache" / "nanogan"


def _shipped_path() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / CLASSIFIER_FILE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_classifier_input(x: np.ndarray, pixel_range: tuple[float, float] = (-1.0, 1.0)
                        ) -> np.ndarray:
    """Images as the classifier takes them: float32 (N, 1, 28, 28) in [-1, 1].

    Parameters
    ----------
    x : (N, 784), (N, 28, 28) or (N, 1, 28, 28) floats in ``pixel_range``, or uint8 pixels 0..255
        (an array of any backend; the result is on the host)
    pixel_range : (low, high) of ``x`` when it is float: (-1, 1) (Tanh generators) or (0, 1)
        (sigmoid generators)
    """
    x = np.asarray(to_numpy(x))
    if x.size and x.size % 784 == 0 and x.shape[-1] in (28, 784):
        n = x.size // 784
    else:
        raise ValueError(f"features: expected MNIST images (N, 784), (N, 28, 28) or "
                         f"(N, 1, 28, 28), got {x.shape}")
    if x.dtype == np.uint8:
        out = x.reshape(n, 1, 28, 28).astype(np.float32) / np.float32(127.5) - np.float32(1)
        return out
    if x.dtype.kind != "f":
        raise ValueError(f"features: expected float or uint8 images, got dtype {x.dtype}")
    lo, hi = map(float, pixel_range)
    out = x.reshape(n, 1, 28, 28).astype(np.float64)
    out = (out - lo) * (2.0 / (hi - lo)) - 1.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _load_weights(path: Path) -> tuple[Any, dict[str, Any]]:
    arrays, meta = load_checkpoint(path)
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a nanogan MNIST classifier (format {meta.get('format')!r})")
    model = mnist_classifier()
    model.load_state_dict(unflatten_state("model", arrays))
    return model, meta


def train_default_classifier(path: str | os.PathLike, *, epochs: float = 8, seed: int = 0,
                             log: Callable[[str], None] | None = print) -> tuple[Any, dict]:
    """Train :func:`~nanogan.metrics.classifier.mnist_classifier` on the 60,000 MNIST training
    images and save it atomically to ``path``; returns ``(model, meta)``."""
    from ..data import load_mnist, scale_images

    images, labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    x, y = scale_images(images), labels.astype(np.int64)
    model = mnist_classifier(rng=seed)
    t0 = time.perf_counter()
    losses = train_classifier(model, x, y, epochs=epochs, rng=seed + 1, log=log)
    seconds = time.perf_counter() - t0
    acc = accuracy(model, scale_images(test_images), test_labels.astype(np.int64))
    meta = {"format": _FORMAT, "test_accuracy": acc, "epochs": epochs, "seed": seed,
            "train_seconds": seconds, "final_loss": float(np.mean(losses[-100:]))}
    if log is not None:
        log(f"classifier: test accuracy {acc:.4f} after {epochs} epochs ({seconds:.0f} s)")
    save_checkpoint(path, flatten_state("model", model.state_dict()), meta)
    return model, meta


def load_classifier(path: str | os.PathLike | None = None, *, train: bool = True,
                    retrain: bool = False, log: Callable[[str], None] | None = print
                    ) -> MnistFeatures:
    """The trained MNIST classifier, from ``path``, the checkout's ``data/`` or the user cache.

    Parameters
    ----------
    path : an explicit weights file (must exist)
    train : train and cache the classifier when no weights are found (else FileNotFoundError)
    retrain : train afresh into the user cache even if weights exist

    Raises
    ------
    ValueError : the shipped weights fail their SHA-256 check (the message says how to fix it)
    """
    if path is not None:
        model, meta = _load_weights(Path(path))
        return MnistFeatures(model, meta, Path(path))
    cached = cache_dir() / CLASSIFIER_FILE
    if not retrain:
        shipped = _shipped_path()
        if shipped.is_file() and CLASSIFIER_SHA256 is not None:
            digest = _sha256(shipped)
            if digest != CLASSIFIER_SHA256:
                raise ValueError(
                    f"{shipped}: SHA-256 {digest} does not match the expected "
                    f"{CLASSIFIER_SHA256}; the file is corrupt or was replaced. Restore it "
                    f"(git checkout data/{CLASSIFIER_FILE}) or delete it to use the cache "
                    f"({cached}, trained on first use)")
            model, meta = _load_weights(shipped)
            return MnistFeatures(model, meta, shipped)
        if cached.is_file():
            model, meta = _load_weights(cached)
            return MnistFeatures(model, meta, cached)
    if not train:
        raise FileNotFoundError(f"no trained MNIST classifier in {_shipped_path()} or {cached}; "
                                "call load_classifier(train=True) to train one (minutes)")
    if log is not None:
        log(f"training the MNIST classifier (once; cached in {cached})")
    model, meta = train_default_classifier(cached, log=log)
    return MnistFeatures(model, meta, cached)


def _on_active_backend(model: Any) -> Any:
    """A copy of ``model`` built on the active backend (from its config), with its weights."""
    from ..layers.serialize import module_from_config, module_to_config

    moved = module_from_config(module_to_config(model))
    moved.load_state_dict(model.state_dict())
    return moved


class MnistFeatures:
    """Penultimate features (128) and class probabilities (10) of the MNIST classifier.

    Parameters
    ----------
    model : :func:`~nanogan.metrics.classifier.mnist_classifier`, trained
    meta : what was stored with the weights (``test_accuracy``...)
    path : where the weights came from
    """

    def __init__(self, model: Any, meta: dict[str, Any] | None = None,
                 path: Path | None = None) -> None:
        self.model, self.meta, self.path = model, dict(meta or {}), path

    def __call__(self, x: np.ndarray, pixel_range: tuple[float, float] = (-1.0, 1.0),
                 batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Features and class probabilities of images.

        Parameters
        ----------
        x : images, see :func:`to_classifier_input`
        pixel_range : the range of float ``x``

        Returns
        -------
        features : float64 (N, 128); probs : float64 (N, 10), rows sum to 1 (host arrays)
        """
        from .classifier import log_softmax

        if not all(is_array(p) for p in self.model.params.values()):
            self.model = _on_active_backend(self.model)  # loaded under another array backend
        feats, logits = run_classifier(self.model, to_classifier_input(x, pixel_range),
                                       batch_size)
        return feats, np.exp(log_softmax(logits))
