"""Networks for any image size: DCGAN (Radford et al. 2015) for 28 and powers of two, MLPs for any.

DCGAN generator for a side ``S = 2^n`` (n >= 4), ``width`` = ngf (64 in the paper)::

    z (N, z_dim, 1, 1)
    ConvT(z_dim, width * 2^(n-3), 4, 1, 0) BN ReLU         -> 4 x 4
    ConvT(c, c/2, 4, 2, 1) BN ReLU, n - 3 times            -> S/2 x S/2
    ConvT(width, channels, 4, 2, 1) Tanh                   -> S x S

and the discriminator mirrors it: ``Conv(channels, width, 4, 2, 1) LeakyReLU(0.2)`` (no norm on
the input layer), then ``Conv(c, 2c, 4, 2, 1) norm LeakyReLU(0.2)`` down to 4 x 4, then
``Conv(c, 1, 4, 1, 0)`` to one logit. For S = 64 and width 64 these are the paper's networks
(512 channels at 4 x 4). Side 28 uses the MNIST layout of :mod:`nanogan.models`
(1 -> 7 -> 14 -> 28) with ``channels``. Weights are drawn by :func:`nanogan.layers.dcgan_init`
(N(0, 0.02); BatchNorm scale N(1, 0.02)); no biases before a norm, as in the paper.

``norm`` chooses the discriminator's normalisation: ``"batch"`` (the paper), ``"layer"``
(per-sample, for gradient penalties, which are undefined through batch statistics) or ``"none"``.
"""

from __future__ import annotations

import numpy as np

from .backend import asarray
from .layers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    Maxout,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    dcgan_init,
)
from .layers.base import as_rng

__all__ = ["dcgan_discriminator", "dcgan_generator", "dcgan_sizes", "goodfellow2014_networks",
           "mlp_image_discriminator", "mlp_image_generator"]


def dcgan_sizes() -> str:
    """The sides the DCGAN builder takes, in words (for error messages)."""
    return "28 or a power of two >= 16 (16, 32, 64, 128, ...)"


def _levels(image_size: int, who: str) -> int:
    s = int(image_size)
    if s == 28:
        return 0
    if s >= 16 and s & (s - 1) == 0:
        return s.bit_length() - 1
    raise ValueError(f"{who}: image size {image_size} is impossible for DCGAN; it takes "
                     f"{dcgan_sizes()}: pick one with --image-size, or use an MLP model "
                     "(vanilla), which takes any size")


def _norm(kind: str, channels: int, side: int, dtype) -> list:
    from .layers import LayerNorm

    if kind == "batch":
        return [BatchNorm2d(channels, dtype=dtype)]
    if kind == "layer":
        return [LayerNorm((channels, side, side), dtype=dtype)]
    if kind == "none":
        return []
    raise ValueError(f"dcgan_discriminator: norm must be 'batch', 'layer' or 'none', got {kind!r}")


def dcgan_generator(image_size: int = 64, channels: int = 3, z_dim: int = 100, width: int = 64,
                    *, rng: np.random.Generator | int | None = None,
                    dtype=np.float32) -> Sequential:
    """``z (N, z_dim, 1, 1) -> x (N, channels, S, S)`` in [-1, 1] (see the module docstring).

    Raises ValueError for a side other than 28 or a power of two >= 16.
    """
    n = _levels(image_size, "dcgan_generator")
    rng = as_rng(rng)
    if n == 0:  # 28: 1 -> 7 -> 14 -> 28
        layers = [ConvTranspose2d(z_dim, 2 * width, 7, 1, 0, bias=False, rng=rng, dtype=dtype),
                  BatchNorm2d(2 * width, dtype=dtype), ReLU(),
                  ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                  BatchNorm2d(width, dtype=dtype), ReLU(),
                  ConvTranspose2d(width, channels, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                  Tanh()]
    else:
        c = width * 2 ** (n - 3)
        layers = [ConvTranspose2d(z_dim, c, 4, 1, 0, bias=False, rng=rng, dtype=dtype),
                  BatchNorm2d(c, dtype=dtype), ReLU()]
        for _ in range(n - 3):
            layers += [ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                       BatchNorm2d(c // 2, dtype=dtype), ReLU()]
            c //= 2
        layers += [ConvTranspose2d(c, channels, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                   Tanh()]
    return dcgan_init(Sequential(*layers), rng)


def dcgan_discriminator(image_size: int = 64, channels: int = 3, width: int = 64,
                        norm: str = "batch", *, rng: np.random.Generator | int | None = None,
                        dtype=np.float32) -> Sequential:
    """``x (N, channels, S, S) -> logits (N, 1)`` (see the module docstring).

    Raises ValueError for a side other than 28 or a power of two >= 16.
    """
    n = _levels(image_size, "dcgan_discriminator")
    rng = as_rng(rng)
    if n == 0:  # 28 -> 14 -> 7 -> 1
        layers = [Conv2d(channels, width, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                  LeakyReLU(0.2),
                  Conv2d(width, 2 * width, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                  *_norm(norm, 2 * width, 7, dtype), LeakyReLU(0.2),
                  Conv2d(2 * width, 1, 7, 1, 0, bias=False, rng=rng, dtype=dtype), Flatten()]
    else:
        side = int(image_size) // 2
        layers = [Conv2d(channels, width, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                  LeakyReLU(0.2)]
        c = width
        while side > 4:
            side //= 2
            layers += [Conv2d(c, 2 * c, 4, 2, 1, bias=False, rng=rng, dtype=dtype),
                       *_norm(norm, 2 * c, side, dtype), LeakyReLU(0.2)]
            c *= 2
        layers += [Conv2d(c, 1, 4, 1, 0, bias=False, rng=rng, dtype=dtype), Flatten()]
    return dcgan_init(Sequential(*layers), rng)


def mlp_image_generator(shape: tuple[int, int, int], z_dim: int = 100, hidden: int = 256, *,
                        rng: np.random.Generator | int | None = None,
                        dtype=np.float32) -> Sequential:
    """``z (N, z_dim) -> x (N, C, H, W)`` in [-1, 1]: the vanilla MLP generator
    (:func:`nanogan.models.mlp_generator`) for ``C*H*W`` outputs, then a Reshape."""
    from .models import mlp_generator

    c, h, w = shape
    g = mlp_generator(z_dim, hidden, c * h * w, rng=rng, dtype=dtype)
    return Sequential(*[g[i] for i in range(len(g))], Reshape(c, h, w))


def mlp_image_discriminator(shape: tuple[int, int, int], hidden: int = 256, *,
                            rng: np.random.Generator | int | None = None,
                            dtype=np.float32) -> Sequential:
    """``x (N, C, H, W) -> logits (N, 1)``: Flatten, then the vanilla MLP discriminator."""
    from .models import mlp_discriminator

    c, h, w = shape
    d = mlp_discriminator(c * h * w, hidden, rng=rng, dtype=dtype)
    return Sequential(Flatten(), *[d[i] for i in range(len(d))])


def goodfellow2014_networks(shape: tuple[int, int, int], z_dim: int = 100, g_hidden: int = 1200,
                            d_units: int = 240, d_pieces: int = 5, *,
                            rng: np.random.Generator | int | None = None,
                            x_mean: np.ndarray | None = None) -> tuple[Sequential, Sequential]:
    """G and D of Goodfellow et al. (2014)'s MNIST model for images of any ``shape``.

    G: ``z -> ReLU g_hidden -> ReLU g_hidden -> sigmoid C*H*W`` (pixels in [0, 1]), reshaped;
    D: ``dropout 0.2 -> maxout d_units x d_pieces -> dropout 0.5 -> maxout -> dropout 0.5 ->
    logit``. Weights ``U(-0.05, 0.05)`` (G) and ``U(-0.005, 0.005)`` (D), biases 0, G's output
    bias ``logit(mean image)`` when ``x_mean`` (in [0, 1], flat) is given, as ``mnist.yaml``.
    The dropout layers share ``rng`` (training checkpoints store that, see
    :func:`nanogan.train.module_rngs`).
    """
    rng = as_rng(rng)
    c, h, w = shape
    d_in = c * h * w
    G = Sequential(Dense(z_dim, g_hidden, rng=rng), ReLU(), Dense(g_hidden, g_hidden, rng=rng),
                   ReLU(), Dense(g_hidden, d_in, rng=rng), Sigmoid(), Reshape(c, h, w))
    D = Sequential(Flatten(), Dropout(0.2, rng=rng), Maxout(d_in, d_units, d_pieces, rng=rng),
                   Dropout(0.5, rng=rng), Maxout(d_units, d_units, d_pieces, rng=rng),
                   Dropout(0.5, rng=rng), Dense(d_units, 1, rng=rng))
    for net, irange in ((G, 0.05), (D, 0.005)):
        for name, p in net.params.items():
            p[...] = asarray(rng.uniform(-irange, irange, p.shape)) if name.endswith("weight") \
                else 0  # drawn on the host, moved to the parameter's backend
    if x_mean is not None:
        m = np.clip(np.asarray(x_mean, np.float64).reshape(-1), 1e-5, 1 - 1e-5)
        G.params["4.bias"][...] = asarray(np.log(m / (1 - m)))
    return G, D
