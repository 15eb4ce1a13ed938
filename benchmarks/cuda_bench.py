"""``vs_pytorch.py --device cuda``: nanogan on the CuPy backend against PyTorch on CUDA.

The reference GANs, the iteration and the table of ``vs_pytorch.py`` (BENCHMARKS.md), on one
NVIDIA GPU: nanogan with ``nanogan.set_backend("cupy")`` (its parameters, the real batch and the
optimizer state on the device; the noise drawn on the host and moved, as in training), PyTorch
eager with every tensor on ``cuda``. Both are interleaved iteration by iteration in this process;
the device is synchronized before every clock reading, so a time covers the GPU work of the
iteration, not just its launch. Before timing, the float64 cross-check of the CPU run on the GPU:
nanogan-on-CuPy and PyTorch-on-CUDA from identical weights and noise, two iterations.

Target (the GPU issue): DCGAN-28 at batch 256 no slower than 1.5x PyTorch CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from _common import HERE, format_table, median_ms, real_batch, use_checkout
from specs import CONFIGS, X_SHAPE, Z_SHAPE, iteration_flops

#: nanogan time / PyTorch CUDA time to meet, per config (None: reported, no target).
CUDA_TARGETS: dict[str, float | None] = {"mlp64": None, "mlp256": None, "dcgan64": None,
                                         "dcgan256": 1.5}
CHECK_BATCH = 8
CHECK_F64_TOL = 1e-8


def require_cuda() -> tuple[Any, Any]:
    """``(cupy, torch)`` with a CUDA device each, else ``SystemExit`` with one line saying what
    is missing and how to get it."""
    try:
        import cupy
    except Exception as exc:
        raise SystemExit(f"--device cuda needs CuPy, which does not import ({type(exc).__name__}:"
                         f" {exc}); on a machine with an NVIDIA GPU: pip install -e \".[gpu]\""
                         ) from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        n, why = 0, f" ({type(exc).__name__}: {exc})"
    else:
        why = ""
    if n < 1:
        raise SystemExit(f"--device cuda: CuPy finds no CUDA device{why}")
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: this PyTorch ({torch.__version__}) has no CUDA; install "
                         "a CUDA build of torch (pip install torch) to compare against it")
    return cupy, torch


def gpu_info(cupy: Any, torch: Any) -> dict[str, Any]:
    import numpy as np

    import nanogan

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return {"gpu": name, "gpu_memory_gb": props["totalGlobalMem"] / 2**30,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(), "cupy": cupy.__version__,
            "torch": torch.__version__, "torch_cuda": torch.version.cuda, "numpy": np.__version__,
            "nanogan": nanogan.__version__, "backend": nanogan.backend.describe(),
            "kernel_set": nanogan.kernel_backend()}


def gpu_sgemm_peak(cupy: Any, n: int = 4096, repeats: int = 10) -> float:
    """Best float32 ``n^3`` cuBLAS product rate (CuPy) in GFLOP/s."""
    a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    c = cupy.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        cupy.matmul(a, b, out=c)
        cupy.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def cross_check(arch: str, torch: Any, torch_device: str = "cuda") -> dict[str, Any]:
    """Two float64 iterations from identical weights and noise on the GPU; SystemExit if
    nanogan (CuPy) and PyTorch (CUDA) disagree beyond :data:`CHECK_F64_TOL`."""
    import nano_side
    import numpy as np
    import torch_side

    from nanogan import backend

    rng = np.random.default_rng(7)
    x = real_batch(X_SHAPE[arch], CHECK_BATCH, seed=3).astype(np.float64)
    zs = [rng.standard_normal((CHECK_BATCH, *Z_SHAPE[arch])) for _ in range(4)]
    gan = nano_side.build_gan(arch, seed=11, dtype=np.float64)
    tg = torch_side.TorchGAN(arch, torch.float64, (gan.G.state_dict(), gan.D.state_dict()),
                             device=torch_device)
    dev = [backend.asarray(a) for a in (x, *zs)]
    losses_n, losses_t = [], []
    for i in range(2):
        losses_n += nano_side.fixed_iteration(gan, dev[0], dev[2 * i + 1], dev[2 * i + 2])
        losses_t += tg.iteration(*(torch.from_numpy(a).to(torch_device) for a in
                                   (x, zs[2 * i], zs[2 * i + 1])))
    err_loss = max(abs(a - b) / max(abs(a), abs(b), 1e-300) for a, b in zip(losses_n, losses_t))
    err_state = 0.0
    for mine, theirs in ((gan.G, tg.G), (gan.D, tg.D)):
        ref = theirs.state_dict()
        for k, v in mine.state_dict().items():
            r = ref[k].cpu().numpy().astype(np.float64)
            err_state = max(err_state, float(np.linalg.norm(v - r)
                                             / max(np.linalg.norm(r), 1e-300)))
    if max(err_loss, err_state) > CHECK_F64_TOL:
        raise SystemExit(f"cross-check failed ({arch}, cuda): nanogan on CuPy and PyTorch on CUDA "
                         f"disagree in float64, loss rel. error {err_loss:.2e}, state rel. error "
                         f"{err_state:.2e}")
    return {"batch": CHECK_BATCH, "nanogan_losses": losses_n, "torch_losses": losses_t,
            "float64_loss_rel_err": err_loss, "float64_state_rel_err": err_state}


def bench_config(name: str, args: argparse.Namespace, cupy: Any, torch: Any,
                 torch_device: str = "cuda") -> dict[str, Any]:
    """Median times of one iteration of each framework (ms), interleaved, device synchronized
    before each clock reading."""
    import nano_side
    import torch_side

    from nanogan import backend

    arch, batch = CONFIGS[name]
    x = real_batch(X_SHAPE[arch], batch)
    gan = nano_side.build_gan(arch, seed=0)  # on the device: built after set_backend("cupy")
    states = (gan.G.state_dict(), gan.D.state_dict())
    steps = {"nanogan": nano_side.make_step(gan, backend.asarray(x)),
             "torch": torch_side.TorchGAN(arch, torch.float32, states,
                                          device=torch_device).make_step(x)}
    syncs = {"nanogan": cupy.cuda.Device().synchronize,
             "torch": torch.cuda.synchronize if torch_device.startswith("cuda") else _no_sync}

    def timed(k: str) -> float:
        syncs[k]()
        t0 = time.perf_counter()
        steps[k]()
        syncs[k]()
        return time.perf_counter() - t0

    for k in steps:
        for _ in range(args.warmup):
            timed(k)
    names = list(steps)
    times: dict[str, list[float]] = {k: [] for k in names}
    for i in range(args.iters):
        for k in names[i % len(names):] + names[:i % len(names)]:
            times[k].append(timed(k))
    res: dict[str, Any] = {"config": name, "arch": arch, "batch": batch}
    for k in names:
        res[f"{k}_ms"] = median_ms(times[k])
        res[f"{k}_all_ms"] = [round(1e3 * t, 3) for t in times[k]]
    return res


def _no_sync() -> None:
    pass


def main(args: argparse.Namespace, *, cupy: Any = None, torch: Any = None,
         backend: str = "cupy", torch_device: str = "cuda", peak_n: int = 4096) -> int:
    """The CUDA run of ``vs_pytorch.py`` (``args`` parsed there).

    The keywords exist for the harness's own test on a CPU: a stand-in for CuPy, the strict
    backend in place of ``cupy``, PyTorch on ``cpu``, a small sgemm."""
    use_checkout()
    if cupy is None or torch is None:
        cupy, torch = require_cuda()
    import nanogan

    nanogan.set_backend(backend)
    t_start = time.perf_counter()
    info = gpu_info(cupy, torch)
    peak = gpu_sgemm_peak(cupy, peak_n)
    print(f"{info['gpu']}; {info['backend']}; torch {info['torch']} (CUDA {info['torch_cuda']}); "
          f"cuBLAS sgemm peak {peak:.0f} GFLOP/s", flush=True)
    checks = {}
    for arch in dict.fromkeys(CONFIGS[c][0] for c in args.configs):
        checks[arch] = cross_check(arch, torch, torch_device)
        print(f"cross-check {arch}: nanogan (CuPy) vs PyTorch (CUDA) float64 rel. err. loss "
              f"{checks[arch]['float64_loss_rel_err']:.1e}, weights after 2 iters "
              f"{checks[arch]['float64_state_rel_err']:.1e}", flush=True)
    results = []
    for name in args.configs:
        r = bench_config(name, args, cupy, torch, torch_device)
        arch, batch = CONFIGS[name]
        r["nanogan_flops"] = iteration_flops(arch, batch, "nanogan")
        r["nanogan_vs_torch"] = r["nanogan_ms"] / r["torch_ms"]
        r["target"] = CUDA_TARGETS.get(name)
        r["target_met"] = None if r["target"] is None else r["nanogan_vs_torch"] <= r["target"]
        r["nanogan_gflops"] = r["nanogan_flops"] / (r["nanogan_ms"] * 1e-3) / 1e9
        r["nanogan_peak_fraction"] = r["nanogan_gflops"] / peak
        results.append(r)
        print(f"{name}: nanogan {r['nanogan_ms']:.2f} ms, torch {r['torch_ms']:.2f} ms", flush=True)
    on_cuda = torch_device.startswith("cuda")
    memory = {"nanogan_pool_mb": cupy.get_default_memory_pool().total_bytes() / 2**20,
              "torch_max_allocated_mb": (torch.cuda.max_memory_allocated() / 2**20 if on_cuda
                                         else 0.0)}

    header = ["config", "nanogan ms", "PyTorch ms", "JAX ms", "nanogan/PyTorch", "JAX/PyTorch",
              "target", "met", "GFLOP/iter", "nanogan GFLOP/s", "% of peak"]
    rows = [[r["config"], r["nanogan_ms"], r["torch_ms"], None, r["nanogan_vs_torch"], None,
             "-" if r["target"] is None else f"<= {r['target']:.2f}",
             "-" if r["target_met"] is None else ("yes" if r["target_met"] else "no"),
             r["nanogan_flops"] / 1e9, r["nanogan_gflops"],
             f"{100 * r['nanogan_peak_fraction']:.1f}%"] for r in results]
    table = format_table(header, rows)
    print()
    print(f"GPU: {info['gpu']}, cuBLAS sgemm peak {peak:.0f} GFLOP/s (float32 {peak_n}^3); nanogan "
          f"on {info['backend']}, PyTorch {info['torch']} eager on {torch_device}; median of "
          f"{args.iters} "
          f"iterations after {args.warmup} warm-up, interleaved, synchronized before each clock "
          "reading")
    print(table)
    print(f"GPU memory: nanogan's CuPy pool {memory['nanogan_pool_mb']:.0f} MB, PyTorch's peak "
          f"allocation {memory['torch_max_allocated_mb']:.0f} MB (all configs, this process)")
    doc = {"device": "cuda", "machine": info, "sgemm_peak_gflops": peak, "iters": args.iters,
           "warmup": args.warmup, "cross_check": checks, "results": results, "memory": memory,
           "table": table, "wall_s": time.perf_counter() - t_start,
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    out = os.path.abspath(args.out or os.path.join(HERE, "results_cuda.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {out}")
    if any(r["target_met"] is False for r in results):
        print("target not met: " + ", ".join(f"{r['config']} {r['nanogan_vs_torch']:.2f}x > "
                                             f"{r['target']:.2f}x" for r in results
                                             if r["target_met"] is False), file=sys.stderr)
    return 0
