"""Energy-based GAN on MNIST (Zhao et al. 2017): ``python examples/ebgan_mnist.py``.

The discriminator is an autoencoder (MLP encoder 784 -> 256 -> code, decoder code -> 256 -> 784,
linear) whose energy is the per-sample reconstruction MSE (:mod:`nanogan.ebgan`). One iteration::

    D step:  e_r = D(x), e_f = D(G(z))
             L_D = mean e_r + mean max(0, m - e_f)            (margin m, G untouched)
    G step:  x_f = G(z'), e_f = D(x_f), s = Enc(x_f)
             L_G = mean e_f + pt_weight * f_PT(s)             (pull-away term, optional)
             dL/dx_f = D.backward(dL/de_f, d_codes=pt_weight df_PT/ds, param_grads=False)

Writes into ``--out`` (default ``runs/ebgan``): ``samples.png`` (8x8 grid from fixed noise),
``reconstructions.png`` (real digits and their reconstructions by D), ``losses.png``,
``energies.png``, ``metrics.csv``, ``checkpoint.npz`` (``--resume`` continues bit for bit),
``samples.npy`` (10,000 samples in [-1, 1] for ``python -m nanogan evaluate``) and
``summary.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _run_utils import load_state, plot_curves, save_json_atomic, save_npy_atomic, save_state

import nanogan
from nanogan.backend import to_numpy
from nanogan.checkpoint import rng_state, set_rng_state
from nanogan.cli_args import float_range, nonnegative_int, output_dir, positive_float, positive_int
from nanogan.data import Minibatches, load_mnist, scale_images
from nanogan.ebgan import AutoencoderEnergy, ebgan_g_loss, margin_d_loss, pull_away
from nanogan.layers import Dense, LeakyReLU, Sequential
from nanogan.models import mlp_generator
from nanogan.optim import Adam
from nanogan.plot import save_grid
from nanogan.train import write_metrics_csv

HISTORY = ("d_loss", "g_loss", "e_real", "e_fake", "pt")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=None,
                   help="iterations (one D and one G step); default 20,000 (--quick: 30)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate (G and D)")
    p.add_argument("--margin", type=positive_float, default=0.3,
                   help="m: D pushes fakes' energy (per-pixel MSE, pixels in [-1, 1]) up to m")
    p.add_argument("--pt-weight", type=float_range(0.0, low_open=False), default=0.1,
                   help="weight of the pull-away term in G's loss (0: plain EBGAN)")
    p.add_argument("--hidden", type=positive_int, default=256,
                   help="width of G's and D's hidden layers")
    p.add_argument("--code", type=positive_int, default=64, help="size of the autoencoder's code")
    p.add_argument("--z-dim", type=positive_int, default=100)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", type=output_dir, default=None,
                   help="output folder (default runs/ebgan)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--sample-every", type=positive_int, default=500)
    p.add_argument("--checkpoint-every", type=positive_int, default=1000)
    p.add_argument("--n-samples", type=positive_int, default=10000,
                   help="samples written to samples.npy")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 30 steps (unless --steps), batch 32, 200 samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.out is None:
        a.out = "runs/ebgan" + ("_quick" if a.quick else "")
    if a.quick:  # a smoke run: small batches, frequent outputs (--steps still applies)
        a.batch_size, a.sample_every, a.checkpoint_every, a.n_samples = 32, 10, 10, 200
    a.steps = a.steps or (30 if a.quick else 20000)
    if not a.margin > 0:
        p.error(f"--margin must be positive, got {a.margin}")
    return a


def autoencoder(hidden: int, code: int, rng: np.random.Generator) -> AutoencoderEnergy:
    """EBGAN's discriminator: ``784 -> hidden -> code -> hidden -> 784`` (LeakyReLU(0.2)).

    The decoder's output is linear, not Tanh: with a saturating output, G found a saturated
    +-1 pattern that the decoder reproduced exactly, where D's gradient to raise its energy
    vanished, and every sample collapsed onto it.
    """
    enc = Sequential(Dense(784, hidden, rng=rng), LeakyReLU(0.2), Dense(hidden, code, rng=rng))
    dec = Sequential(Dense(code, hidden, rng=rng), LeakyReLU(0.2), Dense(hidden, 784, rng=rng))
    return AutoencoderEnergy(enc, dec)


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_train = scale_images(load_mnist("train")[0], shape="flat")  # (60000, 784) in [-1, 1]
    init_rng = np.random.default_rng(args.seed)
    G = mlp_generator(args.z_dim, args.hidden, 784, rng=init_rng)
    D = autoencoder(args.hidden, args.code, init_rng)
    g_opt = Adam(G, lr=args.lr, betas=(0.5, 0.999))
    d_opt = Adam(D, lr=args.lr, betas=(0.5, 0.999))
    batches = Minibatches(x_train, args.batch_size, np.random.default_rng(args.seed + 1))
    noise_rng = np.random.default_rng(args.seed + 2)
    fixed_z = np.random.default_rng(args.seed + 3).standard_normal((64, args.z_dim),
                                                                   dtype=np.float32)
    history: dict[str, list] = {"step": [], **{k: [] for k in HISTORY}}
    parts = {"G": G, "D": D, "g_opt": g_opt, "d_opt": d_opt}
    ckpt = out / "checkpoint.npz"
    step = 0
    if args.resume:
        try:
            meta = load_state(ckpt, parts, history, batches)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"error: cannot resume from {ckpt}: {exc}", file=sys.stderr)
            return 2
        step = int(meta["step"])
        set_rng_state(noise_rng, meta["noise_rng"])
        print(f"resuming from step {step} of {args.steps}")

    def checkpoint() -> None:
        save_state(ckpt, parts, history, {"format": "nanogan-ebgan-checkpoint-1", "step": step,
                                          "noise_rng": rng_state(noise_rng), "args": vars(args)},
                   batches)
        write_metrics_csv(history, out / "metrics.csv")
        if history["step"]:
            plot_curves(history, "step", ("d_loss", "g_loss"), out / "losses.png", "loss", 50,
                        "EBGAN losses")
            plot_curves(history, "step", ("e_real", "e_fake"), out / "energies.png",
                        f"energy (margin {args.margin})", 50, "reconstruction MSE")

    def snapshot() -> None:
        save_grid(G(fixed_z, train=False), out / "samples.png")
        real = x_train[:32]  # host data; the reconstructions come back to the host to be drawn
        D_ = to_numpy(D.decoder(D.encoder(real, train=False), train=False))
        pairs = np.stack([real, D_], axis=1).reshape(64, 784)  # real, reconstruction, ...
        save_grid(pairs, out / "reconstructions.png")

    print(f"nanogan {nanogan.__version__}, kernels: {nanogan.kernel_backend()}, "
          f"G {G.num_params():,} params, D (autoencoder) {D.num_params():,} params, "
          f"margin {args.margin}, pull-away weight {args.pt_weight}")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, dynamic_ncols=True,
               desc="EBGAN")
    try:
        while step < args.steps:
            # ---- D: L_D = mean D(x) + mean max(0, m - D(G(z)))
            x = next(batches)
            z = noise_rng.standard_normal((len(x), args.z_dim), dtype=np.float32)
            fake = G(z)
            D.zero_grad()
            e_real, c_real = D.forward(x)
            e_fake, c_fake = D.forward(fake)
            d_value, d_real, d_fake = margin_d_loss(e_real, e_fake, args.margin)
            D.backward(d_real, c_real, input_grad=False)
            D.backward(d_fake, c_fake, input_grad=False)
            d_opt.step()
            # ---- G: L_G = mean D(G(z)) + pt_weight * f_PT(Enc(G(z)))
            z = noise_rng.standard_normal((len(x), args.z_dim), dtype=np.float32)
            G.zero_grad()
            fake, c_g = G.forward(z)
            e_g, c_d = D.forward(fake)
            g_value, d_e = ebgan_g_loss(e_g)
            pt_value, d_codes = 0.0, None
            if args.pt_weight > 0:
                pt_value, d_pt = pull_away(D.codes(c_d))
                d_codes = args.pt_weight * d_pt
                g_value += args.pt_weight * pt_value
            d_x = D.backward(d_e, c_d, d_codes=d_codes, param_grads=False)
            G.backward(d_x, c_g, input_grad=False)
            g_opt.step()
            step += 1
            stats = {"d_loss": d_value, "g_loss": g_value, "e_real": float(e_real.mean()),
                     "e_fake": float(e_fake.mean()), "pt": pt_value}
            bad = [k for k, v in stats.items() if not np.isfinite(v)]
            if bad:
                print(f"error: step {step}: {bad[0]} is {stats[bad[0]]}; stopping, the last "
                      "checkpoint is intact", file=sys.stderr)
                return 1
            history["step"].append(step)
            for k in HISTORY:
                history[k].append(stats[k])
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(d=f"{d_value:.3f}", g=f"{g_value:.3f}",
                                e_r=f"{stats['e_real']:.3f}", e_f=f"{stats['e_fake']:.3f}")
            if step % args.sample_every == 0:
                snapshot()
            if step % args.checkpoint_every == 0:
                checkpoint()
    finally:
        bar.close()
    snapshot()
    checkpoint()
    rng = np.random.default_rng(0)
    samples = np.concatenate([to_numpy(G(rng.standard_normal((min(1000, args.n_samples - s),
                                                              args.z_dim), dtype=np.float32),
                                         train=False))  # each batch back to the host
                              for s in range(0, args.n_samples, 1000)])
    save_npy_atomic(out / "samples.npy", samples.reshape(-1, 1, 28, 28))
    last = {k: float(np.mean(history[k][-100:])) for k in HISTORY} if history["step"] else {}
    save_json_atomic(out / "summary.json", {"steps": step, "margin": args.margin,
                                            "pt_weight": args.pt_weight,
                                            "mean_of_last_100": last,
                                            "seconds_this_run": time.perf_counter() - t0})
    print(f"done: {step} steps; wrote {', '.join(sorted(p.name for p in out.iterdir()))} "
          f"in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
