"""Walks and arithmetic in a trained generator's latent space: ``python examples/latent_walk.py
runs/dcgan/checkpoint.npz`` (a DCGAN, conditional GAN or any MLP/conv GAN checkpoint).

Writes into ``--out`` (default ``runs/latent``):

* ``linear.png``: each row walks a straight line ``z(t) = (1 - t) z_a + t z_b`` between two random
  codes, ``t`` from 0 to 1 in ``--steps`` steps;
* ``slerp.png``: the same pairs along the great circle (White 2016)::

      z(t) = sin((1 - t) W) / sin W  z_a + sin(t W) / sin W  z_b,   cos W = z_a . z_b / |z_a||z_b|

  which keeps ``|z|`` near the norm typical of N(0, I) codes (a straight line's midpoint is
  shorter, so it passes through codes the generator rarely saw);
* ``arithmetic.png``: Radford et al.'s vector arithmetic, on stroke width: for each ``a:c`` pair of
  ``--arith``, the averaged codes of the three thickest-stroked samples of digit ``a`` minus those
  of its three thinnest plus those of the three thinnest of digit ``c``, decoded with a little
  noise added (``+-0.25``, as the paper does). Each row shows the three groups, a white
  separator, then the results: thick ``c``s if the direction "thicker stroke" is shared by the
  digits. The groups are picked among ``--pool`` samples by the MNIST classifier of
  ``nanogan.metrics`` (class probability > 0.9) and by their ink (mean brightness).

For a conditional GAN the label stays fixed along each walk (row ``i`` asks for digit ``i mod 10``)
and the arithmetic acts on the noise part of the code, the label set to the digit wanted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nanogan.backend import to_numpy
from nanogan.cli_args import existing_file, int_range, nonnegative_int, output_dir
from nanogan.metrics.evaluate import generator_range
from nanogan.metrics.features import load_classifier
from nanogan.plot import save_grid
from nanogan.train import load_training_checkpoint

CONFIDENCE = 0.9  # class probability a sample needs to join an arithmetic group


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint",
                   type=existing_file, help="a training checkpoint (.npz) of an example")
    p.add_argument("--out", type=output_dir, default="runs/latent", help="output folder")
    p.add_argument("--rows", type=int_range(1, 1000), default=8, help="interpolation strips")
    p.add_argument("--steps", type=int_range(2, 1000), default=10, help="images per strip")
    p.add_argument("--pool", type=int_range(10, 1_000_000), default=2000,
                   help="samples searched for the arithmetic's groups")
    p.add_argument("--arith", default="1:1,1:7,0:6,3:8",
                   help="comma-separated a:c pairs: thick a - thin a + thin c")
    p.add_argument("--results",
                   type=int_range(1, 1000), default=5, help="decoded results per arithmetic row")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    return p.parse_args(argv)


def lerp(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(1 - t) z_a + t z_b`` for each ``t``: (T, D) from codes (D,) and t (T,)."""
    return (1 - t)[:, None] * z_a[None] + t[:, None] * z_b[None]


def slerp(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (see the module docstring): (T, D); a straight line when the
    codes are (anti)parallel, where the great circle is undefined."""
    cos = float(z_a @ z_b / (np.linalg.norm(z_a) * np.linalg.norm(z_b)))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(z_a, z_b, t)
    return (np.sin((1 - t) * omega)[:, None] * z_a[None]
            + np.sin(t * omega)[:, None] * z_b[None]) / np.sin(omega)


class Decoder:
    """Flat noise codes ``(N, z_dim)`` (and labels, for a conditional GAN) to images in [-1, 1],
    as NumPy arrays whatever the array backend (they go to grids, the classifier and ink sums)."""

    def __init__(self, gan) -> None:
        self.gan = gan
        self.conditional = hasattr(gan, "num_classes")
        self.z_dim = int(np.prod(gan.z_shape))
        lo, hi = generator_range(gan)
        self.lo, self.hi = lo, hi

    def __call__(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        z = z.astype(self.gan.z_dtype, copy=False)
        if self.conditional:
            x = self.gan.generate(z, labels)
        else:
            x = self.gan.G(z.reshape(len(z), *self.gan.z_shape), train=False)
        x = to_numpy(x).reshape(len(z), 1, 28, 28)  # the images come back to the host
        return (x - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0


def strips(decode: Decoder, rng: np.random.Generator, rows: int, steps: int, how) -> np.ndarray:
    t = np.linspace(0.0, 1.0, steps)
    out = []
    for r in range(rows):
        z_a, z_b = rng.standard_normal((2, decode.z_dim))
        labels = np.full(steps, r % 10) if decode.conditional else None
        out.append(decode(how(z_a, z_b, t), labels))
    return np.concatenate(out)


def arithmetic(decode: Decoder, rng: np.random.Generator, pool: int, pairs: list[tuple[int, int]],
               n_results: int) -> tuple[np.ndarray, list[str]]:
    """Rows of ``[thick a x3, thin a x3, thin c x3, blank, results]``, and one line per row."""
    features = load_classifier()
    z = rng.standard_normal((pool, decode.z_dim))
    if decode.conditional:
        labels = np.arange(pool) % 10
    else:
        labels = None
    x = np.concatenate([decode(z[s:s + 500], None if labels is None else labels[s:s + 500])
                        for s in range(0, pool, 500)])
    _, probs = features(x.reshape(pool, -1), (-1.0, 1.0))
    digit, conf = probs.argmax(1), probs.max(1)
    ink = ((x + 1) / 2).reshape(pool, -1).mean(1)
    rows, notes = [], []
    blank = np.ones((1, 1, 28, 28))
    weak: set[int] = set()
    for a, c in pairs:
        def group(d: int, thick: bool) -> np.ndarray:
            idx = np.flatnonzero((digit == d) & (conf > CONFIDENCE))
            if len(idx) < 3:  # a weak generator: the samples most like a d, whatever they are
                idx = np.argsort(probs[:, d])[-10:]
                weak.add(d)
            order = idx[np.argsort(ink[idx])]
            return order[-3:] if thick else order[:3]

        g_thick_a, g_thin_a, g_thin_c = group(a, True), group(a, False), group(c, False)
        z_sum = z[g_thick_a].mean(0) - z[g_thin_a].mean(0) + z[g_thin_c].mean(0)
        noise = rng.uniform(-0.25, 0.25, (n_results, decode.z_dim))
        noise[0] = 0  # the first result is the sum itself
        z_res = z_sum[None] + noise
        res = decode(z_res, np.full(n_results, c) if decode.conditional else None)
        _, p_res = features(res.reshape(n_results, -1), (-1.0, 1.0))
        ink_res = ((res + 1) / 2).reshape(n_results, -1).mean(1)
        rows.append(np.concatenate([x[g_thick_a], x[g_thin_a], x[g_thin_c], blank, res]))
        notes.append(f"thick {a} - thin {a} + thin {c}: results classified as "
                     f"{' '.join(map(str, p_res.argmax(1)))}; ink {ink_res.mean():.3f} against "
                     f"{ink[g_thin_c].mean():.3f} for the thin {c}s and "
                     f"{ink[g_thick_a].mean():.3f} for the thick {a}s")
    if weak:
        notes.append(f"warning: fewer than 3 samples of digit(s) {sorted(weak)} had class "
                     f"probability > {CONFIDENCE}; their groups are the 10 samples most like "
                     "them (raise --pool, or train longer)")
    return np.concatenate(rows), notes


def main(argv: list[str] | None = None) -> int:
    from nanogan.performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    args = parse_args(argv)
    try:
        gan = load_training_checkpoint(args.checkpoint)["gan"]
        pairs = [tuple(int(d) for d in p.split(":")) for p in args.arith.split(",") if p]
        if any(len(p) != 2 or not all(0 <= d <= 9 for d in p) for p in pairs):
            raise ValueError(f"--arith expects a:c pairs of digits, got {args.arith!r}")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    decode = Decoder(gan)
    written = []
    for name, how in (("linear", lerp), ("slerp", slerp)):
        imgs = strips(decode, np.random.default_rng(args.seed), args.rows, args.steps, how)
        save_grid(imgs, out / f"{name}.png", nrow=args.steps)
        written.append(out / f"{name}.png")
    if pairs:
        try:
            imgs, notes = arithmetic(decode, np.random.default_rng(args.seed + 1), args.pool,
                                     pairs, args.results)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        save_grid(imgs, out / "arithmetic.png", nrow=10 + args.results)
        written.append(out / "arithmetic.png")
        print("\n".join(notes))
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
