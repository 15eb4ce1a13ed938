"""Train a Wasserstein GAN (Arjovsky et al. 2017) on MNIST: ``python examples/wgan_mnist.py``.

The critic is a discriminator without a sigmoid (its raw score), trained on the Wasserstein
loss ``mean D(G(z)) - mean D(x)`` (``nanogan.losses.get("wasserstein")``) with the paper's
Algorithm 1: RMSprop(5e-5), 5 critic steps per generator step, and every critic weight clipped
to [-0.01, 0.01] after each critic step (``GAN(..., clip=0.01)``). ``--arch mlp`` (the default)
uses the vanilla example's MLPs; ``--arch dcgan`` the DCGAN-28 pair (DCGAN-initialised, with
BatchNorm in the critic as in the paper's DCGAN experiments).

Writes into ``--out`` (default ``runs/wgan``): ``samples.png``, ``losses.png``,
``wasserstein.png`` (the critic's estimate ``mean D(x) - mean D(G(z))`` along training),
``metrics.csv`` and ``checkpoint.npz``. Resume with ``--resume`` (continues bit for bit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nanogan
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.gan import GAN
from nanogan.models import (
    dcgan28_discriminator,
    dcgan28_generator,
    mlp_discriminator,
    mlp_generator,
)
from nanogan.optim import RMSprop
from nanogan.plot import save_wasserstein_plot

try:
    from . import _gan_example
except ImportError:  # run as a script: examples/ is on sys.path
    import _gan_example


def parse_args(argv: list[str] | None = None):
    p = _gan_example.parser(__doc__, steps=10000, out="runs/wgan", lr=5e-5, k=5, loss=None)
    p.add_argument("--arch", choices=["mlp", "dcgan"], default="mlp")
    p.add_argument("--clip", type=float, default=0.01, help="critic weight clipping bound")
    p.add_argument("--hidden", type=int, default=256, help="width of the MLPs' hidden layers")
    return p.parse_args(argv)


def build(args, rng: np.random.Generator) -> GAN:
    if args.arch == "mlp":
        G = mlp_generator(100, args.hidden, 784, rng=rng)
        D = mlp_discriminator(784, args.hidden, rng=rng)
    else:
        G = nanogan.dcgan_init(dcgan28_generator(100, rng=rng), rng)
        D = nanogan.dcgan_init(dcgan28_discriminator(rng=rng), rng)
    return GAN(G, D, loss="wasserstein", k=args.k, clip=args.clip,
               g_opt=RMSprop(G, lr=args.lr), d_opt=RMSprop(D, lr=args.lr))


def write_wasserstein(gan: GAN, history, out: Path) -> list[Path]:
    save_wasserstein_plot(history, out / "wasserstein.png")
    tail = -np.asarray(history["d_loss"][-500:])
    print(f"critic's Wasserstein estimate over the last {len(tail)} steps: {tail.mean():.4f}")
    return [out / "wasserstein.png"]


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    images, _ = load_mnist("train")
    x = scale_images(images, shape="flat" if args.arch == "mlp" else "nchw")
    return _gan_example.run(
        args, name="wgan_mnist", build=lambda rng: build(args, rng),
        make_batches=lambda rng: Minibatches(x, args.batch_size, rng),
        make_fixed_z=lambda gan, rng: gan.sample_noise(64, rng), after=write_wasserstein)


if __name__ == "__main__":
    sys.exit(main())
