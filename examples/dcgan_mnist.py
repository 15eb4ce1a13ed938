"""Train DCGAN-28 (Radford et al. 2015, MNIST size) on MNIST: ``python examples/dcgan_mnist.py``.

The networks are the DCGAN-28 of ``benchmarks/BENCHMARKS.md`` (transposed convolutions with
BatchNorm and ReLU in G, strided convolutions with LeakyReLU(0.2) and BatchNorm in D), initialised
as the DCGAN paper does (``nanogan.dcgan_init``: weights N(0, 0.02), BatchNorm scales N(1, 0.02)),
trained by Algorithm 1 with Adam(2e-4, betas=(0.5, 0.999)) and batch 64.

Writes into ``--out`` (default ``runs/dcgan``): ``samples.png`` (an 8x8 grid from fixed noise,
refreshed during training), ``losses.png``, ``metrics.csv`` and ``checkpoint.npz``. Resume with
``--resume`` (continues bit for bit); sample later with
``python -m nanogan sample runs/dcgan/checkpoint.npz --png grid.png``.
"""

from __future__ import annotations

import sys

import numpy as np

import nanogan
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.gan import GAN
from nanogan.models import dcgan28_discriminator, dcgan28_generator
from nanogan.optim import Adam

try:
    from . import _gan_example
except ImportError:  # run as a script: examples/ is on sys.path
    import _gan_example


def parse_args(argv: list[str] | None = None):
    p = _gan_example.parser(__doc__, steps=3000, out="runs/dcgan", sample_every=250,
                       checkpoint_every=500)
    p.add_argument("--z-dim", type=int, default=100, help="noise dimension")
    return p.parse_args(argv)


def build(args, rng: np.random.Generator) -> GAN:
    G = nanogan.dcgan_init(dcgan28_generator(args.z_dim, rng=rng), rng)
    D = nanogan.dcgan_init(dcgan28_discriminator(rng=rng), rng)
    return GAN(G, D, loss=args.loss, k=args.k,
               g_opt=Adam(G, lr=args.lr, betas=(0.5, 0.999)),
               d_opt=Adam(D, lr=args.lr, betas=(0.5, 0.999)))


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    images, _ = load_mnist("train")
    x = scale_images(images, shape="nchw")  # (60000, 1, 28, 28) float32 in [-1, 1]
    return _gan_example.run(
        args, name="dcgan_mnist", build=lambda rng: build(args, rng),
        make_batches=lambda rng: Minibatches(x, args.batch_size, rng),
        make_fixed_z=lambda gan, rng: gan.sample_noise(64, rng))


if __name__ == "__main__":
    sys.exit(main())
