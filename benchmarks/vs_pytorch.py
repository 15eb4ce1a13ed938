"""nanogan against PyTorch (and JAX) on the reference GANs of BENCHMARKS.md, side by side.

::

    python benchmarks/vs_pytorch.py [--configs mlp64,mlp256,dcgan64,dcgan256] [--iters N]
                                    [--threads T] [--no-jax] [--out benchmarks/results.json]
    python benchmarks/vs_pytorch.py --device cuda [--configs ...] [--iters N]
                                    [--out benchmarks/results_cuda.json]

For every config: one training iteration of Algorithm 1 (k = 1, non-saturating loss, Adam(2e-4,
(0.5, 0.999)), float32, training mode) per framework, the frameworks interleaved iteration by
iteration (their order rotating) in this one process, the median of ``N`` iterations after a
warm-up. Before timing, a cross-check: from identical weights and noise, nanogan and PyTorch in
float64 (and JAX against PyTorch in float32) must give the same losses over two iterations.
This is the labelled in-process view; the headline is ``per_process.py`` (each framework in its
own process with its own defaults). Every framework here shares the process-wide settings made
for all of them: ``OMP_WAIT_POLICY=PASSIVE`` (unless set) and ``nanogan.performance.configure()``
(OpenBLAS on one thread between nanogan's products, glibc keeping freed memory for reuse, which
also spares PyTorch's DCGAN-28 the 7,000-12,000 page faults an iteration it has alone at batch
64: alternating its own process with and without glibc's reuse in its environment took it from
183-212 ms to 159-173 on one thread, ``per_process.py --frameworks torch-reuse``); both are
printed and saved. Also measured in this run: the sgemm peak of the machine (NumPy float32
1024^3 matmul, OpenBLAS on T threads for it, best of 10), and the peak resident memory of each
framework on DCGAN-28 batch 256, each in a separate process. Writes a JSON file and a bar chart
beside it (``.png``).

``--device cuda`` runs nanogan on the CuPy backend against PyTorch on CUDA instead, same configs
and table (:mod:`cuda_bench`; needs ``pip install -e ".[gpu]"`` and a CUDA build of torch, else it
stops with a one-line message).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from _common import (
    HERE,
    format_table,
    machine_info,
    median_ms,
    real_batch,
    set_threads,
    sgemm_peak,
    time_call,
    use_checkout,
)
from specs import CONFIGS, TARGETS, X_SHAPE, Z_SHAPE, iteration_flops

CHECK_BATCH = 8
CHECK_F64_TOL = 1e-8
CHECK_F32_TOL = 1e-4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="mlp64,mlp256,dcgan64,dcgan256",
                    help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--iters", type=int, default=10, help="timed iterations (median; >= 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    ap.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
    ap.add_argument("--no-jax", action="store_true", help="skip JAX even if it imports")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: nanogan on CuPy against PyTorch on CUDA (cuda_bench.py)")
    ap.add_argument("--out", default=None,
                    help="default benchmarks/results.json (cpu), results_cuda.json (cuda)")
    args = ap.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.configs if c not in CONFIGS]
    if bad:
        ap.error(f"unknown config(s) {bad}; choose from {list(CONFIGS)}")
    return args


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def cross_check(arch: str, jax_side: Any) -> dict[str, Any]:
    """Two iterations from identical weights and noise: nanogan vs PyTorch in float64, and
    (when given) JAX vs PyTorch in float32. Returns the largest relative errors; raises
    ``SystemExit`` if a tolerance is exceeded."""
    import nano_side
    import numpy as np
    import torch
    import torch_side

    rng = np.random.default_rng(7)
    x = real_batch(X_SHAPE[arch], CHECK_BATCH, seed=3).astype(np.float64)
    zs = [rng.standard_normal((CHECK_BATCH, *Z_SHAPE[arch])) for _ in range(4)]
    out: dict[str, Any] = {"batch": CHECK_BATCH, "iterations": 2}

    gan = nano_side.build_gan(arch, seed=11, dtype=np.float64)
    tg = torch_side.TorchGAN(arch, torch.float64, (gan.G.state_dict(), gan.D.state_dict()))
    losses_n, losses_t = [], []
    for i in range(2):
        losses_n += nano_side.fixed_iteration(gan, x, zs[2 * i], zs[2 * i + 1])
        losses_t += tg.iteration(*(torch.from_numpy(a) for a in (x, zs[2 * i], zs[2 * i + 1])))
    err_loss = max(rel(a, b) for a, b in zip(losses_n, losses_t))
    err_param = 0.0
    for mine, theirs in ((gan.G, tg.G), (gan.D, tg.D)):
        ref = theirs.state_dict()
        for k, v in mine.state_dict().items():
            r = ref[k].numpy().astype(np.float64)
            err_param = max(err_param, float(np.linalg.norm(v - r)
                                             / max(np.linalg.norm(r), 1e-300)))
    out.update(nanogan_losses=losses_n, torch_losses=losses_t, float64_loss_rel_err=err_loss,
               float64_state_rel_err=err_param)
    if max(err_loss, err_param) > CHECK_F64_TOL:
        raise SystemExit(f"cross-check failed ({arch}): nanogan and PyTorch disagree in float64, "
                         f"loss rel. error {err_loss:.2e}, state rel. error {err_param:.2e}")
    if jax_side is not None:
        f32 = [a.astype(np.float32) for a in (x, *zs)]
        gan = nano_side.build_gan(arch, seed=11)
        states = (gan.G.state_dict(), gan.D.state_dict())
        tg = torch_side.TorchGAN(arch, torch.float32, states)
        jg = jax_side.JaxGAN(arch, *states, gan.G.params, gan.D.params)
        lj, lt = [], []
        for i in range(2):
            lj += jg.fixed_iteration(f32[0], f32[2 * i + 1], f32[2 * i + 2])
            lt += tg.iteration(*(torch.from_numpy(a) for a in (f32[0], f32[2 * i + 1],
                                                                 f32[2 * i + 2])))
        err_jax = max(rel(a, b) for a, b in zip(lj, lt))
        out.update(jax_losses=lj, torch_f32_losses=lt, jax_float32_loss_rel_err=err_jax)
        if err_jax > CHECK_F32_TOL:
            raise SystemExit(f"cross-check failed ({arch}): JAX and PyTorch disagree in float32, "
                             f"loss rel. error {err_jax:.2e}")
    return out


def bench_config(name: str, args: argparse.Namespace, jax_side: Any) -> dict[str, Any]:
    """Time one config, the frameworks interleaved; returns medians and raw times (ms)."""
    import nano_side
    import torch
    import torch_side

    arch, batch = CONFIGS[name]
    x = real_batch(X_SHAPE[arch], batch)
    gan = nano_side.build_gan(arch, seed=0)
    states = (gan.G.state_dict(), gan.D.state_dict())
    steps = {"nanogan": nano_side.make_step(gan, x),
             "torch": torch_side.TorchGAN(arch, torch.float32, states).make_step(x)}
    compile_s = None
    if jax_side is not None:
        jg = jax_side.JaxGAN(arch, *states, gan.G.params, gan.D.params)
        steps["jax"] = jg.make_step(x)
        compile_s = time_call(steps["jax"])  # the first call traces and compiles
    for fn in steps.values():
        for _ in range(args.warmup):
            fn()
    names = list(steps)
    times: dict[str, list[float]] = {k: [] for k in names}
    for i in range(args.iters):
        for k in names[i % len(names):] + names[:i % len(names)]:
            times[k].append(time_call(steps[k]))
    res: dict[str, Any] = {"config": name, "arch": arch, "batch": batch}
    for k in names:
        res[f"{k}_ms"] = median_ms(times[k])
        res[f"{k}_all_ms"] = [round(1e3 * t, 3) for t in times[k]]
    if compile_s is not None:
        res["jax_compile_s"] = compile_s
    return res


def run_memory(framework: str, threads: int) -> dict[str, Any] | None:
    cmd = [sys.executable, os.path.join(HERE, "memory_probe.py"), "--framework", framework,
           "--config", "dcgan256", "--threads", str(threads)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        err = getattr(exc, "stderr", "") or ""
        print(f"memory probe for {framework} failed: {exc} {err[-500:]}", file=sys.stderr)
        return None


def plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["config"] for r in results]
    xs = np.arange(len(names))
    has_jax = all(r.get("jax_vs_torch") is not None for r in results)
    w = 0.38 if has_jax else 0.6
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.bar(xs - (w / 2 if has_jax else 0), [r["nanogan_vs_torch"] for r in results], w,
           label="nanogan / PyTorch", color="#3b75af")
    if has_jax:
        ax.bar(xs + w / 2, [r["jax_vs_torch"] for r in results], w, label="JAX jit / PyTorch",
               color="#ef8636")
    ax.axhline(1.0, color="k", lw=0.8, label="PyTorch eager (= 1)")
    for i, r in enumerate(results):
        ax.hlines(r["target"], i - 0.48, i + 0.48, colors="#c22", linestyles="--",
                  label="target" if i == 0 else None)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    ax.set_yscale("log")
    fmt = matplotlib.ticker.FormatStrFormatter("%g")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xticks(xs, names)
    ax.set_ylabel("time / PyTorch's time (lower is faster)")
    ax.set_title("Training iteration, same run, same threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        import cuda_bench

        return cuda_bench.main(args)
    if args.out is None:
        args.out = os.path.join(HERE, "results.json")
    threads = set_threads(args.threads)
    use_checkout()
    import nanogan.performance

    settings = nanogan.performance.configure()  # process-wide: every framework here has them
    import torch

    torch.set_num_threads(threads)
    jax_side, jax_note = None, None
    if not args.no_jax:
        try:
            import jax_side  # imports jax and optax
        except ImportError as exc:
            jax_note = f"JAX skipped: {exc} (pip install jax optax)"
            print(jax_note, file=sys.stderr)
    t_start = time.perf_counter()
    info = machine_info(threads)
    peak = sgemm_peak(threads)
    print(f"{info['cpu_model']}, {info['cores']} cores, {threads} threads; nanogan kernels "
          f"'{info['kernel_set']}'; numpy {info['numpy']}, torch {info['torch']}, "
          f"jax {info['jax'] if jax_side else 'skipped'}; sgemm peak {peak:.1f} GFLOP/s",
          flush=True)

    checks = {}
    for arch in dict.fromkeys(CONFIGS[c][0] for c in args.configs):
        checks[arch] = cross_check(arch, jax_side)
        c = checks[arch]
        print(f"cross-check {arch}: nanogan vs PyTorch float64 rel. err. loss "
              f"{c['float64_loss_rel_err']:.1e}, weights after 2 iters "
              f"{c['float64_state_rel_err']:.1e}"
              + (f"; JAX vs PyTorch float32 loss {c['jax_float32_loss_rel_err']:.1e}"
                 if jax_side else ""), flush=True)

    results = []
    for name in args.configs:
        r = bench_config(name, args, jax_side)
        arch, batch = CONFIGS[name]
        for fw in ("nanogan", "torch", "minimum"):
            r[f"{fw}_flops"] = iteration_flops(arch, batch, fw)
        r["nanogan_vs_torch"] = r["nanogan_ms"] / r["torch_ms"]
        r["jax_vs_torch"] = r["jax_ms"] / r["torch_ms"] if "jax_ms" in r else None
        peer, documented = TARGETS[name]
        r["target_peer"] = peer
        r["target"] = (r["jax_vs_torch"] if peer == "JAX jit" and r["jax_vs_torch"] is not None
                       else documented)
        r["target_met"] = r["nanogan_vs_torch"] <= r["target"]
        for fw, flops_key in (("nanogan", "nanogan"), ("torch", "torch"), ("jax", "minimum")):
            if f"{fw}_ms" in r:
                gflops = r[f"{flops_key}_flops"] / (r[f"{fw}_ms"] * 1e-3) / 1e9
                r[f"{fw}_gflops"] = gflops
                r[f"{fw}_peak_fraction"] = gflops / peak
        results.append(r)
        print(f"{name}: nanogan {r['nanogan_ms']:.1f} ms, torch {r['torch_ms']:.1f} ms"
              + (f", jax {r['jax_ms']:.1f} ms" if "jax_ms" in r else ""), flush=True)

    memory = {}
    if not args.no_memory:
        for fw in ("nanogan", "torch") + (("jax",) if jax_side else ()):
            memory[fw] = run_memory(fw, threads)

    header = ["config", "nanogan ms", "PyTorch ms", "JAX ms", "nanogan/PyTorch", "JAX/PyTorch",
              "target", "met", "GFLOP/iter", "nanogan GFLOP/s", "% of peak"]
    rows = [[r["config"], r["nanogan_ms"], r["torch_ms"], r.get("jax_ms"), r["nanogan_vs_torch"],
             r["jax_vs_torch"], f"<= {r['target']:.2f}", "yes" if r["target_met"] else "no",
             r["nanogan_flops"] / 1e9, r["nanogan_gflops"],
             f"{100 * r['nanogan_peak_fraction']:.1f}%"] for r in results]
    table = format_table(header, rows)
    mem_table = None
    if memory:
        ref = memory.get("torch") or {}
        mrows = [[fw, m["peak_mb"], m["import_mb"], m["above_import_mb"],
                  "-" if not ref else ("yes" if m["peak_mb"] <= ref["peak_mb"] else "no")]
                 for fw, m in memory.items() if m]
        mem_table = format_table(["DCGAN-28 b256 memory", "peak MB", "after import MB",
                                  "above import MB", "peak <= PyTorch's"], mrows)
    print()
    print(f"Machine: {info['cpu_model']}, {info['cores']} cores, {threads} threads, "
          f"sgemm peak {peak:.1f} GFLOP/s (float32 1024^3), nanogan kernels "
          f"'{info['kernel_set']}'; median of {args.iters} iterations after {args.warmup} "
          "warm-up, interleaved")
    print(table)
    print("In-process view, not what users get (per_process.py is): every framework here runs "
          f"with OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} and nanogan's "
          f"process-wide settings {settings}; glibc's freed-memory reuse among them also spares "
          "PyTorch page faults it has in its own process")
    if mem_table:
        print()
        print(mem_table)
    if jax_note:
        print(jax_note)
    print("GFLOP/iter: matrix products nanogan computes in one iteration (benchmarks/specs.py); "
          "% of peak: nanogan GFLOP/s / sgemm peak")

    doc = {"machine": info, "sgemm_peak_gflops": peak, "iters": args.iters,
           "process_settings": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                                "nanogan": settings},
           "warmup": args.warmup, "cross_check": checks, "results": results, "memory": memory,
           "jax_note": jax_note, "table": table, "memory_table": mem_table,
           "wall_s": time.perf_counter() - t_start, "loadavg_1min_at_end": os.getloadavg()[0],
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    png = os.path.splitext(out)[0] + ".png"
    plot(results, png)
    print(f"wrote {out} and {png} ({doc['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
