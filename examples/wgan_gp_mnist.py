"""Train WGAN-GP (Gulrajani et al. 2017) on MNIST: ``python examples/wgan_gp_mnist.py``.

The Wasserstein loss of ``examples/wgan_mnist.py`` with the critic kept near 1-Lipschitz by a
gradient penalty instead of weight clipping: every critic step adds
``lambda * mean_n (||dD(x_hat_n)/dx_hat_n|| - 1)^2`` on random interpolates ``x_hat`` of real and
generated images (``nanogan.penalized.PenalizedGAN``), whose gradient with respect to the
critic's weights is a gradient of a gradient, computed by the layers' hand-written second-order
backward (``nanogan.penalties``). The paper's settings: lambda = 10, 5 critic steps per generator
step, Adam(1e-4, betas=(0, 0.9)), and LayerNorm in the critic in place of BatchNorm (through
batch statistics the per-sample gradient does not exist). ``--penalty r1`` trains with R1
(Mescheder et al. 2018, ``gamma / 2 * mean ||dD(x)/dx||^2`` on real data) instead.

``--arch mlp`` (the default) pairs the vanilla example's generator with an MLP critic with
LayerNorm; ``--arch dcgan`` the DCGAN-28 generator with its discriminator, LayerNorm([128, 7, 7])
in place of BatchNorm.

Writes into ``--out`` (default ``runs/wgan_gp``): ``samples.png``, ``losses.png``,
``wasserstein.png`` (the critic's estimate, penalty excluded), ``metrics.csv`` (with the
``penalty`` per step) and ``checkpoint.npz``. Resume with ``--resume`` (continues bit for bit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nanogan
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.models import dcgan28_critic, dcgan28_generator, mlp_critic, mlp_generator
from nanogan.optim import Adam
from nanogan.penalized import PenalizedGAN
from nanogan.plot import save_wasserstein_plot

try:
    from . import _gan_example
except ImportError:  # run as a script: examples/ is on sys.path
    import _gan_example


def parse_args(argv: list[str] | None = None):
    p = _gan_example.parser(__doc__, steps=5000, out="runs/wgan_gp", lr=1e-4, k=5,
                       loss="wasserstein", penalty="gp")
    p.add_argument("--arch", choices=["mlp", "dcgan"], default="mlp")
    p.add_argument("--hidden", type=int, default=256, help="width of the MLPs' hidden layers")
    p.add_argument("--beta1", type=float, default=0.0, help="Adam's beta1 (beta2 is 0.9)")
    return p.parse_args(argv)


def build(args, rng: np.random.Generator) -> PenalizedGAN:
    if args.arch == "mlp":
        G = mlp_generator(100, args.hidden, 784, rng=rng)
        D = mlp_critic(784, args.hidden, rng=rng)
    else:
        G = nanogan.dcgan_init(dcgan28_generator(100, rng=rng), rng)
        D = nanogan.dcgan_init(dcgan28_critic(rng=rng), rng)
    betas = (args.beta1, 0.9)
    return PenalizedGAN(G, D, loss=args.loss, k=args.k, penalty=args.penalty,
                        penalty_weight=args.penalty_weight,
                        g_opt=Adam(G, lr=args.lr, betas=betas),
                        d_opt=Adam(D, lr=args.lr, betas=betas))


def write_wasserstein(gan: PenalizedGAN, history, out: Path) -> list[Path]:
    save_wasserstein_plot(history, out / "wasserstein.png")
    tail = -np.asarray(history["critic_loss"][-500:])
    pen = np.asarray(history["penalty"][-500:])
    print(f"over the last {len(tail)} steps: critic's Wasserstein estimate {tail.mean():.4f}, "
          f"penalty {pen.mean():.4f}")
    return [out / "wasserstein.png"]


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    images, _ = load_mnist("train")
    x = scale_images(images, shape="flat" if args.arch == "mlp" else "nchw")
    return _gan_example.run(
        args, name="wgan_gp_mnist", build=lambda rng: build(args, rng),
        make_batches=lambda rng: Minibatches(x, args.batch_size, rng),
        make_fixed_z=lambda gan, rng: gan.sample_noise(64, rng), after=write_wasserstein)


if __name__ == "__main__":
    sys.exit(main())
