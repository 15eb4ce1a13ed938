"""Train the vanilla (MLP) GAN on MNIST: ``python examples/vanilla_mnist.py``.

Writes into ``--out`` (default ``runs/vanilla``): ``samples.png`` (an 8x8 grid from fixed noise,
refreshed during training), ``losses.png``, ``metrics.csv`` and ``checkpoint.npz``. Resume with
``--resume`` (continues bit for bit); sample later with
``python -m nanogan sample runs/vanilla/checkpoint.npz --png grid.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import nanogan
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.gan import GAN, NonFiniteError
from nanogan.models import mlp_discriminator, mlp_generator
from nanogan.optim import Adam
from nanogan.penalized import PenalizedGAN
from nanogan.train import load_training_checkpoint, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=30000, help="iterations of Algorithm 1")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (G and D)")
    p.add_argument("--k", type=int, default=1, help="discriminator steps per generator step")
    p.add_argument("--loss", default="nonsaturating",
                   choices=["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"])
    p.add_argument("--penalty", choices=["gp", "r1"], default=None,
                   help="gradient penalty in every D step: WGAN-GP's on interpolates (gp) or R1 "
                   "on real data (r1); none by default")
    p.add_argument("--penalty-weight", type=float, default=10.0,
                   help="WGAN-GP's lambda or R1's gamma")
    p.add_argument("--hidden", type=int, default=256, help="width of the hidden layers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/vanilla", help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz (to --steps in total)")
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    images, _ = load_mnist("train")
    x = scale_images(images, shape="flat")  # (60000, 784) float32 in [-1, 1]

    if args.resume:
        try:  # a missing or corrupt checkpoint, or another --batch-size: say so, no traceback
            state = load_training_checkpoint(out / "checkpoint.npz")
            batches = Minibatches(x, args.batch_size, np.random.default_rng(args.seed))
            batches.set_state(state["batches_state"])
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: {exc}", file=sys.stderr)
            return 2
        gan, rng, fixed_z, history = (state["gan"], state["rng"], state["fixed_z"],
                                      state["history"])
        print(f"resuming from step {gan.steps} of {args.steps}")
    else:
        rng = np.random.default_rng(args.seed)
        G = mlp_generator(100, args.hidden, 784, rng=rng)
        D = mlp_discriminator(784, args.hidden, rng=rng)
        opts = {"g_opt": Adam(G, lr=args.lr, betas=(0.5, 0.999)),
                "d_opt": Adam(D, lr=args.lr, betas=(0.5, 0.999))}
        if args.penalty is None:
            gan = GAN(G, D, loss=args.loss, k=args.k, **opts)
        else:
            gan = PenalizedGAN(G, D, loss=args.loss, k=args.k, penalty=args.penalty,
                               penalty_weight=args.penalty_weight, **opts)
        batches = Minibatches(x, args.batch_size, np.random.default_rng(args.seed + 1))
        fixed_z = gan.sample_noise(64, np.random.default_rng(args.seed + 2))
        history = None

    print(f"nanogan {nanogan.__version__}, kernels: {nanogan.kernel_backend()}, "
          f"G {gan.G.num_params():,} params, D {gan.D.num_params():,} params, "
          f"loss {gan.loss_name}, k={gan.k}"
          + (f", penalty {gan.penalty} x {gan.penalty_weight:g}" if hasattr(gan, "penalty")
             else ""))
    t0 = time.perf_counter()
    try:
        train(gan, batches, args.steps, rng, out=out, fixed_z=fixed_z, history=history,
              sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
              progress=not args.no_progress, extra={"example": "vanilla_mnist"})
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {args.steps} steps in {time.perf_counter() - t0:.0f} s; wrote "
          f"{out / 'samples.png'}, {out / 'losses.png'}, {out / 'metrics.csv'}, "
          f"{out / 'checkpoint.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
