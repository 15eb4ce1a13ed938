"""The Cython set's float32 im2col/col2im with its SIMD path (``nanogan/_kernels/_simd.h``) and
without it (the portable loops), alternated on one thread.

::

    python benchmarks/unfold_simd.py [--rounds 3] [--seconds 0.2] [--images 11,4,64]

For DCGAN-28's two strided geometries (64 channels of 14 x 14 and one of 28 x 28; kernel 4,
stride 2, padding 1) and each image count, times ``im2col`` and ``col2im`` where the build has
a SIMD version of each (the 28 x 28 plane is past the AVX2 versions' 16 values) into
preallocated arrays: in every round the portable loops, then the SIMD path, each the best of 5
blocks of at least ``--seconds``; prints the times in microseconds, round by round. Which path
a build has depends on the compiler's target: AVX-512, AVX2 (not on Zen 1) or none (then the
script says so and exits 0). Set ``OMP_NUM_THREADS=1`` for the figures of benchmarks/README
(the kernels then run on one thread).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import use_checkout

#: (channels, height = width) of the planes; the window is 4 x 4, stride 2, padding 1.
PLANES = ((64, 14), (1, 28))
K, S, P = 4, 2, 1


def best_seconds(fn: Callable[[], Any], seconds: float) -> float:
    """The best time per call of ``fn`` over 5 blocks of at least ``seconds`` each."""
    fn()
    best = float("inf")
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        best = min(best, elapsed / n)
    return best


def cases(images: list[int]) -> list[tuple[str, int, int, int]]:
    """``(op, N, C, H)`` for every plane geometry and image count."""
    return [(op, n, c, h) for c, h in PLANES for n in images for op in ("im2col", "col2im")]


def run(rounds: int, seconds: float, images: list[int]) -> list[dict[str, Any]]:
    use_checkout()
    from nanogan._kernels import _cython_kernels as ext

    rows: list[dict[str, Any]] = []
    if not ext.use_simd(True):  # (returns whether the build has a SIMD path)
        return rows
    rng = np.random.default_rng(0)
    try:
        for op, n, c, h in cases(images):
            o = (h + 2 * P - K) // S + 1
            if not ext.simd_applies(h, h, P, P, o)[op == "col2im"]:
                continue
            x = rng.standard_normal(n * c * h * h, dtype=np.float32)
            cols = rng.standard_normal((c * K * K, n * o * o), dtype=np.float32)
            geom = (n, c, h, h, c * h * h, h * h, K, K, S, S, P, P, False)
            call = (functools.partial(ext.im2col, x, cols, *geom) if op == "im2col"
                    else functools.partial(ext.col2im, cols, x, *geom))
            times: dict[str, list[float]] = {"loops": [], "simd": []}
            for _ in range(rounds):
                for path in ("loops", "simd"):
                    ext.use_simd(path == "simd")
                    times[path].append(1e6 * best_seconds(call, seconds))
            rows.append({"op": op, "images": n, "channels": c, "size": h, **times})
    finally:
        ext.use_simd(True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.2)
    ap.add_argument("--images", default="11,4,64")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        ap.error("--rounds must be at least 1 and --seconds positive")
    rows = run(args.rounds, args.seconds, [int(v) for v in args.images.split(",")])
    if not rows:
        print("this build of the Cython kernels has no SIMD im2col/col2im (the compiler "
              "targets neither AVX-512 nor AVX2, or the CPU is a Zen 1): nothing to compare")
        return 0
    def fmt(ts: list[float]) -> str:
        return " ".join(f"{t:.0f}" for t in ts)

    for r in rows:
        print(f"{r['op']:7} {r['images']:3} x {r['channels']:2} x {r['size']} x {r['size']}: "
              f"loops {fmt(r['loops'])} us, simd {fmt(r['simd'])} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
