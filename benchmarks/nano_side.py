"""nanogan's side of the benchmark: the reference GANs and one iteration of Algorithm 1."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import nanogan
from nanogan.models import (
    dcgan28_discriminator,
    dcgan28_generator,
    mlp_discriminator,
    mlp_generator,
)
from nanogan.optim import Adam

BUILDERS = {"mlp": (mlp_generator, mlp_discriminator),
            "dcgan": (dcgan28_generator, dcgan28_discriminator)}


def build_gan(arch: str, *, seed: int = 0, dtype=np.float32) -> nanogan.GAN:
    """G and D of ``arch`` with PyTorch's default initialisation, non-saturating loss and
    Adam(lr=2e-4, betas=(0.5, 0.999)) on each (BENCHMARKS.md)."""
    make_g, make_d = BUILDERS[arch]
    rng = np.random.default_rng(seed)
    G, D = make_g(rng=rng, dtype=dtype), make_d(rng=rng, dtype=dtype)
    return nanogan.GAN(G, D, loss="nonsaturating",
                       g_opt=Adam(G, lr=2e-4, betas=(0.5, 0.999)),
                       d_opt=Adam(D, lr=2e-4, betas=(0.5, 0.999)))


def make_step(gan: nanogan.GAN, x_real: np.ndarray, seed: int = 1) -> Callable[[], dict]:
    """``step()`` runs one iteration, ``gan.step([x_real], rng)``: noise drawn inside, as in
    training; the real batch is fixed (drawing it is not part of the measured work)."""
    rng = np.random.default_rng(seed)
    batches = [x_real]

    def step() -> dict:
        return gan.step(batches, rng)

    return step


def fixed_iteration(gan: nanogan.GAN, x: np.ndarray, z1: np.ndarray,
                    z2: np.ndarray) -> tuple[float, float]:
    """One iteration on given noise (for the cross-check): ``(d_loss, g_loss)``."""
    d = gan.d_step(x, z1)["d_loss"]
    g = gan.g_step(z2)["g_loss"]
    return d, g
