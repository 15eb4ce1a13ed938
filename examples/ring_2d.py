"""Mode collapse on the ring of 8 Gaussians, for each GAN loss, with and without the remedies.

``python examples/ring_2d.py`` (a few minutes on a 2-core CPU; ``--quick`` for a smoke run)

Data: ``nanogan.toy.sample_ring`` (8 modes on a circle of radius 2, std 0.02; Metz et al. 2017).
Metric: ``nanogan.toy.ring_metrics`` on 2,500 samples (VEEGAN's protocol: a sample is high
quality within 3 std of a mode; a mode is covered with at least 10 % of its fair share of
high-quality samples, i.e. 32 of 2,500).

For every loss in ``--losses`` (minimax, nonsaturating, wasserstein with weight clipping, lsgan,
hinge) and every remedy in ``--remedies``:

* ``none``: one MLP discriminator;
* ``noise``: instance noise on D's inputs, ``sigma`` 0.5 annealed linearly to 0 over the first
  70 % of the iterations (:class:`nanogan.remedies.InstanceNoise`);
* ``ensemble``: four discriminators of increasing capacity (a logistic regression and MLPs of
  width 16, 64, 128), loss = mean of the members' (:class:`nanogan.remedies.DiscriminatorEnsemble`);

Algorithm 1 runs for ``--steps`` iterations (batch 256; G: z (16) -> 128 -> 128 -> 2, D: 2 -> 128
-> 128 -> 1, LeakyReLU 0.2; Adam(lr, (0.5, 0.999)), k = 1; Wasserstein: RMSprop(lr), k = 5,
clip 0.01; ``--lr`` 1e-3), for each of ``--seeds`` seeds. Every ``--eval-every`` iterations the
metrics are taken.

Writes to ``--out`` (default ``runs/ring_2d``): ``LOSS_REMEDY.png`` per setting (the final samples
over the data, and modes covered / share of high-quality samples over training), ``overview.png``
(final samples of every setting, first seed), ``curves.png`` (modes covered over training),
``results.json`` and ``ring_table.md`` (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from nanogan import toy
from nanogan.backend import to_numpy
from nanogan.cli_args import int_range, nonnegative_int, output_dir, positive_float, positive_int
from nanogan.gan import GAN
from nanogan.layers import Dense, LeakyReLU, Module, Sequential
from nanogan.optim import Adam, RMSprop
from nanogan.remedies import DiscriminatorEnsemble, InstanceNoise

LOSSES = ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge")
REMEDIES = ("none", "noise", "ensemble")
Z_DIM, HIDDEN, BATCH, EVAL_N = 16, 128, 256, 2500


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps",
                   type=positive_int, default=3000, help="iterations of Algorithm 1 per run")
    p.add_argument("--eval-every", type=positive_int, default=250)
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate of both networks")
    p.add_argument("--seeds",
                   type=int_range(1, 1000), default=2, help="runs per setting (seeds 0, 1, ...)")
    p.add_argument("--first-seed", type=nonnegative_int, default=0,
                   help="seeds are first-seed, first-seed + 1, ... (each run depends on its seed "
                        "only, so runs of different seeds can be done separately)")
    p.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    p.add_argument("--remedies", nargs="+", choices=REMEDIES, default=list(REMEDIES))
    p.add_argument("--jobs", type=int_range(1, 64), default=1,
                   help="settings trained in parallel processes (results do not depend on it)")
    p.add_argument("--out", type=output_dir, default="runs/ring_2d")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 60 iterations, one seed, same outputs")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.seeds = 60, 30, 1
    return args


def mlp(inp: int, out: int, width: int, rng: np.random.Generator) -> Sequential:
    return Sequential(Dense(inp, width, rng=rng), LeakyReLU(0.2), Dense(width, width, rng=rng),
                      LeakyReLU(0.2), Dense(width, out, rng=rng))


def build(loss: str, remedy: str, steps: int, rng: np.random.Generator, lr: float = 1e-3) -> GAN:
    """The GAN of one setting (see the module docstring)."""
    G = mlp(Z_DIM, 2, HIDDEN, rng)
    if remedy == "ensemble":
        D: Module = DiscriminatorEnsemble(Sequential(Dense(2, 1, rng=rng)), mlp(2, 1, 16, rng),
                                          mlp(2, 1, 64, rng), mlp(2, 1, HIDDEN, rng))
    else:
        D = mlp(2, 1, HIDDEN, rng)
    if remedy == "noise":
        D = InstanceNoise(D, sigma=0.5, sigma_end=0.0, anneal_steps=int(0.7 * steps), rng=rng)
    if loss == "wasserstein":
        return GAN(G, D, loss, g_opt=RMSprop(G, lr=lr), d_opt=RMSprop(D, lr=lr), k=5, clip=0.01)
    return GAN(G, D, loss, g_opt=Adam(G, lr=lr, betas=(0.5, 0.999)),
               d_opt=Adam(D, lr=lr, betas=(0.5, 0.999)))


def run(loss: str, remedy: str, steps: int, eval_every: int, seed: int, lr: float = 1e-3
        ) -> dict:
    """Train one setting; metrics every ``eval_every`` iterations and at the end."""
    rng = np.random.default_rng(seed)
    gan = build(loss, remedy, steps, rng, lr)
    batches = toy.ring_batches(BATCH, rng)
    z_eval = gan.sample_noise(EVAL_N, np.random.default_rng(10_000 + seed))
    hist: dict[str, list] = {"step": [], "modes_covered": [], "high_quality": []}

    def measure() -> np.ndarray:
        x = to_numpy(gan.G(z_eval, train=False))  # the samples, on the host for metrics and plots
        m = toy.ring_metrics(x)
        hist["step"].append(gan.steps)
        hist["modes_covered"].append(m.modes_covered)
        hist["high_quality"].append(m.high_quality)
        return x

    measure()
    for t in range(1, steps + 1):
        if isinstance(gan.D, InstanceNoise):
            gan.D.set_step(gan.steps)
        gan.step(batches, rng)
        if t % eval_every == 0 or t == steps:
            x = measure()
    final = toy.ring_metrics(x)
    return {"seed": seed, "history": hist, "samples": x, "modes_covered": final.modes_covered,
            "high_quality": final.high_quality, "counts": final.counts.tolist()}


def _run_job(job: tuple) -> dict:
    return run(*job)


# ------------------------------------------------------------------------------ outputs
def save_fig(fig, path: Path) -> None:
    """Write a figure atomically (temp file in the same folder, then rename)."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=75)
    plt.close(fig)
    os.replace(tmp, path)


def scatter(ax, x: np.ndarray, title: str) -> None:
    real = toy.sample_ring(EVAL_N, np.random.default_rng(123))
    ax.scatter(real[:, 0], real[:, 1], s=2, c="0.6", label="data")
    ax.scatter(x[:, 0], x[:, 1], s=2, c="C3", alpha=0.5, label="G(z)")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def plot_setting(out: Path, loss: str, remedy: str, runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    r0 = runs[0]
    scatter(axes[0], r0["samples"], f"{loss}, {remedy}: {r0['modes_covered']}/8 modes, "
            f"{100 * r0['high_quality']:.0f}% HQ (seed {r0['seed']})")
    ax = axes[1]
    for i, r in enumerate(runs):
        h = r["history"]
        ax.plot(h["step"], h["modes_covered"], f"C{i}-", label=f"modes covered, seed {r['seed']}")
    ax.set_ylim(-0.3, 8.3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("modes covered (of 8)")
    ax2 = ax.twinx()
    for i, r in enumerate(runs):
        h = r["history"]
        ax2.plot(h["step"], h["high_quality"], f"C{i}:", label=f"HQ share, seed {r['seed']}")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of high-quality samples (dotted)")
    ax.legend(fontsize=7, loc="lower right")
    save_fig(fig, out / f"{loss}_{remedy}.png")


def plot_overview(out: Path, results: dict, losses: list[str], remedies: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(remedies), len(losses),
                             figsize=(2.4 * len(losses), 2.5 * len(remedies)), squeeze=False)
    for i, rem in enumerate(remedies):
        for j, loss in enumerate(losses):
            r = results[f"{loss}/{rem}"][0]
            scatter(axes[i][j], r["samples"],
                    f"{loss}, {rem}\n{r['modes_covered']}/8, {100 * r['high_quality']:.0f}% HQ")
    fig.tight_layout()
    save_fig(fig, out / "overview.png")

    fig, axes = plt.subplots(1, len(remedies), figsize=(4.2 * len(remedies), 3.4), squeeze=False)
    for i, rem in enumerate(remedies):
        ax = axes[0][i]
        for j, loss in enumerate(losses):
            runs = results[f"{loss}/{rem}"]
            steps = runs[0]["history"]["step"]
            mean = np.mean([r["history"]["modes_covered"] for r in runs], axis=0)
            ax.plot(steps, mean, f"C{j}-", label=loss)
        ax.set_ylim(-0.3, 8.3)
        ax.set_title(f"remedy: {rem} (mean over seeds)", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("modes covered")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_fig(fig, out / "curves.png")


def table_md(results: dict, losses: list[str], remedies: list[str], steps: int,
             seeds: int) -> str:
    """Markdown: one row per loss, one column per remedy; 'modes (HQ %)' per seed."""
    head = "| loss | " + " | ".join(remedies) + " |"
    lines = [f"Modes covered of 8 and share of high-quality samples after {steps} iterations, "
             f"{seeds} seed(s) (one entry per seed, in order):", "", head,
             "|---|" + "---|" * len(remedies)]
    for loss in losses:
        cells = []
        for rem in remedies:
            runs = results[f"{loss}/{rem}"]
            cells.append(" / ".join(f"{r['modes_covered']} ({100 * r['high_quality']:.0f}%)"
                                    for r in runs))
        lines.append(f"| {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(loss, rem, args.steps, args.eval_every, seed, args.lr)
            for rem in args.remedies for loss in args.losses for seed in seeds]
    done: dict[tuple, dict] = {}
    if args.jobs > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(args.jobs) as pool:
            for job, r in zip(jobs, pool.imap(_run_job, jobs)):
                done[job] = r
                print(f"{job[0]:>13} {job[1]:>8} seed {job[4]}: {r['modes_covered']} modes, "
                      f"{r['high_quality']:.3f} high quality ({time.time() - t0:.0f} s)",
                      flush=True)
    else:
        for job in jobs:
            done[job] = r = _run_job(job)
            print(f"{job[0]:>13} {job[1]:>8} seed {job[4]}: {r['modes_covered']} modes, "
                  f"{r['high_quality']:.3f} high quality ({time.time() - t0:.0f} s)", flush=True)
    results: dict[str, list[dict]] = {}
    for rem in args.remedies:
        for loss in args.losses:
            runs = [done[(loss, rem, args.steps, args.eval_every, seed, args.lr)]
                    for seed in seeds]
            results[f"{loss}/{rem}"] = runs
            plot_setting(out, loss, rem, runs)
    plot_overview(out, results, args.losses, args.remedies)
    table = table_md(results, args.losses, args.remedies, args.steps, args.seeds)
    write_text(out / "ring_table.md", table)
    summary = {k: [{kk: vv for kk, vv in r.items() if kk != "samples"} for r in runs]
               for k, runs in results.items()}
    write_text(out / "results.json", json.dumps({"args": vars(args), "results": summary},
                                                indent=1))
    print(table)
    print(f"done in {time.time() - t0:.0f} s; wrote {out}/ring_table.md, results.json, "
          f"overview.png, curves.png and one PNG per setting")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
