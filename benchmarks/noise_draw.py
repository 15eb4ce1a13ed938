"""How long one batch of the GAN's normal noise takes to draw, sampler by sampler.

    python benchmarks/noise_draw.py [--threads 1,2] [--shape 256,100] [--repeats 2000]

For each thread count, in its own process (the thread count must be set before NumPy loads):
NumPy's ``rng.standard_normal`` (its ziggurat, the ``"numpy"`` sampler), the reference
Box-Muller in NumPy (``reference.normal_from_bits`` on ``random_raw``'s words), and
:func:`nanogan.noise.standard_normal` (the ``"box-muller"`` sampler, the GAN's default) with the
best kernel set, whole and split into drawing the words and turning them into values. Median of
``--repeats`` draws after a warm-up, in milliseconds. A GAN iteration of the reference benchmarks
draws two such batches (``(N, 100)`` float32, N = 64 or 256).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import set_threads, use_checkout


def measure(shape: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Median milliseconds of each way of drawing ``shape`` float32 values, in this process."""
    import time

    import numpy as np

    import nanogan.performance
    from nanogan import _kernels
    from nanogan._kernels import ops, reference
    from nanogan.noise import standard_normal

    nanogan.performance.configure()
    n = int(np.prod(shape))
    rng = np.random.default_rng(0)
    words = rng.bit_generator.random_raw((n + 1) // 2)
    out = np.empty(n, np.float32)

    def median_ms(fn) -> float:
        for _ in range(max(repeats // 10, 10)):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    return {
        "kernel set": _kernels.get_backend(),
        "numpy (rng.standard_normal)": median_ms(lambda: rng.standard_normal(shape,
                                                                         dtype=np.float32)),
        "box-muller, reference": median_ms(
            lambda: reference.normal_from_bits(rng.bit_generator.random_raw((n + 1) // 2), out)),
        "box-muller (nanogan.noise)": median_ms(lambda: standard_normal(rng, shape, np.float32)),
        "  of which the words (random_raw)": median_ms(
            lambda: rng.bit_generator.random_raw((n + 1) // 2)),
        "  of which the values (ops.normal_from_bits)": median_ms(
            lambda: ops.normal_from_bits(words, out)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--shape", default="256,100", help="the batch of noise, comma-separated")
    ap.add_argument("--repeats", type=int, default=2000)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    if args.worker is not None:
        set_threads(args.worker, passive=False)
        use_checkout()
        print(json.dumps(measure(shape, args.repeats)))
        return 0
    for threads in (int(t) for t in args.threads.split(",")):
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                              str(threads), "--shape", args.shape, "--repeats",
                              str(args.repeats)], capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{threads} thread(s), {shape} float32, kernel set {row.pop('kernel set')!r}:")
        for name, ms in row.items():
            print(f"  {name:48s} {ms:.4f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
