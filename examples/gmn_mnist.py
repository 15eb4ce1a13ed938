"""Generative matching network: a generator trained by minimising MMD^2, no discriminator.

``python examples/gmn_mnist.py`` (MNIST) or ``python examples/gmn_mnist.py --data ring`` (the
2-D ring of 8 Gaussians of :mod:`nanogan.toy`).

Each step draws ``m`` noise vectors and ``m`` data samples and descends the unbiased MMD^2
between ``G(z)`` and the data batch, with a sum of Gaussian kernels at several bandwidths
(:mod:`nanogan.mmd_loss`, gradient by hand)::

    x = G(z);  value, dL/dx = mmd2_loss(x, y, sigmas);  G.backward(dL/dx);  Adam step

Writes into ``--out`` (default ``runs/gmn_mnist`` or ``runs/gmn_ring``): ``samples.png`` (an 8x8
grid from fixed noise, MNIST) or ``ring.png`` (samples over the ring's modes, and modes covered
during training), ``losses.png``, ``metrics.csv``, ``summary.json``, ``checkpoint.npz`` (G, Adam,
the step, the generators' states: ``--resume`` continues bit for bit) and, for MNIST,
``samples.npy`` (10,000 samples in [-1, 1] for ``python -m nanogan evaluate``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from _run_utils import load_state, save_json_atomic, save_npy_atomic, save_state

import nanogan
from nanogan import toy
from nanogan.backend import to_numpy
from nanogan.checkpoint import rng_state, set_rng_state
from nanogan.cli_args import nonnegative_int, output_dir, positive_float, positive_int
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.layers import Dense, LeakyReLU, Sequential
from nanogan.layers.serialize import module_to_config
from nanogan.mmd_loss import MMDLoss
from nanogan.models import mlp_generator
from nanogan.optim import Adam
from nanogan.plot import save_grid, save_loss_plot
from nanogan.train import write_metrics_csv

#: Bandwidths: Li et al. (2015)'s (2 .. 80, pixels in [0, 1]) doubled for pixels in [-1, 1]; for
#: the ring, from the modes' width (0.02) to the ring's diameter (4).
SIGMAS = {"mnist": (4.0, 10.0, 20.0, 40.0, 80.0, 160.0),
          "ring": (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", choices=["mnist", "ring"], default="mnist")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="generator updates (default 20,000 for MNIST, 5,000 for the ring)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="m generated and m data samples per step (default 256 / 512)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    p.add_argument("--hidden", type=positive_int, default=None, help="width of G's hidden layers")
    p.add_argument("--z-dim", type=positive_int, default=None,
                   help="noise dimension (default 32 / 8)")
    p.add_argument("--sigmas", type=positive_float, nargs="+", default=None,
                   help="Gaussian kernel bandwidths (default: see SIGMAS in the source)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", type=output_dir, default=None, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="refresh the sample grid / ring metrics every this many steps")
    p.add_argument("--checkpoint-every", type=positive_int, default=1000)
    p.add_argument("--n-samples", type=positive_int, default=10000,
                   help="samples written to samples.npy")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 30 steps (unless --steps), batch 32, 200 samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    ring = a.data == "ring"
    defaults = {"steps": (5000, 20000), "batch_size": (512, 256), "hidden": (128, 256),
                "z_dim": (8, 32), "eval_every": (250, 500)}
    if a.quick:  # a smoke run: small batches, frequent outputs (--steps still applies)
        a.steps = a.steps or 30
        a.batch_size, a.eval_every, a.n_samples, a.checkpoint_every = 32, 10, 200, 10
    for k, (r, m) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, r if ring else m)
    if a.sigmas is None:
        a.sigmas = list(SIGMAS[a.data])
    if a.out is None:
        a.out = f"runs/gmn_{a.data}" + ("_quick" if a.quick else "")
    return a


def ring_generator(z_dim: int, hidden: int, rng: np.random.Generator) -> Sequential:
    """``z (N, z_dim) -> x (N, 2)``: three LeakyReLU(0.2) hidden layers, a linear output."""
    return Sequential(Dense(z_dim, hidden, rng=rng), LeakyReLU(0.2),
                      Dense(hidden, hidden, rng=rng), LeakyReLU(0.2),
                      Dense(hidden, hidden, rng=rng), LeakyReLU(0.2),
                      Dense(hidden, 2, rng=rng))


def sample(G: Sequential, z_dim: int, n: int, seed: int) -> np.ndarray:
    """``n`` samples of ``G`` from noise of ``seed``, in batches of 1,000, as a NumPy array."""
    rng = np.random.default_rng(seed)
    return np.concatenate([to_numpy(G(rng.standard_normal((min(1000, n - s), z_dim),
                                                          dtype=np.float32), train=False))
                           for s in range(0, n, 1000)])


def ring_plot(x: np.ndarray, history: dict, path: Path, title: str) -> None:
    """Samples over the ring's modes (left), modes covered and high-quality share (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100)
    c = toy.ring_centers()
    a1.scatter(x[:, 0], x[:, 1], s=2, alpha=0.3, label="G(z)")
    a1.scatter(c[:, 0], c[:, 1], s=40, c="red", marker="x", label="modes")
    a1.set_xlim(-3, 3)
    a1.set_ylim(-3, 3)
    a1.set_aspect("equal")
    a1.legend(loc="upper right")
    a1.set_title(title)
    a2.plot(history["eval_step"], history["modes_covered"], "o-", label="modes covered (of 8)")
    a2.set_ylim(-0.2, 8.5)
    a2.set_xlabel("step")
    a3 = a2.twinx()
    a3.plot(history["eval_step"], history["high_quality"], "s-", c="C1",
            label="high-quality share")
    a3.set_ylim(-0.02, 1.02)
    a2.legend(loc="lower left")
    a3.legend(loc="lower right")
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ring = args.data == "ring"
    if ring:
        data_rng = np.random.default_rng(args.seed + 1)
        batches = None
    else:
        x_train = scale_images(load_mnist("train")[0], shape="flat")  # (60000, 784) in [-1, 1]
        batches = Minibatches(x_train, args.batch_size, np.random.default_rng(args.seed + 1))
    history: dict[str, list] = {"step": [], "mmd2": [], "eval_step": [], "modes_covered": [],
                                "high_quality": []}
    init_rng = np.random.default_rng(args.seed)
    G = (ring_generator(args.z_dim, args.hidden, init_rng) if ring
         else mlp_generator(args.z_dim, args.hidden, 784, rng=init_rng))
    opt = Adam(G, lr=args.lr)
    noise_rng = np.random.default_rng(args.seed + 2)
    step = 0
    ckpt = out / "checkpoint.npz"
    if args.resume:
        try:
            meta = load_state(ckpt, {"G": G, "opt": opt}, history, batches)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"error: cannot resume from {ckpt}: {exc}", file=sys.stderr)
            return 2
        step = int(meta["step"])
        set_rng_state(noise_rng, meta["noise_rng"])
        if ring:
            set_rng_state(data_rng, meta["data_rng"])
        print(f"resuming from step {step} of {args.steps}")
    loss = MMDLoss(args.sigmas)
    fixed_z = np.random.default_rng(args.seed + 3).standard_normal((64, args.z_dim),
                                                                   dtype=np.float32)

    def checkpoint() -> None:
        meta = {"format": "nanogan-gmn-checkpoint-1", "data": args.data, "step": step,
                "generator": module_to_config(G), "z_dim": args.z_dim, "sigmas": loss.sigmas,
                "noise_rng": rng_state(noise_rng)}
        if ring:
            meta["data_rng"] = rng_state(data_rng)
        save_state(ckpt, {"G": G, "opt": opt}, history, meta, batches)
        write_metrics_csv({"step": history["step"], "mmd2": history["mmd2"]},
                          out / "metrics.csv")
        if history["step"]:
            save_loss_plot(history, out / "losses.png", keys=("mmd2",))

    def evaluate() -> None:
        if ring:
            xs = sample(G, args.z_dim, 2500, args.seed + 4)
            m = toy.ring_metrics(xs)
            history["eval_step"].append(step)
            history["modes_covered"].append(m.modes_covered)
            history["high_quality"].append(m.high_quality)
            ring_plot(xs, history, out / "ring.png", f"GMN (MMD^2), step {step}")
        else:
            save_grid(G(fixed_z, train=False), out / "samples.png")

    print(f"nanogan {nanogan.__version__}, kernels: {nanogan.kernel_backend()}, data {args.data},"
          f" G {G.num_params():,} params, batch {args.batch_size}, sigmas {loss.sigmas}")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, dynamic_ncols=True,
               desc="GMN")
    try:
        while step < args.steps:
            y = (toy.sample_ring(args.batch_size, data_rng) if ring else next(batches))
            z = noise_rng.standard_normal((args.batch_size, args.z_dim), dtype=np.float32)
            G.zero_grad()
            x, cache = G.forward(z)
            value, dx = loss(x, y)
            if not np.isfinite(value):
                print(f"error: step {step}: MMD^2 is {value}; stopping, the last checkpoint "
                      "is intact", file=sys.stderr)
                return 1
            G.backward(dx, cache, input_grad=False)
            opt.step()
            step += 1
            history["step"].append(step)
            history["mmd2"].append(value)
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(mmd2=f"{value:.4f}")
            if step % args.eval_every == 0:
                evaluate()
            if step % args.checkpoint_every == 0:
                checkpoint()
    finally:
        bar.close()
    if not (ring and history["eval_step"] and history["eval_step"][-1] == step):
        evaluate()  # (unless the loop's last step just did)
    checkpoint()
    summary = {"data": args.data, "steps": step, "batch_size": args.batch_size,
               "sigmas": list(loss.sigmas), "final_mmd2_mean_last_100":
               float(np.mean(history["mmd2"][-100:])) if history["mmd2"] else None,
               "seconds_this_run": time.perf_counter() - t0}
    if ring:
        xs = sample(G, args.z_dim, 2500, args.seed + 4)
        m = toy.ring_metrics(xs)
        summary.update(modes_covered=m.modes_covered, high_quality=m.high_quality,
                       counts=m.counts.tolist())
        print(f"ring: {m.modes_covered} of 8 modes covered, {m.high_quality:.1%} high-quality "
              f"samples (2,500 samples; per mode {m.counts.tolist()})")
    else:
        save_npy_atomic(out / "samples.npy",
                        sample(G, args.z_dim, args.n_samples, 0).reshape(-1, 1, 28, 28))
    save_json_atomic(out / "summary.json", summary)
    print(f"done: {step} steps; wrote {', '.join(sorted(p.name for p in out.iterdir()))} "
          f"in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
