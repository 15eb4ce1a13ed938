"""The ``nanogan`` command line (``python -m nanogan ...``).

``nanogan sample CHECKPOINT --n 10000 --out samples.npy [--png grid.png] [--seed 0] [--label 7]``
    draws samples from a training checkpoint's generator: float32, (N, 1, 28, 28), in [-1, 1]
    for every generator (a sigmoid generator's [0, 1] output is rescaled); ``--label`` asks a
    conditional GAN for that class.
``nanogan info``
    prints the version and the kernel sets.
``nanogan evaluate CHECKPOINT_OR_SAMPLES_NPY [--n 10000] [--json]``
    prints the quality metrics of ``nanogan.metrics`` (Parzen, FID-MNIST, IS, precision/recall),
    and for a conditional GAN's checkpoint its conditional accuracy.
``nanogan train MODEL ...``, ``nanogan resume RUN_DIR``, ``nanogan bench``
    train into a run folder, continue it, time iterations (see :mod:`nanogan.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

#: Most samples ``sample`` and ``evaluate`` draw (10^6 MNIST images are 3.1 GB of float32).
MAX_SAMPLES = 1_000_000


def generate(gan, n: int, seed: int, batch: int = 1000, label: int | None = None) -> np.ndarray:
    """``n`` samples of ``gan.G`` in eval mode from seeded noise, as (n, C, H, W) float32 in
    [-1, 1] whatever the generator's own range (a Sigmoid generator's ``[0, 1]`` output ``y`` is
    written as ``2 y - 1``), so a samples file never needs a guess about its range.

    For a conditional GAN, ``label`` asks for that class (None: classes drawn uniformly)."""
    from .metrics.evaluate import generator_range

    lo, hi = generator_range(gan)
    rng = np.random.default_rng(seed)
    if label is not None:
        if not hasattr(gan, "num_classes"):
            raise ValueError("--label needs a conditional GAN's checkpoint; this one's "
                             f"{type(gan).__name__} takes no label")
        if not 0 <= label < gan.num_classes:
            raise ValueError(f"--label must be in [0, {gan.num_classes}), got {label}")
    chunks = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        z = gan.sample_noise(m, rng) if label is None else gan.sample_noise(m, rng, labels=label)
        chunks.append(gan.G(z, train=False))
    x = np.concatenate(chunks).astype(np.float32, copy=False)
    if (lo, hi) != (-1.0, 1.0):
        x = (x - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)
    if x.ndim == 2:
        side = round(float(np.sqrt(x.shape[1])))
        if side * side == x.shape[1]:
            x = x.reshape(-1, 1, side, side)
    return x


def _save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    from .checkpoint import atomic_write

    atomic_write(path, lambda f: np.save(f, array))


def cmd_sample(args: argparse.Namespace) -> int:
    from .plot import save_grid
    from .train import load_generator_checkpoint

    gan = load_generator_checkpoint(args.checkpoint)
    x = generate(gan, args.n, args.seed, label=args.label)
    if args.out:
        _save_npy_atomic(args.out, x)
        print(f"wrote {args.out}: {x.shape} {x.dtype}, range [{x.min():.3f}, {x.max():.3f}]")
    if args.png:
        save_grid(x[:64], args.png)
        print(f"wrote {args.png}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import nanogan
    from nanogan import _kernels

    print(f"nanogan {nanogan.__version__}")
    print(f"kernels: active {nanogan.kernel_backend()}, available {nanogan.available_kernels()}")
    from .performance import describe

    print(describe())
    for name in ("numba", "cython"):
        why = _kernels.why_unavailable(name)
        if why:
            print(f"  {name}: unavailable ({why})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Quality metrics of a checkpoint's samples or of a .npy of samples (see nanogan.metrics)."""
    import json

    from .cli.evaluate import evaluate_any
    from .metrics.evaluate import evaluate, format_table, load_samples

    status = evaluate_any(args)  # other shapes or data: MMD^2 and KID
    if status is not None:
        return status

    declared = None if args.range is None else (-1.0, 1.0) if args.range == "-1,1" else (0.0, 1.0)
    x, pixel_range = load_samples(args.path, n=args.n, seed=args.seed, pixel_range=declared)
    result = evaluate(x, pixel_range, parzen=not args.no_parzen, n_reference=args.reference,
                      seed=args.seed)
    result["pixel_range"] = list(pixel_range)
    result["source"] = str(args.path)
    if str(args.path).endswith(".npz"):
        from .train import load_generator_checkpoint

        gan = load_generator_checkpoint(args.path)
        if hasattr(gan, "num_classes"):  # a conditional GAN: does it draw the digit asked for?
            from .conditional import conditional_accuracy

            per_class = max(1, args.n // gan.num_classes)
            result["conditional_accuracy"] = conditional_accuracy(gan, per_class, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table({os.path.basename(str(args.path)): result}))
        print(f"{result['n']} samples in {pixel_range}, against {args.reference} MNIST test "
              f"images; classes {' '.join(f'{f:.2f}' for f in result['class_fractions'])}")
        if "conditional_accuracy" in result:
            acc = result["conditional_accuracy"]
            print(f"conditional accuracy: {acc['accuracy']:.4f} of {acc['n']} samples "
                  "classified as the label asked for; per label "
                  + " ".join(f"{a:.2f}" for a in acc["per_class"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_args import existing_file, int_range, nonnegative_int, output_file
    from .metrics.evaluate import MIN_REFERENCE, MIN_SAMPLES, N_REFERENCE

    parser = argparse.ArgumentParser(prog="nanogan", description="nanogan command line")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="draw samples from a training checkpoint")
    s.add_argument("checkpoint", type=existing_file)
    s.add_argument("--n", type=int_range(1, MAX_SAMPLES), default=10000,
                   help="number of samples")
    s.add_argument("--out", type=output_file, default=None,
                   help="write the samples here (.npy; default samples.npy unless --png)")
    s.add_argument("--png", type=output_file, default=None,
                   help="write an 8x8 grid of the first samples here")
    s.add_argument("--seed", type=nonnegative_int, default=0)
    s.add_argument("--label", type=nonnegative_int, default=None,
                   help="conditional GAN: draw this class (default: classes at random)")
    s.set_defaults(func=cmd_sample)
    i = sub.add_parser("info", help="version and kernel sets")
    i.set_defaults(func=cmd_info)
    e = sub.add_parser("evaluate", help="quality metrics (Parzen, FID-MNIST, IS, precision/"
                       "recall, KID) of a checkpoint or of samples .npy")
    e.add_argument("path", type=existing_file, help="training checkpoint (.npz) or samples (.npy)")
    e.add_argument("--n", type=int_range(MIN_SAMPLES, MAX_SAMPLES), default=10000,
                   help="samples drawn from a checkpoint")
    e.add_argument("--seed", type=nonnegative_int, default=0)
    e.add_argument("--reference", type=int_range(MIN_REFERENCE, N_REFERENCE), default=N_REFERENCE,
                   help="MNIST test images compared")
    e.add_argument("--range", choices=["-1,1", "0,1"], default=None,
                   help="pixel range of the samples, written --range=-1,1 or --range 0,1 "
                   "(default: from the generator, or for a .npy "
                   "[0, 1] if every value is in it, else [-1, 1] if every value is in that); "
                   "values outside it are an error, never clipped")
    e.add_argument("--no-parzen", action="store_true", help="skip the Parzen log-likelihood")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    from .cli.evaluate import add_arguments

    add_arguments(e)  # --data, --features: images of any shape
    e.set_defaults(func=cmd_evaluate)
    from .cli import register

    register(sub)  # train, resume, bench
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sample" and not (args.out or args.png):
        from .cli_args import output_file

        try:
            args.out = output_file("samples.npy")
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --out: {exc}")
    from .performance import configure

    configure()  # the process-wide speed settings, before the first kernel (nanogan.performance)
    try:
        return args.func(args)
    except (OSError, ValueError) as exc:  # a corrupt checkpoint, bad samples, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: outputs are written atomically, so nothing is half done
        print(f"\ninterrupted: nanogan {args.command} stopped (files are written whole or not "
              "at all)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
