"""``nanogan evaluate`` for images of any shape: MMD^2 and KID against the training data.

The MNIST metrics (Parzen, FID-MNIST, IS, precision/recall) need the MNIST classifier: they apply
to 28 x 28 grey samples compared with MNIST. For anything else (other sizes, colour, other data,
or ``--features``) :func:`evaluate_any` reports the metrics that apply
(:func:`nanogan.metrics.pixel.pixel_metrics`), against ``--data`` (default: the data the
checkpoint's run was trained on).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_MNIST = ("mnist", "mnist:train", "mnist:test")


def add_arguments(e: argparse.ArgumentParser) -> None:
    """The evaluate flags for data of any shape."""
    e.add_argument("--data", default=None,
                   help="real images to compare with, as 'nanogan train --data' takes them "
                        "(default: the run's data for a 'nanogan train' checkpoint, else MNIST); "
                        "other data than MNIST gives MMD^2 and KID")
    e.add_argument("--features", default=None, metavar="MODULE:FUNCTION",
                   help="compute MMD^2 and KID in this feature space: a function (N, C, H, W) "
                        "floats in [-1, 1] -> (N, F), from a module or a .py file "
                        "(default: pixels)")


def load_features(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """The function named by ``module:function`` or ``path/to/file.py:function``."""
    mod_name, _, fn_name = spec.rpartition(":")
    if not mod_name or not fn_name:
        raise ValueError(f"--features {spec!r}: write MODULE:FUNCTION or FILE.py:FUNCTION")
    if mod_name.endswith(".py"):
        if not Path(mod_name).is_file():
            raise ValueError(f"--features: file {mod_name} not found")
        spec_ = importlib.util.spec_from_file_location("nanogan_user_features", mod_name)
        module = importlib.util.module_from_spec(spec_)  # type: ignore[arg-type]
        spec_.loader.exec_module(module)  # type: ignore[union-attr]
    else:
        module = importlib.import_module(mod_name)
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ValueError(f"--features: {mod_name} has no function {fn_name!r}")
    return fn


def _samples(path: Path, n: int, seed: int, declared: tuple[float, float] | None = None
             ) -> tuple[np.ndarray, dict[str, Any]]:
    """Samples in [-1, 1] as (N, C, H, W) and the run's settings (empty for a .npy).

    A float ``.npy`` must hold finite values inside ``declared`` (None: [0, 1] if every value is
    in it, else [-1, 1]); anything else is a one-line ValueError, never clipped
    (:func:`nanogan.metrics.evaluate.check_samples`)."""
    from ..metrics.evaluate import check_samples, read_npy

    if path.suffix == ".npy":
        x = read_npy(path, "images (N, C, H, W)")
        if x.dtype.kind not in "fu":
            raise ValueError(f"{path}: expected float or uint8 images, got {x.dtype} {x.shape}")
        if x.ndim == 2 and round(np.sqrt(x.shape[1])) ** 2 == x.shape[1]:
            s = round(np.sqrt(x.shape[1]))
            x = x.reshape(len(x), 1, s, s)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{path}: samples of shape {x.shape}; expected (N, C, H, W) with C "
                             "= 1 or 3, (N, H, W) or (N, H*W) for square images")
        if x.dtype == np.uint8:
            if declared is not None:
                raise ValueError(f"{path}: uint8 images are in [0, 255]; --range applies to "
                                 "float samples only")
            return x.astype(np.float32) / np.float32(127.5) - np.float32(1.0), {}
        x = x.astype(np.float32)
        lo, hi = check_samples(x, declared, str(path))
        return (x - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1.0), {}
    from ..__main__ import generate
    from ..train import load_any_generator

    gan, extra = load_any_generator(path)  # a training checkpoint or a generator file
    x = generate(gan, n, seed)
    run = extra.get("run", {})
    if run.get("image_shape"):
        x = x.reshape(len(x), *run["image_shape"])
    return x, run


def evaluate_any(args: argparse.Namespace) -> int | None:
    """Run ``nanogan evaluate`` for non-MNIST samples; None when the MNIST metrics apply."""
    path = Path(args.path)
    if not path.is_file():
        return None  # the MNIST path reports the missing file
    declared = (None if getattr(args, "range", None) is None else
                (-1.0, 1.0) if args.range == "-1,1" else (0.0, 1.0))
    x, run = _samples(path, args.n, args.seed, declared)
    data = args.data or run.get("data_source")
    mnist_like = x.shape[1:] == (1, 28, 28) and (data is None or str(data).lower() in _MNIST)
    if mnist_like and args.features is None:
        return None
    if data is None:
        raise ValueError(f"{path}: samples of shape {x.shape[1:]} are not MNIST digits; pass "
                         "--data with the real images to compare them with")
    from ..datasets import load_dataset, scale_to_unit
    from ..metrics.pixel import pixel_metrics

    c, h, _ = x.shape[1:]
    ds = load_dataset(data, image_size=h, channels=c)
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(ds.images))[:args.reference]
    real = scale_to_unit(ds.images[np.sort(pick)])
    features = load_features(args.features) if args.features else None
    result = pixel_metrics(x, real, features=features, seed=args.seed)
    result.update({"source": str(path), "data": str(data), "shape": list(x.shape[1:]),
                   "note": "MNIST-classifier metrics (Parzen, FID, IS, precision/recall) apply "
                           "to 28x28 grey MNIST samples only"})
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{os.path.basename(str(path))}: {result['n']} samples {c}x{h}x{h} against "
              f"{result['n_reference']} images of {data}, in {result['space']} "
              f"({result['dims']} dims)")
        print(f"  MMD^2 (rbf, median bandwidth of the data)  {result['mmd']:.5f}"
              + (f" +- {result['mmd_std']:.5f}" if result["mmd_std"] else "") + "  (lower is "
              "better, 0 = indistinguishable)")
        print(f"  KID (cubic kernel)                          {result['kid']:.5f}"
              + (f" +- {result['kid_std']:.5f}" if result["kid_std"] else "") + "  (lower is "
              "better)")
        print("  (the MNIST-classifier metrics apply to 28x28 grey MNIST samples only)")
    return 0
