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
from nanogan.cli_args import (
    explicit_flags,
    int_range,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
    resume_conflicts,
)
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.gan import GAN, NonFiniteError
from nanogan.layers import Sequential
from nanogan.models import mlp_discriminator, mlp_generator
from nanogan.optim import Adam
from nanogan.penalized import PenalizedGAN
from nanogan.train import TrainingInterrupted, load_training_checkpoint, train

MNIST_TRAIN = 60000
#: Flags a checkpoint fixes: given with --resume, they must agree with it (--lr may change: the
#: given value wins, with a note).
RESUME_FIXED = ("loss", "k", "hidden", "batch_size")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=30000,
                   help="iterations of Algorithm 1 (in total, when resuming)")
    p.add_argument("--batch-size", type=int_range(1, MNIST_TRAIN), default=64)
    p.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate (G and D)")
    p.add_argument("--k", type=int_range(1, 1000), default=1,
                   help="discriminator steps per generator step")
    p.add_argument("--loss", default="nonsaturating",
                   choices=["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"])
    p.add_argument("--penalty", choices=["gp", "r1"], default=None,
                   help="gradient penalty in every D step: WGAN-GP's on interpolates (gp) or R1 "
                   "on real data (r1); none by default")
    p.add_argument("--penalty-weight", type=positive_float, default=10.0,
                   help="WGAN-GP's lambda or R1's gamma")
    p.add_argument("--hidden", type=int_range(1, 8192), default=256,
                   help="width of the hidden layers")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", type=output_dir, default="runs/vanilla", help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz (to --steps in total); --loss, --k, "
                   "--hidden and --batch-size come from the checkpoint and, if given, must agree "
                   "with it; a given --lr replaces the checkpoint's")
    p.add_argument("--sample-every", type=nonnegative_int, default=500,
                   help="steps between sample grids (0: only at the end)")
    p.add_argument("--checkpoint-every", type=nonnegative_int, default=1000,
                   help="steps between checkpoints (0: only at the end)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.resume:
        try:  # a missing or corrupt checkpoint: say so, no traceback
            state = load_training_checkpoint(out / "checkpoint.npz")
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: {exc}", file=sys.stderr)
            return 2
        gan = state["gan"]
        first = gan.G[0] if isinstance(gan.G, Sequential) and len(gan.G) else None
        saved = {"loss": gan.loss_name, "k": gan.k,
                 "hidden": getattr(first, "out_features", None),
                 "batch_size": (state["batches_state"] or {}).get("batch_size")}
        given = explicit_flags(parser, argv)
        conflicts = resume_conflicts(args, given, saved)
        if conflicts:
            parser.error(f"--resume: {conflicts}; drop these flags to continue the checkpoint's "
                         "run, or start a new run in another --out")
        if args.steps <= gan.steps:
            parser.error(f"argument --steps: must be more than the checkpoint's {gan.steps} "
                         f"steps to continue it, got {args.steps}")
        if "lr" in given and args.lr != gan.g_opt.lr:
            print(f"note: --lr {args.lr:g} replaces the checkpoint's {gan.g_opt.lr:g} for G and "
                  "D from here on (the run no longer matches an uninterrupted one)")
            gan.g_opt.lr = gan.d_opt.lr = args.lr
        args.batch_size = saved["batch_size"] or args.batch_size
    images, _ = load_mnist("train")
    x = scale_images(images, shape="flat")  # (60000, 784) float32 in [-1, 1]

    if args.resume:
        try:
            batches = Minibatches(x, args.batch_size, np.random.default_rng(args.seed))
            batches.set_state(state["batches_state"])
        except (TypeError, ValueError) as exc:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: {exc}", file=sys.stderr)
            return 2
        rng, fixed_z, history = state["rng"], state["fixed_z"], state["history"]
        if "seed" in explicit_flags(parser, argv):
            print("note: --seed is not used when resuming: the checkpoint holds the random states")
        print(f"resuming from step {gan.steps} of {args.steps} (loss {gan.loss_name}, "
              f"k={gan.k}, lr {gan.g_opt.lr:g}, batch size {args.batch_size}: the checkpoint's)")
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
    except TrainingInterrupted as exc:
        print(f"\n{exc}; continue with --resume", file=sys.stderr)
        return 130
    print(f"done: {args.steps} steps in {time.perf_counter() - t0:.0f} s; wrote "
          f"{out / 'samples.png'}, {out / 'losses.png'}, {out / 'metrics.csv'}, "
          f"{out / 'checkpoint.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
