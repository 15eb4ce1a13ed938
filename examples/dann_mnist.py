"""Domain-adversarial training (Ganin et al. 2016): ``python examples/dann_mnist.py``.

Labelled MNIST digits are the *source* domain; the *target* domain is the same digits transformed
(``--target texture``: each digit's strokes drawn over a random texture, ``max(x, t)``, a
grey-level cousin of MNIST-M; ``--target invert``: white background, black strokes), seen in
training WITHOUT labels. Three networks::

    features  f = F(x)            784 -> 256 -> 128 (ReLU)
    labels    C(f)                128 -> 10 logits (softmax cross-entropy, source only)
    domain    Dom(GRL_lambda(f))  128 -> 128 -> 1 logit (source = 1, target = 0)

One step descends ``L = CE(C(F(x_s)), y_s) + BCE(Dom(F(x_s)), 1) + BCE(Dom(F(x_t)), 0)``, but the
gradient reversal layer (:class:`nanogan.layers.GradientReversal`) hands F the domain loss's
gradient times ``-lambda``: Dom learns to tell the domains apart, F learns features that both
classify the source digits and hide the domain. ``lambda`` follows Ganin et al.'s schedule
``2 / (1 + exp(-10 p)) - 1`` (``p``: fraction of training done) times ``--lambda-max``.

The script trains two models from the same initial weights and minibatches: *source only*
(``lambda = 0``: the domain head trains but F never sees its gradient) and *DANN*, and reports
the accuracy of each on the transformed MNIST test set (the target) and on the plain test set.
Writes into ``--out`` (default ``runs/dann``): ``dann.png`` (target accuracy over training, and
example source and target digits), ``accuracy.csv``, ``summary.json``, ``checkpoint.npz`` (the
DANN model's weights).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _run_utils import save_json_atomic, save_state

import nanogan
from nanogan.backend import to_numpy
from nanogan.cli_args import float_range, nonnegative_int, output_dir, positive_float, positive_int
from nanogan.data import Minibatches, load_mnist
from nanogan.layers import Dense, GradientReversal, ReLU, Sequential
from nanogan.losses import bce_with_logits
from nanogan.metrics.classifier import softmax_cross_entropy
from nanogan.optim import SGD, Adam


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--target", choices=["texture", "invert"], default="texture",
                   help="how the unlabelled target domain is made from MNIST")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="updates of each model; default 6,000 (--quick: 30)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="source and target, each")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="sgd: Ganin et al.'s SGD, momentum 0.9, learning rate "
                   "lr / (1 + 10 p)^0.75; adam: Adam(lr), which rescales the reversed gradient "
                   "per parameter, so lambda loses its meaning")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default 1e-3 for adam, 1e-2 for sgd)")
    p.add_argument("--lambda-max", type=float_range(0.0, low_open=False), default=1.0,
                   help="final weight of the reversed domain gradient")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--eval-every", type=positive_int, default=500)
    p.add_argument("--out", type=output_dir, default=None, help="output folder (default runs/dann)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 30 steps (unless --steps) on 2,000 images, evaluated on 500")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.lr is None:
        a.lr = 1e-3 if a.optimizer == "adam" else 1e-2
    if a.out is None:
        a.out = "runs/dann" + ("_quick" if a.quick else "")
    if a.quick:  # a smoke run: small batches, frequent evaluations (--steps still applies)
        a.batch_size, a.eval_every = 32, 10
    a.steps = a.steps or (30 if a.quick else 6000)
    return a


# ---------------------------------------------------------------------------- the target domain
def texture(n: int, rng: np.random.Generator, peak: float = 0.8) -> np.ndarray:
    """``n`` random 28x28 textures in ``[0, peak]``: a smooth random field (5x5 values,
    bilinear upsampling) plus fine noise."""
    coarse = rng.uniform(0.0, 1.0, (n, 5, 5))
    t = np.linspace(0, 4, 28)
    i0 = np.minimum(t.astype(int), 3)
    w = (t - i0)[None, :]
    rows = coarse[:, i0, :] * (1 - w[..., None]) + coarse[:, i0 + 1, :] * w[..., None]
    field = rows[:, :, i0] * (1 - w[:, None, :]) + rows[:, :, i0 + 1] * w[:, None, :]
    return peak * np.clip(field + 0.2 * rng.uniform(-1.0, 1.0, (n, 28, 28)), 0.0, 1.0)


def to_target(images: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """MNIST ``uint8 (N, 28, 28)`` -> the target domain's images, flat, float32 in [-1, 1].

    ``texture``: ``max(x, t)``, the digit's strokes over a random texture ``t`` (in [0, 0.8],
    pixels in [0, 1]: the strokes stay the brightest pixels, the background is no longer black);
    ``invert``: ``1 - x``.
    """
    x = images.astype(np.float64) / 255.0
    out = 1.0 - x if kind == "invert" else np.maximum(x, texture(len(x), rng))
    return (out.reshape(len(x), 784) * 2.0 - 1.0).astype(np.float32)


def to_source(images: np.ndarray) -> np.ndarray:
    return (images.reshape(len(images), 784).astype(np.float32) / np.float32(127.5)
            - np.float32(1.0))


# ---------------------------------------------------------------------------- the model
class DANN:
    """Feature extractor, label classifier and domain classifier (behind a gradient reversal)."""

    def __init__(self, rng: np.random.Generator, lr: float, optimizer: str = "adam") -> None:
        self.F = Sequential(Dense(784, 256, rng=rng), ReLU(), Dense(256, 128, rng=rng), ReLU())
        self.C = Sequential(Dense(128, 10, rng=rng))
        self.grl = GradientReversal(0.0)
        self.Dom = Sequential(self.grl, Dense(128, 128, rng=rng), ReLU(), Dense(128, 1, rng=rng))
        self.opts = [Adam(m, lr=lr) if optimizer == "adam" else SGD(m, lr=lr, momentum=0.9)
                     for m in (self.F, self.C, self.Dom)]
        self.lr0 = lr

    def parts(self) -> dict:
        return {"F": self.F, "C": self.C, "Dom": self.Dom, "opt_F": self.opts[0],
                "opt_C": self.opts[1], "opt_Dom": self.opts[2]}

    def step(self, xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, lam: float) -> dict:
        """One update of all three networks::

            L = CE(C(F(x_s)), y_s) + BCE(Dom(F(x_s)), 1) + BCE(Dom(F(x_t)), 0)
            dL/df_s = C.backward(dCE) + Dom.backward(dBCE_s)   (Dom's includes the GRL: -lambda)
            dL/df_t = Dom.backward(dBCE_t)
        """
        self.grl.lambda_ = lam
        for m in (self.F, self.C, self.Dom):
            m.zero_grad()
        fs, c_fs = self.F.forward(xs)
        ft, c_ft = self.F.forward(xt)
        logits, c_c = self.C.forward(fs)
        ce, d_logits = softmax_cross_entropy(logits, ys)
        ds, c_ds = self.Dom.forward(fs)
        dt, c_dt = self.Dom.forward(ft)
        bce_s, d_ds = bce_with_logits(ds, 1.0)
        bce_t, d_dt = bce_with_logits(dt, 0.0)
        d_fs = self.C.backward(d_logits, c_c) + self.Dom.backward(d_ds, c_ds)
        d_ft = self.Dom.backward(d_dt, c_dt)
        self.F.backward(d_fs, c_fs, input_grad=False)
        self.F.backward(d_ft, c_ft, input_grad=False)
        for opt in self.opts:
            opt.step()
        dom_acc = float(((ds > 0).sum() + (dt < 0).sum()) / (ds.size + dt.size))
        return {"ce": ce, "domain_bce": 0.5 * (bce_s + bce_t), "domain_acc": dom_acc}

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        hits = 0
        for s in range(0, len(x), 1000):
            logits = self.C(self.F(x[s:s + 1000], train=False), train=False)
            predicted = to_numpy(logits.argmax(axis=1))  # class indices back to the host
            hits += int((predicted == y[s:s + 1000]).sum())
        return hits / len(x)


def figure(hist: dict, xs: np.ndarray, xt: np.ndarray, path: Path, title: str) -> None:
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanogan.plot import image_grid

    fig = plt.figure(figsize=(11, 4), dpi=100)
    ax = fig.add_subplot(1, 2, 1)
    for key, label, style in (("dann_target", "DANN: target", "o-"),
                              ("source_only_target", "source only: target", "s-"),
                              ("dann_source", "DANN: source", ":"),
                              ("source_only_source", "source only: source", "--")):
        ax.plot(hist["step"], hist[key], style, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    ax2 = fig.add_subplot(1, 2, 2)
    grid = np.concatenate([image_grid(xs[:16].reshape(-1, 1, 28, 28), 8),
                           image_grid(xt[:16].reshape(-1, 1, 28, 28), 8)], axis=0)
    ax2.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax2.set_title("source (top two rows), target (bottom two rows)")
    ax2.axis("off")
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
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    if args.quick:
        train_images, train_labels = train_images[:2000], train_labels[:2000]
        test_images, test_labels = test_images[:500], test_labels[:500]
    half = len(train_images) // 2  # source and target come from disjoint halves of train
    xs, ys = to_source(train_images[:half]), train_labels[:half].astype(np.int64)
    xt = to_target(train_images[half:], args.target, np.random.default_rng(args.seed + 10))
    xs_test, y_test = to_source(test_images), test_labels.astype(np.int64)
    xt_test = to_target(test_images, args.target, np.random.default_rng(args.seed + 11))

    models = {"source_only": DANN(np.random.default_rng(args.seed), args.lr, args.optimizer),
              "dann": DANN(np.random.default_rng(args.seed), args.lr, args.optimizer)}
    idx = np.arange(half)
    streams = {name: (Minibatches(idx, args.batch_size, np.random.default_rng(args.seed + 1)),
                      Minibatches(idx[:len(xt)], args.batch_size,
                                  np.random.default_rng(args.seed + 2)))
               for name in models}
    hist: dict[str, list] = {"step": []}
    for name in models:
        for dom in ("target", "source"):
            hist[f"{name}_{dom}"] = []
    print(f"nanogan {nanogan.__version__}, kernels: {nanogan.kernel_backend()}, target "
          f"{args.target}, {len(xs)} labelled source and {len(xt)} unlabelled target images, "
          f"{args.steps} steps")

    def evaluate(step: int) -> None:
        hist["step"].append(step)
        for name, m in models.items():
            hist[f"{name}_target"].append(m.accuracy(xt_test, y_test))
            hist[f"{name}_source"].append(m.accuracy(xs_test, y_test))

    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    last: dict[str, dict] = {}
    for step in tqdm(range(1, args.steps + 1), disable=args.no_progress, desc="DANN"):
        p = (step - 1) / max(1, args.steps - 1)
        lam = args.lambda_max * (2.0 / (1.0 + np.exp(-10.0 * p)) - 1.0)
        if args.optimizer == "sgd":  # Ganin et al.'s annealing
            for m in models.values():
                for opt in m.opts:
                    opt.lr = args.lr / (1.0 + 10.0 * p) ** 0.75
        for name, m in models.items():
            bs, bt = streams[name]
            i, j = next(bs), next(bt)
            stats = m.step(xs[i], ys[i], xt[j], lam if name == "dann" else 0.0)
            if not all(np.isfinite(v) for v in stats.values()):
                print(f"error: step {step}: non-finite loss in {name}: {stats}", file=sys.stderr)
                return 1
            last[name] = stats
        if step % args.eval_every == 0 or step == args.steps:
            evaluate(step)
    save_state(out / "checkpoint.npz", models["dann"].parts(), {},
               {"format": "nanogan-dann-checkpoint-1", "steps": args.steps,
                "target": args.target})
    import csv
    import os

    tmp = out / ".accuracy.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(hist))
        w.writerows(zip(*hist.values()))
    os.replace(tmp, out / "accuracy.csv")
    figure(hist, xs[:16], xt[:16], out / "dann.png",
           f"MNIST -> {args.target} MNIST")
    summary = {
        "target": args.target, "steps": args.steps, "batch_size": args.batch_size,
        "lambda_max": args.lambda_max, "optimizer": args.optimizer, "lr": args.lr,
        "target_accuracy": {"source_only": hist["source_only_target"][-1],
                            "dann": hist["dann_target"][-1]},
        "source_accuracy": {"source_only": hist["source_only_source"][-1],
                            "dann": hist["dann_source"][-1]},
        "final_domain_accuracy": {k: v["domain_acc"] for k, v in last.items()},
        "seconds": time.perf_counter() - t0,
    }
    save_json_atomic(out / "summary.json", summary)
    print(f"target ({args.target}) test accuracy: source only "
          f"{summary['target_accuracy']['source_only']:.4f}, DANN "
          f"{summary['target_accuracy']['dann']:.4f}; source test accuracy: source only "
          f"{summary['source_accuracy']['source_only']:.4f}, DANN "
          f"{summary['source_accuracy']['dann']:.4f}")
    print(f"wrote {', '.join(sorted(q.name for q in out.iterdir()))} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
