"""What the MNIST examples share: their command-line flags and their run (fresh or resumed).

Each example builds its networks and its minibatches and hands them to :func:`run`, which prints
the set-up, resumes from ``OUT/checkpoint.npz`` when asked, calls :func:`nanogan.train.train`
(progress bar, sample grid, loss plot, metrics.csv, checkpoint) and reports the wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import nanogan
from nanogan.cli_args import (
    int_range,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
)
from nanogan.gan import GAN, NonFiniteError
from nanogan.train import load_training_checkpoint, train

LOSSES = ["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"]
MNIST_TRAIN = 60000


def parser(doc: str, *, steps: int, out: str, batch_size: int = 64, lr: float = 2e-4,
           k: int = 1, loss: str | None = "nonsaturating", sample_every: int = 500,
           checkpoint_every: int = 1000, penalty: str | bool | None = False,
           penalty_weight: float = 10.0) -> argparse.ArgumentParser:
    """The flags of every example (``--loss`` only where ``loss`` is not None; ``--penalty``
    and ``--penalty-weight`` where ``penalty`` is not False, ``penalty`` their default)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=steps,
                   help="generator steps (iterations; in total, when resuming)")
    p.add_argument("--batch-size", type=int_range(1, MNIST_TRAIN), default=batch_size)
    p.add_argument("--lr", type=positive_float, default=lr, help="learning rate (G and D)")
    p.add_argument("--k", type=int_range(1, 1000), default=k,
                   help="discriminator steps per generator step")
    if loss is not None:
        p.add_argument("--loss", default=loss, choices=LOSSES)
    if penalty is not False:
        p.add_argument("--penalty", choices=["gp", "r1"], default=penalty,
                       help="gradient penalty in every critic step: WGAN-GP's on interpolates "
                       "(gp) or R1 on real data (r1); none by default" if penalty is None else
                       "gradient penalty in every critic step: WGAN-GP's on interpolates (gp) "
                       "or R1 on real data (r1)")
        p.add_argument("--penalty-weight", type=positive_float, default=penalty_weight,
                       help="WGAN-GP's lambda or R1's gamma")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", type=output_dir, default=out, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz (to --steps in total)")
    p.add_argument("--sample-every", type=nonnegative_int, default=sample_every,
                   help="steps between sample grids (0: only at the end)")
    p.add_argument("--checkpoint-every", type=nonnegative_int, default=checkpoint_every,
                   help="steps between checkpoints (0: only at the end)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace, *, name: str, build: Callable[[np.random.Generator], GAN],
        make_batches: Callable[[np.random.Generator], Any],
        make_fixed_z: Callable[[GAN, np.random.Generator], np.ndarray],
        after: Callable[[GAN, dict[str, list[float]], Path], list[Path]] | None = None,
        nrow: int = 8) -> int:
    """Train (or resume) one example; returns the process exit status.

    Parameters
    ----------
    args : the namespace of :func:`parser`
    name : the example's name, stored in the checkpoint
    build : ``rng -> GAN`` with freshly initialised networks and optimizers
    make_batches : ``rng -> iterator`` of real minibatches (with ``state``/``set_state``)
    make_fixed_z : ``(gan, rng) -> z``, the generator input of the sample grid
    after : ``(gan, history, out) -> [paths]``, extra outputs written at the end
    nrow : images per row of the sample grid
    """
    out = Path(args.out)
    if args.resume:
        try:  # a missing or corrupt checkpoint, or another --batch-size: say so, no traceback
            state = load_training_checkpoint(out / "checkpoint.npz")
            batches = make_batches(np.random.default_rng(args.seed + 1))
            batches.set_state(state["batches_state"])
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: {exc}", file=sys.stderr)
            return 2
        gan, rng, fixed_z, history = (state["gan"], state["rng"], state["fixed_z"],
                                      state["history"])
        print(f"resuming from step {gan.steps} of {args.steps}")
    else:
        rng = np.random.default_rng(args.seed)
        gan = build(rng)
        batches = make_batches(np.random.default_rng(args.seed + 1))
        fixed_z = make_fixed_z(gan, np.random.default_rng(args.seed + 2))
        history = None

    print(f"nanogan {nanogan.__version__}, kernels: {nanogan.kernel_backend()}, "
          f"G {gan.G.num_params():,} params, D {gan.D.num_params():,} params, "
          f"loss {gan.loss_name}, k={gan.k}" + (f", clip={gan.clip}" if gan.clip else "")
          + (f", penalty {gan.penalty} x {gan.penalty_weight:g}" if hasattr(gan, "penalty")
             else ""))
    t0 = time.perf_counter()
    try:
        history = train(gan, batches, args.steps, rng, out=out, fixed_z=fixed_z, history=history,
                        sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                        progress=not args.no_progress, extra={"example": name}, nrow=nrow)
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = [out / "samples.png", out / "losses.png", out / "metrics.csv",
               out / "checkpoint.npz"]
    if after is not None:
        written += after(gan, history, out)
    print(f"done: {args.steps} steps in {time.perf_counter() - t0:.0f} s; wrote "
          + ", ".join(str(p) for p in written))
    return 0
