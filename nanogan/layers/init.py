"""Weight initialisation: PyTorch's defaults and the DCGAN initialiser.

PyTorch initialises ``Linear`` and ``Conv*`` weights with ``kaiming_uniform_(a=sqrt(5))``, which is
``U(-b, b)`` with ``b = 1 / sqrt(fan_in)``, and biases with ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
For ``ConvTranspose2d`` (weight ``(in, out, kh, kw)``) PyTorch's ``fan_in`` is computed from
dimension 1 of the weight, i.e. ``out * kh * kw``.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import asarray
from .base import Module, reserve


def uniform_fan_in(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int,
                   dtype: np.dtype) -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: PyTorch's default for weights and biases."""
    reserve(shape)  # within a checkpoint's size limit (see nanogan.layers.checks.size_limit)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def dcgan_init(model: Module, rng: np.random.Generator | int | None = None) -> Module:
    """The DCGAN initialiser (Radford et al. 2015), in place; returns ``model``.

    Conv, transposed conv and dense weights ``~ N(0, 0.02)``; BatchNorm weight ``~ N(1, 0.02)``;
    every bias 0.
    """
    from .base import as_rng
    from .batchnorm import _BatchNorm

    rng = as_rng(rng)
    for _, m in model.named_modules():
        for name, p in m._params.items():
            if name == "bias":
                p[...] = 0
            elif isinstance(m, _BatchNorm):
                p[...] = asarray(rng.normal(1.0, 0.02, size=p.shape))
            else:
                p[...] = asarray(rng.normal(0.0, 0.02, size=p.shape))
    return model
