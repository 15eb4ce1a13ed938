"""Train a conditional GAN (Mirza & Osindero 2014) on MNIST: ``python examples/cgan_mnist.py``.

The vanilla MLP GAN with the digit's label fed to both networks as a one-hot code concatenated
to their inputs (``nanogan.conditional.ConditionalGAN``): G([z, onehot(y)]) with z ~ N(0, I) of
100 dimensions, D([x, onehot(y)]) on flattened images; Adam(2e-4, betas=(0.5, 0.999)), batch 64.

Writes into ``--out`` (default ``runs/cgan``): ``samples.png`` (one row per digit 0-9, ten fixed
noise vectors per row, refreshed during training), ``losses.png``, ``metrics.csv`` and
``checkpoint.npz``. At the end it prints the conditional accuracy: how often the MNIST classifier
of ``nanogan.metrics`` names the digit that was asked for. Resume with ``--resume`` (continues
bit for bit); draw a given digit later with
``python -m nanogan sample runs/cgan/checkpoint.npz --label 7 --png sevens.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nanogan.backend import xp
from nanogan.conditional import ConditionalGAN, LabeledMinibatches, conditional_accuracy
from nanogan.data import load_mnist, scale_images
from nanogan.models import mlp_discriminator, mlp_generator
from nanogan.optim import Adam

try:
    from . import _gan_example
except ImportError:  # run as a script: examples/ is on sys.path
    import _gan_example

NUM_CLASSES = 10


def parse_args(argv: list[str] | None = None):
    p = _gan_example.parser(__doc__, steps=30000, out="runs/cgan")
    p.add_argument("--hidden", type=int, default=256, help="width of the hidden layers")
    p.add_argument("--z-dim", type=int, default=100, help="noise dimension")
    p.add_argument("--eval-per-class", type=int, default=1000,
                   help="samples per digit for the closing conditional accuracy (0: skip)")
    return p.parse_args(argv)


def build(args, rng: np.random.Generator) -> ConditionalGAN:
    G = mlp_generator(args.z_dim + NUM_CLASSES, args.hidden, 784, rng=rng)
    D = mlp_discriminator(784 + NUM_CLASSES, args.hidden, rng=rng)
    return ConditionalGAN(G, D, NUM_CLASSES, loss=args.loss, k=args.k,
                          g_opt=Adam(G, lr=args.lr, betas=(0.5, 0.999)),
                          d_opt=Adam(D, lr=args.lr, betas=(0.5, 0.999)))


def fixed_grid_input(gan: ConditionalGAN, rng: np.random.Generator) -> np.ndarray:
    """Generator input of the sample grid: row d asks for digit d, column j uses noise j."""
    z = gan.sample_z(NUM_CLASSES, rng)
    return gan.generator_input(xp.tile(z, (NUM_CLASSES, 1)),
                               np.repeat(np.arange(NUM_CLASSES), NUM_CLASSES))


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    images, labels = load_mnist("train")
    x = scale_images(images, shape="flat")  # (60000, 784) float32 in [-1, 1]
    y = labels.astype(np.int64)

    def closing_note(gan: ConditionalGAN, history, out: Path) -> list[Path]:
        if args.eval_per_class > 0:
            acc = conditional_accuracy(gan, args.eval_per_class, seed=args.seed)
            print(f"conditional accuracy: {acc['accuracy']:.4f} of {acc['n']} samples "
                  "classified as the digit asked for; per digit "
                  + " ".join(f"{a:.2f}" for a in acc["per_class"]))
        return []

    return _gan_example.run(
        args, name="cgan_mnist", build=lambda rng: build(args, rng),
        make_batches=lambda rng: LabeledMinibatches(x, y, args.batch_size, rng),
        make_fixed_z=fixed_grid_input, after=closing_note, nrow=NUM_CLASSES)


if __name__ == "__main__":
    sys.exit(main())
