"""The 1-D game of Goodfellow et al. (2014), Section 4, checked by numbers.

``python examples/toy_1d.py`` (about a minute; ``--quick`` for a seconds-long smoke run)

``p_data = N(mu, 1)``; the generator is first ``G(z) = z + m`` (``nanogan.toy.Shift``, so
``p_g = N(m, 1)`` in closed form), then a small MLP; the discriminator is a small MLP on logits.
Everything runs in float64 and writes to ``--out`` (default ``runs/toy_1d``):

* **Proposition 1** (``prop1.png``): for a fixed G, a discriminator trained on the minimax loss
  approaches ``D*(x) = p_data / (p_data + p_g)``; reported: the largest ``|sigma(D(x)) - D*(x)|``
  on the grid points where ``(p_data + p_g) / 2 >= 0.02`` (where D is constrained by data), for
  the shift G and for the MLP G trained below (whose ``p_g`` is a histogram of 10^6 samples).
* **Theorem 1** (``theorem1.png``): ``C(G) = max_D V(D, G)`` evaluated directly from D* for
  several ``m``, next to ``-log 4 + 2 JSD(p_data || p_g)`` computed separately, and next to
  ``V(D_trained, G)`` (which may not exceed ``C(G)`` up to sampling error); the minimum
  ``-log 4`` is at ``m = mu``.
* **The strict teacher** (``strict_teacher.png``): ``p_g`` far from ``p_data`` (``m = mu - 6``),
  a strong D trained against the fixed G; ``|dL_G/dm|`` for the minimax loss
  ``mean log(1 - D(G(z)))`` collapses while the non-saturating ``-mean log D(G(z))`` does not.
  The same measurement through the two remedies of ``nanogan.remedies`` (instance noise,
  an ensemble of increasing capacity), and ``m`` over GAN training (G by plain SGD, so the
  gradient's size is the step's size) for each.
* **MLP generator** (``mlp_gan.png``): Algorithm 1 (non-saturating) on an MLP G; the JSD between
  ``p_data`` and the histogram of ``p_g`` over training, and the final densities.
* **Loss profile** (``loss_profile.png``): ten logistic regressions with input noise sigma from 2
  down to 0, real ``N(mu, 1)`` against fake ``z + m``, for several ``m``
  (:func:`nanogan.remedies.noisy_loss_profile`), next to the bound ``log 4 - 2 JSD_sigma``;
  the profile's mean over ``log 4`` as a quality score, also along the MLP GAN's training.

``results.json`` holds every number; ``summary.md`` the tables of ``docs/theory.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nanogan import losses, theory, toy
from nanogan.backend import to_numpy
from nanogan.cli_args import float_range, nonnegative_int, output_dir
from nanogan.gan import GAN
from nanogan.layers import Dense, LeakyReLU, Module, Sequential
from nanogan.optim import SGD, Adam
from nanogan.remedies import InstanceNoise, increasing_capacity_ensemble, noisy_loss_profile

F64 = np.float64
GRID = np.linspace(-20.0, 25.0, 18001)  # fine enough for the trapezoidal rule (h = 0.0025)
COARSE = GRID[::20]  # h = 0.05: the bins of histogram densities of a generator's samples


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mu",
                   type=float_range(-100.0, 100.0), default=2.0, help="mean of p_data = N(mu, 1)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", type=output_dir, default="runs/toy_1d")
    p.add_argument("--quick", action="store_true", help="a few seconds: tiny runs, same outputs")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------ building blocks
def mlp(width: int, depth: int, rng: np.random.Generator) -> Sequential:
    """``1 -> width (x depth, LeakyReLU 0.2) -> 1`` in float64."""
    layers: list[Module] = []
    fan_in = 1
    for _ in range(depth):
        layers += [Dense(fan_in, width, rng=rng, dtype=F64), LeakyReLU(0.2)]
        fan_in = width
    layers.append(Dense(fan_in, 1, rng=rng, dtype=F64))
    return Sequential(*layers)


def train_discriminator(D: Module, real: Callable[[int], np.ndarray],
                        fake: Callable[[int], np.ndarray], steps: int, *, batch: int = 512,
                        lr: float = 2e-3, on_step: Callable[[int], None] | None = None) -> None:
    """Descend the minimax D loss (= -V(D, G) on the batch) for ``steps`` Adam steps."""
    opt, loss = Adam(D, lr=lr), losses.get("minimax")
    for t in range(steps):
        D.zero_grad()
        sr, cr = D.forward(real(batch))
        sf, cf = D.forward(fake(batch))
        _, dr, df = loss.d_loss(sr, sf)
        D.backward(dr, cr, input_grad=False)
        D.backward(df, cf, input_grad=False)
        opt.step()
        if on_step is not None:
            on_step(t + 1)


def d_logits(D: Module, x: np.ndarray) -> np.ndarray:
    """``D(x)`` (logits) at the grid points ``x (G,)``, shape ``(G,)`` (a single discriminator),
    on the host beside the theory's curves."""
    return to_numpy(D(x[:, None].astype(F64), train=False))[:, 0]


def d_prob(D: Module, x: np.ndarray, train: bool = False) -> np.ndarray:
    """``sigma(D(x))`` at the grid points ``x (G,)``, shape ``(G,)``; mean over members if D is
    an ensemble; on the host beside the theory's curves."""
    s = to_numpy(D(x[:, None].astype(F64), train=train))
    return (1.0 / (1.0 + np.exp(-s))).mean(axis=1)


def shift_grad(D: Module, m: float, loss_name: str, z: np.ndarray) -> float:
    """``|dL_G/dm|`` for ``G(z) = z + m`` through D (D's parameters untouched)."""
    G = toy.Shift(1, m, dtype=F64)
    x, cg = G.forward(z)
    s, cd = D.forward(x, train=True)
    _, ds = losses.get(loss_name).g_loss(s)
    G.backward(D.backward(ds, cd, param_grads=False), cg, input_grad=False)
    return float(abs(G.grads["shift"][0]))


def normal_sampler(mu: float, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    return lambda n: toy.sample_normal_1d(n, mu, 1.0, rng, F64)


def save_fig(fig, path: Path) -> None:
    """Write a figure atomically (temp file in the same folder, then rename)."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def bulk(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """Grid points where the data constrain D: ``(p_data + p_g) / 2 >= 0.02``."""
    return 0.5 * (p_data + p_g) >= 0.02


# ------------------------------------------------------------------------------ the experiments
def proposition1(D: Module, p_data: np.ndarray, p_g: np.ndarray, grid: np.ndarray = GRID
                 ) -> dict:
    """Largest and mass-weighted mean ``|sigma(D) - D*|`` on the bulk of the grid."""
    d_star = theory.optimal_discriminator(p_data, p_g)
    d = d_prob(D, grid)
    mask = bulk(p_data, p_g)
    dev = np.abs(d - d_star)
    w = 0.5 * (p_data + p_g)
    return {"max_dev": float(dev[mask].max()),
            "mean_dev": theory.trapezoid(w * dev, grid),
            "V_trained": theory.value_logits(d_logits(D, grid), p_data, p_g, grid),
            "C": theory.virtual_criterion(p_data, p_g, grid),
            "d": d, "d_star": d_star, "mask": mask, "grid": grid}


def theorem1(mu: float, ms: list[float], d_steps: int, rng: np.random.Generator) -> list[dict]:
    """C(G) directly, -log 4 + 2 JSD separately, and V(D_trained, G), for each shift m."""
    p_data = toy.normal_pdf(GRID, mu)
    rows = []
    for m in ms:
        p_g = toy.normal_pdf(GRID, m)
        c = theory.virtual_criterion(p_data, p_g, GRID)
        j = theory.jsd(p_data, p_g, GRID)
        # Monte Carlo, off the grid: E_data log D*(x) + E_g log(1 - D*(x)), 10^5 samples each
        xr, xf = rng.normal(mu, 1.0, 100_000), rng.normal(m, 1.0, 100_000)
        lr_r = -0.5 * (xr - mu) ** 2 + 0.5 * (xr - m) ** 2  # log p_data / p_g at the samples
        lr_f = -0.5 * (xf - mu) ** 2 + 0.5 * (xf - m) ** 2
        c_mc = float(np.mean(-np.logaddexp(0, -lr_r)) + np.mean(-np.logaddexp(0, lr_f)))
        D = mlp(32, 2, rng)
        train_discriminator(D, normal_sampler(mu, rng), normal_sampler(m, rng), d_steps)
        v = theory.value_logits(d_logits(D, GRID), p_data, p_g, GRID)
        rows.append({"m": m, "C": c, "jsd": j, "identity": -theory.LOG4 + 2 * j,
                     "abs_diff": abs(c - (-theory.LOG4 + 2 * j)), "C_mc": c_mc, "V_trained": v})
    return rows


def strict_teacher(mu: float, d_steps: int, every: int, rng: np.random.Generator) -> dict:
    """|dL_G/dm| for each G loss while a strong D trains against the fixed G(z) = z + mu - 6."""
    m = mu - 6.0
    z = rng.standard_normal((4096, 1))
    curves: dict[str, list] = {"step": []}
    setups = {
        "plain": mlp(64, 2, rng),
        "instance_noise": InstanceNoise(mlp(64, 2, rng), sigma=2.0, sigma_end=2.0, rng=rng),
        "ensemble": increasing_capacity_ensemble(1, (0, 8, 32, 128), rng=rng, dtype=F64),
    }
    for name, D in setups.items():
        mm, ns, steps = [], [], []

        def record(t: int, D: Module = D, mm: list = mm, ns: list = ns, steps: list = steps
                   ) -> None:
            if t % every == 0 or t == 1:
                steps.append(t)
                mm.append(shift_grad(D, m, "minimax", z))
                ns.append(shift_grad(D, m, "nonsaturating", z))

        train_discriminator(D, normal_sampler(mu, rng), normal_sampler(m, rng), d_steps,
                            on_step=record)
        curves["step"] = steps
        curves[f"{name}/minimax"] = mm
        curves[f"{name}/nonsaturating"] = ns
        curves[f"{name}/D_G_z"] = float(d_prob(D, z[:, 0] + m, train=True).mean())
    return {"m": m, "curves": curves}


def strict_teacher_gan(mu: float, iters: int, rng: np.random.Generator) -> dict:
    """G(z) = z + m by plain SGD from m = mu - 6 against a strong D (Adam, k = 5)."""
    out = {}
    settings = [("minimax", "plain"), ("nonsaturating", "plain"), ("minimax", "instance_noise"),
                ("minimax", "ensemble")]
    for loss_name, remedy in settings:
        seed = int(rng.integers(1 << 30))
        r = np.random.default_rng(seed)
        G = toy.Shift(1, mu - 6.0, dtype=F64)
        if remedy == "instance_noise":
            D: Module = InstanceNoise(mlp(64, 2, r), sigma=3.0, anneal_steps=int(0.6 * iters),
                                      rng=r)
        elif remedy == "ensemble":
            D = increasing_capacity_ensemble(1, (0, 8, 32, 128), rng=r, dtype=F64)
        else:
            D = mlp(64, 2, r)
        gan = GAN(G, D, loss_name, g_opt=SGD(G, lr=0.05), d_opt=Adam(D, lr=2e-3), k=5,
                  z_shape=(1,))
        batches = toy.normal_batches(256, mu, 1.0, r, F64)
        ms, grads = [], []
        for _ in range(iters):
            if isinstance(D, InstanceNoise):
                D.set_step(gan.steps)
            gan.step(batches, r)
            ms.append(float(G.params["shift"][0]))
            grads.append(float(abs(G.grads["shift"][0])))
        out[f"{loss_name}+{remedy}"] = {"m": ms, "grad": grads}
    return out


def mlp_gan(mu: float, iters: int, every: int, profile_every: int, profile_steps: int,
            rng: np.random.Generator) -> dict:
    """Algorithm 1 (non-saturating, Adam) with an MLP G; JSD and loss profile over training."""
    G, D = mlp(16, 2, rng), mlp(32, 2, rng)
    gan = GAN(G, D, "nonsaturating", g_opt=Adam(G, lr=1e-3, betas=(0.5, 0.999)),
              d_opt=Adam(D, lr=1e-3, betas=(0.5, 0.999)), z_shape=(1,))
    batches = toy.normal_batches(256, mu, 1.0, rng, F64)
    p_data = toy.normal_pdf(COARSE, mu)
    hist: dict[str, list] = {"step": [], "jsd": [], "profile_step": [], "profile_score": []}
    real_eval = toy.sample_normal_1d(4000, mu, 1.0, rng, F64)

    def measure(t: int) -> None:
        fake = to_numpy(G(rng.standard_normal((200_000, 1)), train=False))  # samples to the host
        hist["step"].append(t)
        hist["jsd"].append(theory.jsd(p_data, theory.histogram_density(fake, COARSE), COARSE))
        if t % profile_every == 0:
            prof = noisy_loss_profile(real_eval, fake[:4000], steps=profile_steps, rng=rng)
            hist["profile_step"].append(t)
            hist["profile_score"].append(float(prof.mean() / theory.LOG4))

    measure(0)
    for t in range(1, iters + 1):
        gan.step(batches, rng)
        if t % every == 0:
            measure(t)
    fake = to_numpy(G(rng.standard_normal((1_000_000, 1)), train=False))
    p_g = theory.histogram_density(fake, COARSE)
    return {"G": G, "D": D, "p_g": p_g, "history": hist}


def loss_profiles(mu: float, ms: list[float], steps: int, rng: np.random.Generator) -> dict:
    """Noisy logistic-regression profiles for fake z + m, and the bound log 4 - 2 JSD_sigma."""
    sigmas = np.linspace(2.0, 0.0, 10)
    real = toy.sample_normal_1d(4000, mu, 1.0, rng, F64)
    out = {"sigmas": sigmas.tolist(), "rows": []}
    for m in ms:
        fake = toy.sample_normal_1d(4000, m, 1.0, rng, F64)
        prof = noisy_loss_profile(real, fake, sigmas, steps=steps, rng=rng)
        bound = [theory.LOG4 - 2 * theory.jsd(toy.normal_pdf(GRID, mu, math.hypot(1, s)),
                                              toy.normal_pdf(GRID, m, math.hypot(1, s)), GRID)
                 for s in sigmas]
        out["rows"].append({"m": m, "profile": prof.tolist(), "bound": bound,
                            "score": float(prof.mean() / theory.LOG4)})
    return out


# ------------------------------------------------------------------------------ plots and tables
def plot_all(out: Path, mu: float, res: dict, p1_shift: dict, p1_mlp: dict, p_g_mlp: np.ndarray
             ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = mu - 7.5, mu + 4.5
    sel = (GRID >= lo) & (GRID <= hi)
    x = GRID[sel]

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, p1, title in ((axes[0], p1_shift, f"G(z) = z + {res['prop1']['shift_m']:g}"),
                          (axes[1], p1_mlp, "MLP G (after training)")):
        g = p1["grid"]
        s = (g >= lo) & (g <= hi)
        ax.plot(g[s], p1["d_star"][s], "k-", lw=2, label="D* = p_data / (p_data + p_g)")
        ax.plot(g[s], p1["d"][s], "C3--", lw=2, label="sigma(D(x)), trained D")
        ax.fill_between(g[s], 0, 1, where=p1["mask"][s], color="0.9",
                        label="bulk (where the max is taken)")
        ax.set_ylim(0, 1)
        ax.set_title(f"{title}: max |D - D*| = {p1['max_dev']:.3f}")
        ax.set_xlabel("x")
        ax.legend(fontsize=8, loc="lower left")
    save_fig(fig, out / "prop1.png")

    rows = res["theorem1"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ms = [r["m"] for r in rows]
    ax.plot(ms, [r["C"] for r in rows], "ko-", label="C(G) = V(D*, G), direct")
    ax.plot(ms, [r["identity"] for r in rows], "C1x--", ms=10, label="-log 4 + 2 JSD")
    ax.plot(ms, [r["V_trained"] for r in rows], "C0s:", label="V(D_trained, G)")
    ax.axhline(-theory.LOG4, color="0.5", lw=1, ls="--", label="-log 4")
    ax.axvline(mu, color="0.7", lw=1)
    ax.set_xlabel("generator shift m  (p_g = N(m, 1))")
    ax.set_ylabel("value")
    ax.set_title(f"Theorem 1, p_data = N({mu:g}, 1)")
    ax.legend(fontsize=8)
    save_fig(fig, out / "theorem1.png")

    st, gan = res["strict_teacher"]["curves"], res["strict_teacher_gan"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    styles = {"plain": "-", "instance_noise": "--", "ensemble": ":"}
    for name, ls in styles.items():
        ax.semilogy(st["step"], np.maximum(st[f"{name}/minimax"], 1e-300), "C3" + ls,
                    label=f"minimax, {name}")
        ax.semilogy(st["step"], st[f"{name}/nonsaturating"], "C0" + ls,
                    label=f"non-saturating, {name}")
    ax.set_xlabel("discriminator steps (G fixed, m = mu - 6)")
    ax.set_ylabel("|dL_G / dm|")
    ax.set_title("the strict teacher: generator gradient")
    ax.legend(fontsize=7)
    ax = axes[1]
    for key, run in gan.items():
        ax.plot(run["m"], label=key)
    ax.axhline(mu, color="0.5", ls="--", lw=1, label="mu")
    ax.set_xlabel("GAN iteration (k = 5, G by SGD)")
    ax.set_ylabel("generator shift m")
    ax.set_title("m over training")
    ax.legend(fontsize=7)
    save_fig(fig, out / "strict_teacher.png")

    h = res["mlp_gan"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(h["step"], h["jsd"], "k.-", label="JSD(p_data || p_g)")
    ax2 = axes[0].twinx()
    ax2.plot(h["profile_step"], h["profile_score"], "C2s--", label="loss-profile score")
    ax2.set_ylabel("profile mean / log 4", color="C2")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("JSD (nats)")
    axes[0].set_title("MLP generator, non-saturating")
    axes[0].legend(loc="upper center", fontsize=8)
    axes[1].plot(x, toy.normal_pdf(x, mu), "k-", label="p_data")
    cs = (COARSE >= lo) & (COARSE <= hi)
    axes[1].plot(COARSE[cs], p_g_mlp[cs], "C3-", label="p_g (histogram, bins 0.05)")
    axes[1].set_title("final densities")
    axes[1].legend(fontsize=8)
    save_fig(fig, out / "mlp_gan.png")

    prof = res["loss_profile"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, r in enumerate(prof["rows"]):
        ax.plot(prof["sigmas"], r["profile"], f"C{i}o-",
                label=f"m = {r['m']:g} (score {r['score']:.3f})")
        ax.plot(prof["sigmas"], r["bound"], f"C{i}:", lw=1)
    ax.axhline(theory.LOG4, color="0.5", ls="--", lw=1)
    ax.invert_xaxis()
    ax.set_xlabel("input noise sigma of the logistic regression")
    ax.set_ylabel("D loss (log 4 = indistinguishable)")
    ax.set_title("loss profile (dotted: log 4 - 2 JSD_sigma)")
    ax.legend(fontsize=8)
    save_fig(fig, out / "loss_profile.png")


def summary_md(res: dict) -> str:
    p1 = res["prop1"]
    lines = [
        "| G | max abs(sigma(D) - D*) on the bulk | mass-weighted mean | V(D_trained, G) | C(G) |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("shift", f"z + {p1['shift_m']:g}"), ("mlp", "MLP (trained)")):
        r = p1[key]
        lines.append(f"| {label} | {r['max_dev']:.4f} | {r['mean_dev']:.4f} | "
                     f"{r['V_trained']:.4f} | {r['C']:.4f} |")
    lines += ["", "| m | C(G) = V(D*, G) on the grid | -log 4 + 2 JSD | abs diff | "
              "C(G), Monte Carlo | JSD | V(D_trained, G) |", "|---|---|---|---|---|---|---|"]
    for r in res["theorem1"]:
        lines.append(f"| {r['m']:g} | {r['C']:.6f} | {r['identity']:.6f} | {r['abs_diff']:.1e} | "
                     f"{r['C_mc']:.4f} | {r['jsd']:.6f} | {r['V_trained']:.4f} |")
    st = res["strict_teacher"]["curves"]
    lines += ["", "| D | minimax abs(dL/dm), step 1 | minimax, last | non-saturating, step 1 | "
              "non-saturating, last | mean D(G(z)), last |", "|---|---|---|---|---|---|"]
    for name in ("plain", "instance_noise", "ensemble"):
        a, b = st[f"{name}/minimax"], st[f"{name}/nonsaturating"]
        lines.append(f"| {name} | {a[0]:.3e} | {a[-1]:.3e} | {b[0]:.3e} | {b[-1]:.3e} | "
                     f"{st[f'{name}/D_G_z']:.2e} |")
    lines += ["", "| G loss + D | m after training | mean abs(dL/dm), first 10% | last 10% |",
              "|---|---|---|---|"]
    for key, run in res["strict_teacher_gan"].items():
        g = np.asarray(run["grad"])
        k = max(1, len(g) // 10)
        lines.append(f"| {key} | {run['m'][-1]:.3f} | {g[:k].mean():.3e} | {g[-k:].mean():.3e} |")
    prof = res["loss_profile"]
    lines += ["", "| m | profile (sigma = 2 ... 0) | score (mean / log 4) |", "|---|---|---|"]
    for r in prof["rows"]:
        lines.append(f"| {r['m']:g} | {' '.join(f'{v:.3f}' for v in r['profile'])} | "
                     f"{r['score']:.4f} |")
    h = res["mlp_gan"]
    lines += ["", f"MLP GAN: JSD {h['jsd'][0]:.4f} at step 0 -> {h['jsd'][-1]:.4f} at step "
              f"{h['step'][-1]}; profile score {h['profile_score'][0]:.4f} -> "
              f"{h['profile_score'][-1]:.4f}."]
    return "\n".join(lines) + "\n"


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()
                if not isinstance(v, np.ndarray | Module)}
    if isinstance(o, list):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o


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
    rng = np.random.default_rng(args.seed)
    mu, q = args.mu, args.quick
    t0 = time.time()
    res: dict = {"mu": mu, "quick": q}

    # Proposition 1, shift G
    m1 = mu - 1.5
    D = mlp(32, 2, rng)
    train_discriminator(D, normal_sampler(mu, rng), normal_sampler(m1, rng), 150 if q else 4000)
    p_data = toy.normal_pdf(GRID, mu)
    p1_shift = proposition1(D, p_data, toy.normal_pdf(GRID, m1))
    print(f"Proposition 1, G(z) = z + {m1:g}: max |D - D*| = {p1_shift['max_dev']:.4f}")

    # Theorem 1
    ms = [mu - 3, mu, mu + 1] if q else [mu - 4, mu - 2, mu - 1, mu - 0.5, mu, mu + 0.5, mu + 1,
                                         mu + 2, mu + 4]
    res["theorem1"] = theorem1(mu, ms, 100 if q else 2000, rng)
    for r in res["theorem1"]:
        print(f"Theorem 1, m = {r['m']:g}: C(G) = {r['C']:.6f}, -log 4 + 2 JSD = "
              f"{r['identity']:.6f}, V(D_trained) = {r['V_trained']:.4f}")

    # MLP generator by Algorithm 1, then Proposition 1 for it
    mg = mlp_gan(mu, 60 if q else 3000, 20 if q else 100, 60 if q else 500, 50 if q else 300, rng)
    res["mlp_gan"] = mg["history"]
    fake = lambda n: mg["G"](rng.standard_normal((n, 1)), train=False)  # noqa: E731
    D = mlp(32, 2, rng)
    train_discriminator(D, normal_sampler(mu, rng), fake, 150 if q else 4000)
    p1_mlp = proposition1(D, toy.normal_pdf(COARSE, mu), mg["p_g"], COARSE)
    print(f"MLP GAN: JSD {res['mlp_gan']['jsd'][0]:.4f} -> {res['mlp_gan']['jsd'][-1]:.4f}; "
          f"Proposition 1 for it: max |D - D*| = {p1_mlp['max_dev']:.4f}")
    res["prop1"] = {"shift_m": m1, "grid_rule": "(p_data + p_g) / 2 >= 0.02",
                    "shift": p1_shift, "mlp": p1_mlp}

    # The strict teacher, and the remedies
    res["strict_teacher"] = strict_teacher(mu, 100 if q else 1500, 10 if q else 25, rng)
    st = res["strict_teacher"]["curves"]
    print(f"strict teacher: |dL/dm| minimax {st['plain/minimax'][0]:.3e} -> "
          f"{st['plain/minimax'][-1]:.3e}, non-saturating {st['plain/nonsaturating'][0]:.3e} -> "
          f"{st['plain/nonsaturating'][-1]:.3e}")
    res["strict_teacher_gan"] = strict_teacher_gan(mu, 40 if q else 1000, rng)
    for k, run in res["strict_teacher_gan"].items():
        print(f"strict teacher GAN, {k}: m {mu - 6:g} -> {run['m'][-1]:.3f}")

    # Loss profile as a quality measure
    res["loss_profile"] = loss_profiles(mu, [mu, mu - 0.5, mu - 1, mu - 2, mu - 4],
                                        50 if q else 300, rng)
    for r in res["loss_profile"]["rows"]:
        print(f"loss profile, m = {r['m']:g}: score {r['score']:.4f}")

    plot_all(out, mu, res, p1_shift, p1_mlp, mg["p_g"])
    res["seconds"] = time.time() - t0
    write_text(out / "results.json", json.dumps(_jsonable(res), indent=1))
    write_text(out / "summary.md", summary_md(res))
    print(f"done in {res['seconds']:.0f} s; wrote {out}/results.json, summary.md, prop1.png, "
          f"theorem1.png, strict_teacher.png, mlp_gan.png, loss_profile.png")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
