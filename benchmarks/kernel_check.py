"""Every kernel op of a device backend against the reference kernels, on random inputs.

::

    python benchmarks/kernel_check.py [--backend cupy|strict] [--dtype float32] [--tol 1e-4]
                                      [--json out.json]

Runs :func:`nanogan._kernels.device.compare_with_reference` (every op of
``nanogan._kernels.OP_NAMES``: im2col/col2im and the convolution products on the DCGAN-28
geometries and odd ones, the activations, BatchNorm, the loss, the optimizer updates) for the
backend's kernel set (the CUDA kernels on ``cupy``), prints the largest relative error per op,
writes them as JSON, and exits with status 1 if one exceeds ``--tol`` (2 if the backend is not
available).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["cupy", "strict"], default="cupy")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--tol", type=float, default=None,
                    help="largest relative error allowed (default 1e-4 float32, 1e-10 float64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the errors here")
    args = ap.parse_args(argv)
    tol = args.tol if args.tol is not None else (1e-4 if args.dtype == "float32" else 1e-10)

    from nanogan import backend
    from nanogan._kernels import device

    try:
        backend.set_backend(args.backend)  # checks CuPy and the GPU
    except RuntimeError as exc:
        print(f"kernel_check: {exc}", file=sys.stderr)
        return 2
    mod = device.cupy_set() if args.backend == "cupy" else device.strict_set()
    errors = device.compare_with_reference(mod, args.dtype, seed=args.seed)
    bad = {op: e for op, e in errors.items() if not e <= tol}
    print(f"{backend.describe()}: {len(errors)} kernel ops against the reference, {args.dtype}, "
          f"tolerance {tol:g} (max |error| / max |reference|)")
    for op, e in errors.items():
        print(f"  {op:32s} {e:.2e}  {'FAIL' if op in bad else 'ok'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": backend.describe(), "dtype": args.dtype, "tolerance": tol,
                       "errors": errors, "passed": not bad}, f, indent=1)
    if bad:
        print(f"kernel_check: {len(bad)} op(s) differ from the reference: {sorted(bad)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
