"""Per-layer microbenchmark: nanogan against PyTorch at the reference GANs' layer sizes.

::

    python benchmarks/layers_vs_pytorch.py [--batches 64,256] [--iters N] [--threads T]
                                           [--out benchmarks/layers.json]

For each layer of DCGAN-28 and of the MLP GAN (float32, training mode, run as ``GAN`` runs it:
its step of the fused plan, ``nanogan.fast``), batch 64 and 256: the
forward pass, and the backward pass (input and parameter gradients). PyTorch's forward runs with
autograd recording (input requiring grad, as in training); its backward is ``y.backward(dy)`` on
a fresh graph. The two frameworks alternate call by call; medians of ``N`` calls after warm-up.
Before timing, each pair is checked to compute the same output and input gradient (float32).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from _common import HERE, format_table, median_ms, set_threads, time_call, use_checkout

# (label, nanogan/PyTorch class name, constructor args, input shape without the batch)
LAYERS: list[tuple[str, str, tuple, tuple]] = [
    ("G ConvTranspose2d(100,128,7,1,0) 1->7", "ConvTranspose2d", (100, 128, 7, 1, 0), (100, 1, 1)),
    ("G ConvTranspose2d(128,64,4,2,1) 7->14", "ConvTranspose2d", (128, 64, 4, 2, 1), (128, 7, 7)),
    ("G ConvTranspose2d(64,1,4,2,1) 14->28", "ConvTranspose2d", (64, 1, 4, 2, 1), (64, 14, 14)),
    ("D Conv2d(1,64,4,2,1) 28->14", "Conv2d", (1, 64, 4, 2, 1), (1, 28, 28)),
    ("D Conv2d(64,128,4,2,1) 14->7", "Conv2d", (64, 128, 4, 2, 1), (64, 14, 14)),
    ("D Conv2d(128,1,7,1,0) 7->1", "Conv2d", (128, 1, 7, 1, 0), (128, 7, 7)),
    ("BatchNorm2d(128) @ 7x7", "BatchNorm2d", (128,), (128, 7, 7)),
    ("BatchNorm2d(64) @ 14x14", "BatchNorm2d", (64,), (64, 14, 14)),
    ("Dense(100,256)", "Dense", (100, 256), (100,)),
    ("Dense(256,256)", "Dense", (256, 256), (256,)),
    ("Dense(256,784)", "Dense", (256, 784), (256,)),
    ("Dense(784,256)", "Dense", (784, 256), (784,)),
    ("Dense(256,1)", "Dense", (256, 1), (256,)),
]

_TORCH_NAME = {"Dense": "Linear"}


def build(kind: str, cargs: tuple, seed: int) -> tuple[Any, Any]:
    """The nanogan layer and a PyTorch twin holding the same weights."""
    import torch

    import nanogan.layers as L

    kw = {} if kind == "BatchNorm2d" else {"rng": seed}
    if kind in ("Conv2d", "ConvTranspose2d"):
        kw["bias"] = False  # as in the reference GANs
    mine = getattr(L, kind)(*cargs, **kw)
    tkw = {"bias": False} if "bias" in kw else {}
    theirs = getattr(torch.nn, _TORCH_NAME.get(kind, kind))(*cargs, **tkw).train()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in mine.state_dict().items()})
    return mine, theirs


def bench_layer(label: str, kind: str, cargs: tuple, shape: tuple, batch: int,
                iters: int, warmup: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from nanogan import Sequential
    from nanogan.fast import Plan

    layer, theirs = build(kind, cargs, seed=0)
    mine = Plan(Sequential(layer))  # the layer as GAN runs it (nanogan.fast); same parameters
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    y, cache = mine.forward(x, train=True)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)
    tdy = torch.from_numpy(dy)

    # same computation: outputs and input gradients agree (float32)
    ty = theirs(tx)
    ty.backward(tdy)
    dx = mine.backward(dy, cache)
    err_y = float(np.abs(y - ty.detach().numpy()).max() / max(np.abs(y).max(), 1e-30))
    err_dx = float(np.abs(dx - tx.grad.numpy()).max() / max(np.abs(dx).max(), 1e-30))
    if max(err_y, err_dx) > 1e-3:
        raise SystemExit(f"{label}: nanogan and PyTorch disagree (y {err_y:.1e}, dx {err_dx:.1e})")

    def n_fwd() -> None:
        mine.forward(x, train=True)

    def t_fwd() -> None:
        theirs(tx)

    caches = [mine.forward(x, train=True)[1] for _ in range(2)]

    def n_bwd() -> None:
        mine.backward(dy, caches[0])

    t_times: list[float] = []

    def t_bwd() -> None:  # a fresh graph every time; only backward is timed
        out = theirs(tx)
        t_times.append(time_call(lambda: out.backward(tdy)))

    fwd = {"nanogan": [], "torch": []}
    bwd = {"nanogan": [], "torch": []}
    for i in range(warmup + iters):
        keep = i >= warmup
        a, b = time_call(n_fwd), time_call(t_fwd)
        c = time_call(n_bwd)
        t_bwd()
        if keep:
            fwd["nanogan"].append(a)
            fwd["torch"].append(b)
            bwd["nanogan"].append(c)
    bwd["torch"] = t_times[warmup:]
    res = {"layer": label, "batch": batch, "check_rel_err_y": err_y, "check_rel_err_dx": err_dx}
    for phase, d in (("forward", fwd), ("backward", bwd)):
        res[f"{phase}_nanogan_ms"] = median_ms(d["nanogan"])
        res[f"{phase}_torch_ms"] = median_ms(d["torch"])
        res[f"{phase}_ratio"] = res[f"{phase}_nanogan_ms"] / res[f"{phase}_torch_ms"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
    ap.add_argument("--out", default=os.path.join(HERE, "layers.json"))
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    use_checkout()
    import nanogan.performance

    nanogan.performance.configure()  # nanogan's process-wide speed settings, as its examples
    import torch

    import nanogan

    torch.set_num_threads(threads)
    batches = [int(b) for b in args.batches.split(",")]
    results = [bench_layer(label, kind, cargs, shape, b, args.iters, args.warmup)
               for b in batches for (label, kind, cargs, shape) in LAYERS]
    header = ["layer", "batch", "fwd nanogan ms", "fwd PyTorch ms", "fwd ratio",
              "bwd nanogan ms", "bwd PyTorch ms", "bwd ratio"]
    rows = [[r["layer"], r["batch"], r["forward_nanogan_ms"], r["forward_torch_ms"],
             r["forward_ratio"], r["backward_nanogan_ms"], r["backward_torch_ms"],
             r["backward_ratio"]] for r in results]
    table = format_table(header, rows)
    print(f"{threads} threads, nanogan kernels '{nanogan.kernel_backend()}', float32, "
          f"median of {args.iters} after {args.warmup} warm-up; ratio = nanogan / PyTorch")
    print(table)
    with open(args.out, "w") as f:
        json.dump({"threads": threads, "kernel_set": nanogan.kernel_backend(),
                   "results": results, "table": table}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
