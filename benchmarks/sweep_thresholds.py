"""The parallel thresholds of ``nanogan._kernels._threads``, swept on this machine.

::

    python benchmarks/sweep_thresholds.py [--threads 2] [--configs mlp64,mlp256,dcgan64,dcgan256]
        [--blas 200e6,50e6,20e6,5e6] [--kernel 1048576,131072] [--tiles 524288] [--rounds 2]

Runs nanogan's benchmark iteration (``per_process.py``'s worker: its own process, the
thread-count variables only) for every pair of ``NANOGAN_BLAS_PARALLEL_MIN_FLOPS`` (products of
fewer operations run on one BLAS thread), ``NANOGAN_KERNEL_PARALLEL_MIN`` (kernels on fewer
elements run serially) and the convolution tile, ``NANOGAN_CONV_THREAD_TILE_ELEMENTS`` and
``NANOGAN_CONV_TILE_ELEMENTS`` both (the column-matrix elements of one tile of the batch: one
thread's tile in the Cython set's fused convolution products, one tile of the composed ones;
:mod:`nanogan._kernels._threads`), alternating the settings over rounds; prints the median over
rounds.
Run it on an idle machine: the thresholds decide when a second core is worth waking.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import per_process  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="mlp64,mlp256,dcgan64,dcgan256")
    ap.add_argument("--blas", default="200e6,50e6,20e6,5e6")
    ap.add_argument("--kernel", default="1048576,131072")
    ap.add_argument("--tiles", default="524288")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args(argv)
    settings = list(itertools.product([float(b) for b in args.blas.split(",")],
                                      [int(k) for k in args.kernel.split(",")],
                                      [int(float(t)) for t in args.tiles.split(",")]))
    results: dict[tuple[str, float, int, int], list[float]] = {}
    for r in range(args.rounds):
        for config in args.configs.split(","):
            order = settings[r % len(settings):] + settings[:r % len(settings)]
            for blas, kernel, tiles in order:
                os.environ["NANOGAN_BLAS_PARALLEL_MIN_FLOPS"] = f"{blas:.0f}"
                os.environ["NANOGAN_KERNEL_PARALLEL_MIN"] = str(kernel)
                os.environ["NANOGAN_CONV_TILE_ELEMENTS"] = str(tiles)
                os.environ["NANOGAN_CONV_THREAD_TILE_ELEMENTS"] = str(tiles)
                res = per_process.run_process("nanogan", config, args.threads, args.iters, 3)
                results.setdefault((config, blas, kernel, tiles), []).append(res["median_ms"])
                print(f"round {r + 1} {config:9s} blas>={blas:.0e} kernel>={kernel:8d} "
                      f"tiles {tiles:.0e} {res['median_ms']:8.2f} ms "
                      f"{res['cores_used']:.2f} cores", flush=True)
    print(f"\n| config | BLAS parallel from (flops) | kernels parallel from (elements) | "
          f"conv tile (elements) | ms (median of {args.rounds}) |\n|---|---|---|---|---|")
    for (config, blas, kernel, tiles), ms in results.items():
        print(f"| {config} | {blas:.0e} | {kernel} | {tiles:.0e} | "
              f"{statistics.median(ms):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
