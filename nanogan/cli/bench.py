"""``nanogan bench``: a quick timing of training iterations of one model on this machine.

It builds the model as ``nanogan train`` does, feeds it random images of the chosen size, runs
warm-up iterations (kernel compilation), then times ``--steps`` iterations. This is a quick check
of this machine and settings, not the published comparison with PyTorch and JAX (that is
``benchmarks/``, see benchmarks/README.md). It runs on the active array backend
(``NANOGAN_BACKEND=cupy nanogan bench`` times the GPU, the device synchronized before each clock
reading).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..backend import synchronize
from ..cli_args import nonnegative_int, positive_int
from ..recipes import RECIPES, get_recipe


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="quick timing of training iterations (not the published "
                       "comparison: see benchmarks/)",
                       description=__doc__.split("\n\n")[1].replace("\n", " "),
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", nargs="?", default="dcgan", choices=list(RECIPES),
                   help="the model to time")
    p.add_argument("--image-size", type=positive_int, default=28, help="side of the random images")
    p.add_argument("--channels", type=int, default=1, choices=[1, 3], help="image channels")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per minibatch")
    p.add_argument("--width", type=positive_int, default=None,
                   help="network width (default: the model's)")
    p.add_argument("--steps", type=positive_int, default=20, help="timed iterations")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="untimed iterations first")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=cmd_bench)
    return p


def bench(model: str, image_size: int = 28, channels: int = 1, batch_size: int = 64,
          steps: int = 20, warmup: int = 2, width: int | None = None,
          seed: int = 0) -> dict[str, float]:
    """Seconds per training iteration of ``model`` on random images: the median and the
    fastest of ``steps`` timed iterations after ``warmup`` untimed ones."""
    recipe = get_recipe(model)
    rng = np.random.default_rng(seed)
    n = max(4 * batch_size, 256)
    images = rng.integers(0, 256, size=(n, channels, image_size, image_size), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    hp = recipe.hyperparameters({"width": width})
    gan = recipe.build((channels, image_size, image_size), 10, hp, rng)
    batches = recipe.batches(recipe.prepare(images), labels, batch_size, rng)
    for _ in range(warmup):
        recipe.step(gan, batches, rng, hp)
    times = []
    for _ in range(steps):
        synchronize()
        t0 = time.perf_counter()
        recipe.step(gan, batches, rng, hp)
        synchronize()
        times.append(time.perf_counter() - t0)
    return {"median": float(np.median(times)), "min": float(np.min(times)),
            "g_params": gan.G.num_params(), "d_params": gan.D.num_params(), "k": gan.k}


def cmd_bench(args: argparse.Namespace) -> int:
    import nanogan

    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        print("error: --steps and --batch-size must be >= 1, --warmup >= 0")
        return 2
    r = bench(args.model, args.image_size, args.channels, args.batch_size, args.steps,
              args.warmup, args.width, args.seed)
    print(f"nanogan {nanogan.__version__}, {nanogan.backend.describe()}, "
          f"{nanogan.kernel_backend()} kernels: {args.model} "
          f"{args.channels}x{args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"G {r['g_params']:,} / D {r['d_params']:,} params, k={r['k']}")
    print(f"{r['median'] * 1e3:.1f} ms per iteration (median of {args.steps}; fastest "
          f"{r['min'] * 1e3:.1f} ms), {args.batch_size * r['k'] / r['median']:.0f} real images/s")
    print("a quick check of this machine, not the published comparison (benchmarks/README.md)")
    return 0
