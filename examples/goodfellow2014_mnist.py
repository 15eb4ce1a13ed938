"""The MNIST model of Goodfellow et al. (2014), as configured in the paper's ``mnist.yaml``.

``python examples/goodfellow2014_mnist.py --epochs 100``

* G: noise (100) -> ReLU 1200 -> ReLU 1200 -> sigmoid 784 (pixels in [0, 1]); weights
  ``U(-0.05, 0.05)``, biases 0, the output bias ``log(p / (1 - p))`` of the mean training image
  (``p`` clipped to [1e-5, 1 - 1e-5], pylearn2's ``init_sigmoid_bias_from_marginals``).
* D: dropout (keep 0.8) -> maxout 240x5 -> dropout (keep 0.5) -> maxout 240x5 -> dropout (keep 0.5)
  -> sigmoid unit (here a logit; the loss applies the sigmoid); weights ``U(-0.005, 0.005)``,
  biases 0; inverted dropout scaling (1.25 and 2).
* SGD, batch 100, on ``train[0:50000]`` scaled to [0, 1]; learning rate 0.1 divided by 1.000004
  after every update (floor 1e-6); momentum 0.5 in the first epoch, rising linearly to 0.7 at
  epoch 250 (pylearn2's ``MomentumAdjustor(start=1, saturate=250)``).
* The update (``--update simultaneous``, the default) is the 2014 code's own: D's loss
  ``0.5 (BCE(D(x), 1) + BCE(D(G(z)), 0))`` and G's non-saturating ``BCE(D(G(z)), 1)`` from one
  minibatch and one dropout forward pass, both gradients applied at once
  (:meth:`nanogan.GAN.simultaneous_step`). ``--update alternating`` runs Algorithm 1 (k = 1).
* The noise is N(0, I), the default of the 2014 code's ``Generator`` (``mnist.yaml`` sets none);
  ``--noise uniform`` draws U(-1, 1) instead.
* The paper's levers are flags whose defaults are the yaml's: ``--lr 0.1``, ``--lr-decay
  1.000004``, ``--final-momentum 0.7``, ``--momentum-saturate 250``, ``--d-input-keep 0.8`` and
  ``--d-hidden-keep 0.5``. The checkpoint keeps them, and a resumed run uses its own values.

Every ``--parzen-every`` epochs (and after the last; 0: never) the Parzen-window log-likelihood
of 10,000 samples is measured with the paper's protocol (:func:`nanogan.metrics.mnist_parzen`) and
appended to ``OUT/parzen.csv`` (plotted in ``OUT/parzen.png``) with the validation
log-likelihood it chose sigma by (``valid``). The generator of the best validation figure so far
is kept in ``OUT/best_G.npz`` (:mod:`nanogan.generator_file`: float32, about 10 MB, read by
``python -m nanogan evaluate`` and ``sample``); with ``--patience P`` the run goes on after
``--epochs`` until P evaluations in a row fail to beat it. ``OUT/checkpoint.npz`` (resumable
bit for bit with ``--resume``, dropout masks included) and ``OUT/samples.png`` are refreshed after
every epoch. Stop early with ``--minutes`` (the run ends after the epoch in which the time runs
out, and measures Parzen there).

Momentum note: nanogan's SGD is PyTorch's (``buf = mu buf + g; p -= lr buf``); pylearn2's is
``v = mu v - lr g; p += v``. With a constant learning rate they are the same update; with this
schedule (lr changes by 4e-6 relative per step) they differ negligibly.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import nanogan
from nanogan.backend import asarray, to_numpy
from nanogan.cli_args import (
    explicit_flags,
    float_range,
    int_range,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
)
from nanogan.data import Minibatches, load_mnist
from nanogan.gan import GAN, NonFiniteError
from nanogan.generator_file import save_generator
from nanogan.layers import Dense, Dropout, Maxout, ReLU, Sequential, Sigmoid
from nanogan.optim import SGD
from nanogan.train import load_training_checkpoint, save_training_checkpoint

STEPS_PER_EPOCH = 500  # 50,000 images, batch 100

float_at_least_one = float_range(1.0, low_open=False)
unit_float = float_range(0.0, 1.0, low_open=False)
keep_prob = float_range(0.0, 1.0)  # a keep probability in (0, 1]
#: mnist.yaml's learning-rate decay and momentum schedule (the flags' defaults)
SCHEDULE_DEFAULTS = {"lr": 0.1, "lr_decay": 1.000004, "final_momentum": 0.7,
                     "momentum_saturate": 250}


def build_parser() -> argparse.ArgumentParser:
    yaml = SCHEDULE_DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=250,
                   help="epochs of --steps-per-epoch updates (mnist.yaml's momentum schedule "
                        "saturates at 250)")
    p.add_argument("--patience", type=nonnegative_int, default=0,
                   help="after --epochs, keep training while the validation Parzen "
                   "log-likelihood has beaten its best within this many evaluations (the 2014 "
                   "code's early stopping); 0: stop at --epochs")
    p.add_argument("--max-epochs", type=positive_int, default=1000,
                   help="stop there whatever --patience says")
    p.add_argument("--minutes", type=positive_float, default=None,
                   help="stop after the epoch in which this much wall time has passed")
    p.add_argument("--update", choices=["simultaneous", "alternating"], default="simultaneous")
    p.add_argument("--init", choices=["yaml", "default"], default="yaml",
                   help="mnist.yaml's initialisation or nanogan's (PyTorch's) default")
    p.add_argument("--noise", choices=["normal", "uniform"], default="normal")
    p.add_argument("--parzen-every", type=nonnegative_int, default=10,
                   help="epochs between Parzen scores (0: only at the end)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--steps-per-epoch", type=positive_int, default=STEPS_PER_EPOCH,
                   help="updates per epoch (500 = 50,000 images at batch 100); smaller for tests")
    p.add_argument("--g-hidden", type=int_range(1, 8192), default=1200,
                   help="width of G's two ReLU layers")
    p.add_argument("--d-units", type=int_range(1, 4096), default=240,
                   help="maxout units per layer of D")
    p.add_argument("--d-pieces", type=int_range(1, 64), default=5,
                   help="pieces per maxout unit of D")
    p.add_argument("--lr", type=positive_float, default=yaml["lr"],
                   help="initial learning rate (mnist.yaml: 0.1)")
    p.add_argument("--lr-decay", type=float_at_least_one, default=yaml["lr_decay"],
                   help="the learning rate is divided by this after every update, floor 1e-6 "
                   "(mnist.yaml's ExponentialDecay: 1.000004)")
    p.add_argument("--final-momentum", type=unit_float, default=yaml["final_momentum"],
                   help="momentum rises linearly from 0.5 to this (mnist.yaml: 0.7)")
    p.add_argument("--momentum-saturate", type=positive_int, default=yaml["momentum_saturate"],
                   help="epoch at which the momentum reaches --final-momentum (mnist.yaml: 250)")
    p.add_argument("--d-input-keep", type=keep_prob, default=0.8,
                   help="D's dropout keep probability on its input (mnist.yaml: 0.8)")
    p.add_argument("--d-hidden-keep", type=keep_prob, default=0.5,
                   help="D's dropout keep probability on its hidden layers (mnist.yaml: 0.5)")
    p.add_argument("--out", type=output_dir, default="runs/goodfellow2014", help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz; the checkpoint's --update, --init, "
                   "--noise, --steps-per-epoch, sizes, schedule and dropout win over the flags "
                   "(with a note)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build(x_train: np.ndarray, init: str, rng: np.random.Generator, *, g_hidden: int = 1200,
          d_units: int = 240, d_pieces: int = 5, d_input_keep: float = 0.8,
          d_hidden_keep: float = 0.5) -> tuple[Sequential, Sequential]:
    """G and D of the paper, initialised as ``mnist.yaml`` (``init="yaml"``) or by default.

    The dropout layers draw their masks from ``rng``, the noise source, as one stream; training
    checkpoints store that sharing and the generator's state, so a resumed run continues bit for
    bit (:func:`nanogan.train.module_rngs`).
    """
    h, u, k = g_hidden, d_units, d_pieces
    G = Sequential(Dense(100, h, rng=rng), ReLU(), Dense(h, h, rng=rng), ReLU(),
                   Dense(h, 784, rng=rng), Sigmoid())
    # keep probability -> drop probability (rounded: 1 - 0.8 is 0.19999999999999996)
    p_in, p_hid = round(1.0 - d_input_keep, 12), round(1.0 - d_hidden_keep, 12)
    D = Sequential(Dropout(p_in, rng=rng), Maxout(784, u, k, rng=rng),
                   Dropout(p_hid, rng=rng), Maxout(u, u, k, rng=rng),
                   Dropout(p_hid, rng=rng), Dense(u, 1, rng=rng))
    if init == "yaml":
        for net, irange in ((G, 0.05), (D, 0.005)):
            for name, p in net.params.items():
                p[...] = asarray(rng.uniform(-irange, irange, p.shape).astype(p.dtype)
                                 if name.endswith("weight") else np.zeros(p.shape, p.dtype))
        mean = np.clip(x_train.mean(axis=0, dtype=np.float64), 1e-5, 1 - 1e-5)
        G.params["4.bias"][...] = asarray(np.log(mean / (1 - mean)).astype(np.float32))
    return G, D


def schedule(step: int, steps_per_epoch: int = STEPS_PER_EPOCH, *, lr: float = 0.1,
             lr_decay: float = 1.000004, final_momentum: float = 0.7,
             momentum_saturate: int = 250) -> tuple[float, float]:
    """(learning rate, momentum) for update ``step`` (0-based), as mnist.yaml's callbacks set them.

    Equations
    ---------
    lr_t = max(lr / lr_decay^t, 1e-6)                              (ExponentialDecay)
    mu_e = 0.5 + (final_momentum - 0.5) min(e / (saturate - 1), 1) (MomentumAdjustor, epoch e)
    """
    try:
        rate = max(lr / lr_decay**step, 1e-6)
    except OverflowError:  # lr_decay^t beyond float range: long past the floor
        rate = 1e-6
    epoch = step // steps_per_epoch
    span = max(momentum_saturate - 1, 1)
    momentum = 0.5 + (final_momentum - 0.5) * min(epoch / span, 1.0)
    return rate, momentum


def sample01(gan: GAN, n: int, seed: int = 1234) -> np.ndarray:
    """``n`` samples of G in [0, 1], (n, 784), from seeded noise."""
    rng = np.random.default_rng(seed)
    return np.concatenate([to_numpy(gan.G(gan.sample_noise(1000, rng), train=False))
                           for _ in range(-(-n // 1000))])[:n]


CSV_FIELDS = ["epoch", "updates", "seconds", "parzen", "se", "sigma", "valid"]


def append_parzen_row(path: Path, row: list[Any]) -> None:
    """Append ``row`` to ``parzen.csv``, first giving an older file (without the ``valid``
    column) the current header."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if rows and rows[0] != CSV_FIELDS:
        rows = [CSV_FIELDS] + [r + [""] * (len(CSV_FIELDS) - len(r)) for r in rows[1:]]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        os.replace(tmp, path)
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(row)


PAPER_PARZEN = (225.0, 2.0)  # Goodfellow et al. (2014), Table 1, MNIST
REAL_PARZEN = 241.2  # MNIST train[0:10000] under the same protocol (benchmarks/QUALITY.md)


def save_parzen_plot(csv_path: Path, png_path: Path,
                     others: dict[str, Path] | None = None, label: str = "this run",
                     ylim: tuple[float, float] | None = None) -> None:
    """Epoch against Parzen log-likelihood from ``parzen.csv`` files (this run's, named ``label``,
    and ``others``, by name), with the paper's 225 +- 2 and the real-data ceiling as lines
    (``ylim``: the vertical range shown; points outside it are off the plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, path in {label: csv_path, **(others or {})}.items():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            ep = [int(r["epoch"]) for r in rows]
            ll, se = (np.array([float(r[k]) for r in rows]) for k in ("parzen", "se"))
            ax.errorbar(ep, ll, yerr=se, marker="o", ms=3, capsize=2, label=name)
    mean, se = PAPER_PARZEN
    ax.axhspan(mean - se, mean + se, color="C3", alpha=0.2)
    ax.axhline(mean, color="C3", ls="--", label=f"paper: {mean:.0f} +- {se:.0f}")
    ax.axhline(REAL_PARZEN, color="k", ls=":", label=f"real images: {REAL_PARZEN}")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("epoch (500 updates)")
    ax.set_ylabel("Parzen log-likelihood (nats)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = f"{png_path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    from nanogan.metrics import mnist_parzen
    from nanogan.plot import save_grid

    parser = build_parser()
    args = parser.parse_args(argv)
    spe = args.steps_per_epoch
    out = Path(args.out)
    if args.resume:
        try:  # a missing or corrupt checkpoint: one line, no traceback
            state = load_training_checkpoint(out / "checkpoint.npz")
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: {exc}", file=sys.stderr)
            return 2
        saved_spe = state["extra"].get("steps_per_epoch", spe)
        if isinstance(saved_spe, bool) or not isinstance(saved_spe, int) or saved_spe < 1:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: its steps_per_epoch "
                  f"{saved_spe!r} is not a positive integer", file=sys.stderr)
            return 2
        done = state["gan"].steps // saved_spe
        if args.epochs <= done:
            parser.error(f"argument --epochs: must be more than the checkpoint's {done} epochs "
                         f"to continue its run, got {args.epochs}")
    out.mkdir(parents=True, exist_ok=True)
    images, _ = load_mnist("train")
    x = images[:50000].reshape(50000, 784).astype(np.float32) / np.float32(255.0)

    elapsed0 = 0.0
    if args.resume:
        gan, rng, fixed_z = state["gan"], state["rng"], state["fixed_z"]
        batches = Minibatches(x, 100, np.random.default_rng(args.seed + 1))
        try:
            batches.set_state(state["batches_state"])
        except (TypeError, ValueError) as exc:
            print(f"error: cannot resume from {out / 'checkpoint.npz'}: {exc}", file=sys.stderr)
            return 2
        elapsed0 = float(state["extra"].get("seconds", 0.0))
        # the run's own settings win over the flags: say so where they differ
        # a checkpoint written before the schedule flags existed ran the yaml's schedule
        saved_schedule = {**SCHEDULE_DEFAULTS, **state["extra"].get("schedule", {})}
        for flag, key in (("update", "update"), ("init", "init"),
                          ("steps_per_epoch", "steps_per_epoch"), *((k, k) for k in
                                                                    SCHEDULE_DEFAULTS)):
            saved = (saved_schedule[key] if key in SCHEDULE_DEFAULTS
                     else state["extra"].get(key, getattr(args, flag)))
            if saved != getattr(args, flag):
                print(f"note: --{flag.replace('_', '-')} {getattr(args, flag)} ignored: the "
                      f"checkpoint's run uses {saved}", flush=True)
                setattr(args, flag, saved)
        given = explicit_flags(parser, argv)
        arch = {"noise": gan.noise, "g_hidden": getattr(gan.G[0], "out_features", None),
                "d_units": getattr(gan.D[1], "out_features", None),
                "d_pieces": getattr(gan.D[1], "pieces", None),
                "d_input_keep": round(1.0 - gan.D[0].p, 12),
                "d_hidden_keep": round(1.0 - gan.D[2].p, 12)}
        for flag, saved in arch.items():
            if flag in given and saved != getattr(args, flag):
                print(f"note: --{flag.replace('_', '-')} {getattr(args, flag)} ignored: the "
                      f"checkpoint's run uses {saved}", flush=True)
        if "seed" in given:
            print("note: --seed is not used when resuming: the checkpoint holds the random "
                  "states", flush=True)
        spe = args.steps_per_epoch
        print(f"resuming from update {gan.steps} (epoch {gan.steps // spe})")
    else:
        rng = np.random.default_rng(args.seed)
        G, D = build(x, args.init, rng, g_hidden=args.g_hidden, d_units=args.d_units,
                     d_pieces=args.d_pieces, d_input_keep=args.d_input_keep,
                     d_hidden_keep=args.d_hidden_keep)
        lr, momentum = schedule(0, spe, **{k: getattr(args, k) for k in SCHEDULE_DEFAULTS})
        # the published runs (benchmarks/goodfellow2014) drew their noise with
        # rng.standard_normal: this reproduction keeps that sampler, so they rerun bit for bit
        gan = GAN(G, D, loss="nonsaturating", g_opt=SGD(G, lr=lr, momentum=momentum),
                  d_opt=SGD(D, lr=lr, momentum=momentum), noise=args.noise,
                  normal_sampler="numpy")
        batches = Minibatches(x, 100, np.random.default_rng(args.seed + 1))
        fixed_z = gan.sample_noise(64, np.random.default_rng(args.seed + 2))
        with open(out / "parzen.csv", "w", newline="") as f:
            csv.writer(f).writerow(CSV_FIELDS)

    sched = {k: getattr(args, k) for k in SCHEDULE_DEFAULTS}
    extra = {"example": "goodfellow2014_mnist", "update": args.update, "init": args.init,
             "steps_per_epoch": spe, "schedule": sched, "pixel_range": [0, 1]}
    print(f"nanogan {nanogan.__version__}, kernels: {nanogan.kernel_backend()}, "
          f"G {gan.G.num_params():,} params, D {gan.D.num_params():,} params, "
          f"update {args.update}, init {args.init}, noise {args.noise}, "
          + ", ".join(f"{k} {v!r}" for k, v in sched.items())
          + f", D keep {1 - gan.D[0].p:g} (input) {1 - gan.D[2].p:g} (hidden)", flush=True)
    t0 = time.perf_counter()
    epoch = gan.steps // spe
    saved_extra = state["extra"] if args.resume else {}
    best_valid = float(saved_extra.get("best_valid", -np.inf))
    since_best = int(saved_extra.get("evals_since_best", 0))

    def keep_going() -> bool:
        if epoch < args.epochs:
            return True
        return bool(args.patience) and since_best < args.patience and epoch < args.max_epochs
    saved_epoch = epoch if args.resume else None  # the epoch of the checkpoint on disk
    try:
        while keep_going():
            sums: dict[str, float] = {}
            for _ in range(spe):
                lr, momentum = schedule(gan.steps, spe, **sched)
                for opt in (gan.g_opt, gan.d_opt):
                    opt.lr, opt.momentum = lr, momentum
                xb = next(batches)
                if args.update == "simultaneous":
                    stats = gan.simultaneous_step(xb, gan.sample_noise(100, rng))
                else:
                    stats = gan.step(iter([xb]), rng)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v / spe
            epoch += 1
            seconds = elapsed0 + time.perf_counter() - t0
            print(f"epoch {epoch}: {seconds:.0f} s, lr {lr:.4f}, momentum {momentum:.3f}, "
                  + ", ".join(f"{k} {v:.3f}" for k, v in sums.items()), flush=True)
            save_grid(gan.G(fixed_z, train=False) * 2 - 1, out / "samples.png")
            out_of_time = args.minutes is not None and seconds >= 60 * args.minutes
            last = ((epoch >= args.epochs and not args.patience) or epoch >= args.max_epochs
                    or out_of_time)
            if args.parzen_every and (epoch % args.parzen_every == 0 or last):
                res = mnist_parzen(sample01(gan, 10000))
                valid = max(res.valid_mean_ll)
                print(f"epoch {epoch}: Parzen log-likelihood {res}, validation {valid:.1f}",
                      flush=True)
                append_parzen_row(out / "parzen.csv", [
                    epoch, gan.steps, f"{seconds:.0f}", f"{res.mean:.2f}", f"{res.se:.2f}",
                    f"{res.sigma:.4f}", f"{valid:.2f}"])
                save_parzen_plot(out / "parzen.csv", out / "parzen.png")
                if valid > best_valid:
                    best_valid, since_best = valid, 0
                    save_generator(out / "best_G.npz", gan, extra={
                        **extra, "epoch": epoch, "parzen": res.mean, "parzen_se": res.se,
                        "sigma": res.sigma, "valid": valid, "seconds": seconds})
                else:
                    since_best += 1
            save_training_checkpoint(out / "checkpoint.npz", gan, rng, batches, fixed_z, None,
                                     {**extra, "epoch": epoch, "seconds": seconds,
                                      "best_valid": best_valid, "evals_since_best": since_best})
            saved_epoch = epoch
            if out_of_time:
                print(f"stopping: {args.minutes} minutes reached", flush=True)
                break
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = (f"the checkpoint of epoch {saved_epoch} (update {saved_epoch * spe}) in "
                f"{out / 'checkpoint.npz'} is kept; continue with --resume"
                if saved_epoch is not None else "no checkpoint was written yet (the first comes "
                "after epoch 1)")
        print(f"\ninterrupted at update {gan.steps}; {kept}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
