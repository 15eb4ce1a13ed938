"""The reference architectures (see BENCHMARKS.md), built from nanogan layers.

* MLP GAN: the vanilla GAN of ``examples/vanilla_mnist.py``.
* DCGAN-28: the MNIST-size DCGAN, ``z`` shaped ``(N, z_dim, 1, 1)``.
* Critics for gradient penalties (WGAN-GP, R1): the MLP and DCGAN-28 discriminators with
  LayerNorm (optional) and no BatchNorm, whose per-sample input gradients exist.

Both discriminators output raw scores (logits); the losses apply the sigmoid.
"""

from __future__ import annotations

import numpy as np

from .layers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Sequential,
    Tanh,
)
from .layers.base import as_rng


def mlp_generator(z_dim: int = 100, hidden: int = 256, out: int = 784, *,
                  rng: np.random.Generator | int | None = None, dtype=np.float32) -> Sequential:
    """``z (N, z_dim) -> x (N, out)`` in [-1, 1]: Dense, LeakyReLU(0.2), Dense, LeakyReLU(0.2),
    Dense, Tanh."""
    rng = as_rng(rng)
    return Sequential(
        Dense(z_dim, hidden, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Dense(hidden, hidden, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Dense(hidden, out, rng=rng, dtype=dtype), Tanh(),
    )


def mlp_discriminator(inp: int = 784, hidden: int = 256, *,
                      rng: np.random.Generator | int | None = None,
                      dtype=np.float32) -> Sequential:
    """``x (N, inp) -> logits (N, 1)``: Dense, LeakyReLU(0.2), Dense, LeakyReLU(0.2), Dense."""
    rng = as_rng(rng)
    return Sequential(
        Dense(inp, hidden, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Dense(hidden, hidden, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Dense(hidden, 1, rng=rng, dtype=dtype),
    )


def dcgan28_generator(z_dim: int = 100, *, rng: np.random.Generator | int | None = None,
                      dtype=np.float32) -> Sequential:
    """``z (N, z_dim, 1, 1) -> x (N, 1, 28, 28)``: 1 -> 7 -> 14 -> 28 by transposed convs."""
    rng = as_rng(rng)
    return Sequential(
        ConvTranspose2d(z_dim, 128, 7, 1, 0, bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(128, dtype=dtype), ReLU(),
        ConvTranspose2d(128, 64, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(64, dtype=dtype), ReLU(),
        ConvTranspose2d(64, 1, 4, 2, 1, bias=False, rng=rng, dtype=dtype), Tanh(),
    )


def dcgan28_discriminator(*, rng: np.random.Generator | int | None = None,
                          dtype=np.float32) -> Sequential:
    """``x (N, 1, 28, 28) -> logits (N, 1)``: 28 -> 14 -> 7 -> 1 by strided convs."""
    rng = as_rng(rng)
    return Sequential(
        Conv2d(1, 64, 4, 2, 1, bias=False, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Conv2d(64, 128, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(128, dtype=dtype), LeakyReLU(0.2),
        Conv2d(128, 1, 7, 1, 0, bias=False, rng=rng, dtype=dtype), Flatten(),
    )


def mlp_critic(inp: int = 784, hidden: int = 256, *, layer_norm: bool = True,
               rng: np.random.Generator | int | None = None, dtype=np.float32) -> Sequential:
    """``x (N, inp) -> scores (N, 1)``: :func:`mlp_discriminator` with ``LayerNorm(hidden)``
    after each hidden Dense (``layer_norm``), for WGAN-GP's and R1's penalties."""
    rng = as_rng(rng)
    norm = (lambda: [LayerNorm(hidden, dtype=dtype)]) if layer_norm else (lambda: [])
    return Sequential(
        Dense(inp, hidden, rng=rng, dtype=dtype), *norm(), LeakyReLU(0.2),
        Dense(hidden, hidden, rng=rng, dtype=dtype), *norm(), LeakyReLU(0.2),
        Dense(hidden, 1, rng=rng, dtype=dtype),
    )


def dcgan28_critic(*, layer_norm: bool = True, rng: np.random.Generator | int | None = None,
                   dtype=np.float32) -> Sequential:
    """``x (N, 1, 28, 28) -> scores (N, 1)``: :func:`dcgan28_discriminator` with
    ``LayerNorm([128, 7, 7])`` (``layer_norm``) in place of its BatchNorm2d(128)."""
    rng = as_rng(rng)
    return Sequential(
        Conv2d(1, 64, 4, 2, 1, bias=False, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Conv2d(64, 128, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
        *([LayerNorm([128, 7, 7], dtype=dtype)] if layer_norm else []), LeakyReLU(0.2),
        Conv2d(128, 1, 7, 1, 0, bias=False, rng=rng, dtype=dtype), Flatten(),
    )
