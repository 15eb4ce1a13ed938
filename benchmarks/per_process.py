"""nanogan, PyTorch and JAX as their users run them: each framework alone in its own process.

::

    python benchmarks/per_process.py [--configs mlp64,mlp256,dcgan64,dcgan256] [--threads 1,2]
                                     [--rounds 3] [--iters 10] [--seconds 1.0]
                                     [--frameworks nanogan,torch,jax]
                                     [--frameworks nanogan-unconfigured,nanogan-unconfigured-nopool]
                                     [--out benchmarks/per_process_results.json]

This is the headline comparison (BENCHMARKS.md, "How to time"). For every thread count, round
and config, one fresh process per framework runs the iteration of BENCHMARKS.md (Algorithm 1,
k = 1, non-saturating loss, Adam(2e-4, (0.5, 0.999)), float32, fresh noise for the D and the G
step) untimed for ``--warmup`` iterations and at least half of ``--seconds``, then timed for
``--iters`` iterations and at least ``--seconds`` (a few milliseconds' MLP iteration runs a few
hundred times: over ten iterations, 40 ms, one hiccup of the host or the first iterations after
start-up moved a process's median by 50%; every framework is timed the same way), and reports
the median. The
processes alternate (A B C, then B C A, ...). Published: the median over rounds of each round's
median, and the spread (smallest and largest round median). Beside the ratio of those
medians, the ratio of nanogan's process and the target's peer's in each round (the peer of
BENCHMARKS.md's target: JAX for the MLP, PyTorch for DCGAN-28; the two run in the same round,
seconds apart): their median, spread, and in how many rounds nanogan met the target (at or
below JAX's time; at or below 0.8x PyTorch's; :func:`paired_ratios`, ``specs.PEER_TARGETS``;
the host drifts over minutes, less within a round).

Each process sets only what a user sets to choose a thread count: the thread-count variables
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``) and, for
PyTorch, ``torch.set_num_threads``; below the machine's core count the process is also pinned to
that many cores (``taskset``'s ``sched_setaffinity``), the one setting that holds for every
framework: JAX's XLA CPU runtime reads none of the variables and runs its own thread pool over
all cores (its "1 thread" process used 1.4-1.5 cores unpinned). Each process reports the cores it
used while timed (CPU time over wall time). Nothing else: no OpenMP wait policy, no allocator
setting; each
framework runs as its own scripts run it: PyTorch and JAX with their defaults, nanogan with
``nanogan.performance.configure()``, which its examples and ``nanogan train`` call first (nothing
of it happens at import). Also reported per process: peak resident memory
(``VmHWM``) and the part above the framework's import.

``--frameworks nanogan,torch,torch-reuse`` adds PyTorch with glibc keeping freed memory for
reuse (``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in its environment, the
thresholds ``configure()`` sets for nanogan): not a peer of the headline (its users do not set
them by default), a second table showing how much of the gap is PyTorch's page faults.

The in-process, interleaved view (``vs_pytorch.py``) is a second table: it makes process-wide
settings (``OMP_WAIT_POLICY=PASSIVE`` and nanogan's own) that apply to every framework there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FRAMEWORKS = ("nanogan", "nanogan-plain", "torch", "jax")
#: nanogan's own variants: not peers. "nanogan-plain" is GAN(fast=False): the plain layers a
#: learner reads, without the fused plan of nanogan.fast (how much the fast path buys).
OURS = ("nanogan", "nanogan-plain")
#: Asked for by name only (``--frameworks``), not in the headline: nanogan's fused plan in a
#: process that never calls ``configure()`` (a library user's own script), with its memory pool
#: (``nanogan._memory.workspace``) and without it.
UNCONFIGURED = ("nanogan-unconfigured", "nanogan-unconfigured-nopool")
#: Asked for by name only, not a peer of the headline: PyTorch with glibc keeping freed memory for
#: reuse (set by glibc's own environment variables, to the thresholds that
#: ``nanogan.performance.configure()`` sets with ``mallopt``), to show how much of a gap is the
#: page faults of PyTorch's default allocation (a PyTorch user can set these too).
TORCH_REUSE = "torch-reuse"
REUSE_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
USER_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


# ---------------------------------------------------------------------------- one process
def _vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _cpu_seconds() -> float:
    """User and system CPU time of this process, all its threads (nanosecond clock)."""
    return time.process_time()


def pin_cores(threads: int) -> set[int] | None:
    """The cores a ``threads``-thread process is pinned to: the first ``threads`` this process
    may use, or None (no pinning) when that is all of them."""
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[:threads]) if threads < len(allowed) else None


def worker(framework: str, config: str, threads: int, iters: int, warmup: int,
           seconds: float = 0.0) -> dict[str, Any]:
    """Time one framework on one config in this process (the thread variables are already set
    by the parent's environment for this process)."""
    sys.path[:0] = [HERE, ROOT]
    from _common import real_batch
    from specs import CONFIGS, X_SHAPE

    arch, batch = CONFIGS[config]
    x = real_batch(X_SHAPE[arch], batch)
    if framework in OURS + UNCONFIGURED:
        import nano_side  # noqa: I001 (imports nanogan, then the settings apply)
        import nanogan.performance
        from nanogan import _memory

        if framework in OURS:
            nanogan.performance.configure()  # what nanogan's examples and CLI do first
        if framework == "nanogan-unconfigured-nopool":
            _memory.use_pool(False)
        base = _vmhwm_mb()
        gan = nano_side.build_gan(arch)
        gan.fast = framework != "nanogan-plain"
        step = nano_side.make_step(gan, x)
    elif framework in ("torch", TORCH_REUSE):
        import torch
        import torch_side
        torch.set_num_threads(threads)
        base = _vmhwm_mb()
        step = torch_side.TorchGAN(arch).make_step(x)
    elif framework == "jax":
        import jax_side
        import nano_side
        base = _vmhwm_mb()
        gan = nano_side.build_gan(arch)  # JAX starts from the same kind of initial weights
        step = jax_side.JaxGAN(arch, gan.G.state_dict(), gan.D.state_dict(), gan.G.params,
                               gan.D.params).make_step(x)
        del gan
    else:
        raise ValueError(f"unknown framework {framework!r}")
    t_end = time.perf_counter() + seconds / 2
    done = 0
    while done < warmup or time.perf_counter() < t_end:
        step()
        done += 1
    times: list[float] = []
    cpu0 = _cpu_seconds()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    while len(times) < iters or sum(times) < seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cores = (_cpu_seconds() - cpu0) / sum(times)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / len(times)
    peak = _vmhwm_mb()
    return {"framework": framework, "config": config, "threads": threads,
            "median_ms": 1e3 * statistics.median(times), "times_ms": [1e3 * t for t in times],
            "peak_mb": peak, "above_import_mb": peak - base, "cores_used": cores,
            "page_faults_per_iter": faults, "pinned_cores": sorted(os.sched_getaffinity(0))}


def run_process(framework: str, config: str, threads: int, iters: int, warmup: int,
                seconds: float = 0.0, script: str | None = None) -> dict[str, Any]:
    """:func:`worker` in a fresh process with only the thread-count variables set (and pinned
    below the core count); ``script``: another checkout's ``per_process.py`` to run instead of
    this one (``ab.py``: each checkout times its own nanogan)."""
    env = {k: v for k, v in os.environ.items() if k not in USER_THREAD_VARS}
    env.update({k: str(threads) for k in USER_THREAD_VARS})
    if framework == TORCH_REUSE:
        env.update(REUSE_ENV)
    cmd = [sys.executable, os.path.abspath(script or __file__), "--worker", framework,
           "--configs", config,
           "--threads", str(threads), "--iters", str(iters), "--warmup", str(warmup),
           "--seconds", str(seconds)]
    cores = pin_cores(threads)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    if res.returncode != 0:
        raise RuntimeError(f"{framework} {config} threads={threads} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def available(framework: str) -> bool:
    mod = ("nanogan" if framework.startswith("nanogan")
           else "torch" if framework == TORCH_REUSE else framework)
    code = f"import sys; sys.path.insert(0, {ROOT!r}); import {mod}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          check=False).returncode == 0


# ---------------------------------------------------------------------------- the driver
def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over rounds of the per-round medians, the spread, ratios to the fastest peer, and
    the same-round ratios to the peer of the config's target (:func:`paired_ratios`)."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    from specs import PEER_TARGETS

    keys = sorted({(r["threads"], r["config"], r["framework"]) for r in runs})
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for threads, config, fw in keys:
        meds = [r["median_ms"] for r in runs
                if (r["threads"], r["config"], r["framework"]) == (threads, config, fw)]
        peaks = [r["peak_mb"] for r in runs
                 if (r["threads"], r["config"], r["framework"]) == (threads, config, fw)]
        row = rows.setdefault((threads, config), {"threads": threads, "config": config})
        cores = [r["cores_used"] for r in runs if "cores_used" in r
                 and (r["threads"], r["config"], r["framework"]) == (threads, config, fw)]
        faults = [r["page_faults_per_iter"] for r in runs if "page_faults_per_iter" in r
                  and (r["threads"], r["config"], r["framework"]) == (threads, config, fw)]
        row[fw] = {"ms": statistics.median(meds), "min_ms": min(meds), "max_ms": max(meds),
                   "rounds": len(meds), "peak_mb": max(peaks)}
        if faults:
            row[fw]["page_faults_per_iter"] = statistics.median(faults)
        if cores:
            row[fw]["cores_used"] = statistics.median(cores)
    out = []
    for row in rows.values():
        peers = [fw for fw in FRAMEWORKS if fw not in OURS and fw in row]
        if "nanogan" in row and peers:
            fastest = min(peers, key=lambda fw: row[fw]["ms"])
            row["fastest_peer"] = fastest
            row["ratio_to_fastest_peer"] = row["nanogan"]["ms"] / row[fastest]["ms"]
            peer, target = PEER_TARGETS.get(row["config"], (fastest, 1.0))
            if peer not in row:  # the target's peer did not run: the fastest that did
                peer, target = fastest, 1.0
            paired = paired_ratios(runs, row["threads"], row["config"], "nanogan", peer)
            if paired:
                row.update(paired_peer=peer, target=target, paired_ratios=paired,
                           paired_ratio=statistics.median(paired),
                           rounds_at_target=sum(v <= target for v in paired))
            if "torch" in row:
                row["ratio_to_torch"] = row["nanogan"]["ms"] / row["torch"]["ms"]
        if "nanogan" in row and "nanogan-plain" in row:
            row["plain_over_plan"] = row["nanogan-plain"]["ms"] / row["nanogan"]["ms"]
        if TORCH_REUSE in row and "nanogan" in row:
            row["ratio_to_torch_reuse"] = row["nanogan"]["ms"] / row[TORCH_REUSE]["ms"]
            paired = paired_ratios(runs, row["threads"], row["config"], "nanogan", TORCH_REUSE)
            if paired:
                row["paired_ratio_torch_reuse"] = statistics.median(paired)
                row["paired_ratios_torch_reuse"] = paired
        if all(fw in row for fw in UNCONFIGURED):
            row["pool_over_nopool"] = (row["nanogan-unconfigured"]["ms"]
                                       / row["nanogan-unconfigured-nopool"]["ms"])
        out.append(row)
    return out


NAMES = {"torch": "PyTorch", "jax": "JAX"}


def paired_ratios(runs: list[dict[str, Any]], threads: int, config: str, ours: str,
                  peer: str) -> list[float]:
    """``ours / peer`` of each round in which both ran (one process each, seconds apart).

    The host's speed drifts by 10-20% over minutes; the two processes of one round see nearly
    the same host, so their ratio moves less than the ratio of the two medians over rounds. The
    table gives the median of these ratios and their spread beside the headline ratio."""
    got: dict[int, dict[str, float]] = {}
    for r in runs:
        if (r["threads"], r["config"]) == (threads, config) and r["framework"] in (ours, peer):
            got.setdefault(r.get("round", 0), {})[r["framework"]] = r["median_ms"]
    return [g[ours] / g[peer] for _, g in sorted(got.items()) if ours in g and peer in g]


def faults_of(row: dict[str, Any], fw: str) -> str:
    """A framework's page faults per iteration in a summary row, or ``-``."""
    f = row.get(fw, {}).get("page_faults_per_iter")
    return "-" if f is None else f"{f:,.0f}"


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = ("| threads | config | nanogan ms (spread) | PyTorch ms (spread) | JAX ms (spread) | "
            "nanogan / fastest peer | same-round ratio to the target's peer: median (spread), "
            "rounds at target | "
            "nanogan / PyTorch | plain layers ms (spread) | plain / plan |")
    lines = [head, "|" + "---|" * 10]

    def paired(row: dict) -> str:
        p = row.get("paired_ratios")
        if not p:
            return "-"
        return (f"{row['paired_ratio']:.2f} ({min(p):.2f}-{max(p):.2f}) vs "
                f"{NAMES.get(row['paired_peer'], row['paired_peer'])}, "
                f"{row['rounds_at_target']} of {len(p)} at <= {row['target']:.1f}")

    def cell(row: dict, fw: str) -> str:
        if fw not in row:
            return "-"
        r = row[fw]
        return f"{r['ms']:.1f} ({r['min_ms']:.1f}-{r['max_ms']:.1f})"

    for row in rows if any(fw in row for row in rows for fw in FRAMEWORKS) else []:
        ratio = row.get("ratio_to_fastest_peer")
        rt = row.get("ratio_to_torch")
        lines.append(f"| {row['threads']} | {row['config']} | {cell(row, 'nanogan')} | "
                     f"{cell(row, 'torch')} | {cell(row, 'jax')} | "
                     + (f"{ratio:.2f} ({row['fastest_peer']})" if ratio else "-") + " | "
                     + paired(row) + " | "
                     + (f"{rt:.2f}" if rt else "-") + f" | {cell(row, 'nanogan-plain')} | "
                     + (f"{row['plain_over_plan']:.2f}" if "plain_over_plan" in row else "-")
                     + " |")
    if any(TORCH_REUSE in row for row in rows):
        lines += ["", "| threads | config | PyTorch ms (spread) | faults / iter | PyTorch with "
                  "glibc's reuse ms (spread) | faults / iter | nanogan / it | same round |",
                  "|" + "---|" * 8]
        for row in rows:
            if TORCH_REUSE not in row:
                continue
            tr = row.get("ratio_to_torch_reuse")
            pr = row.get("paired_ratios_torch_reuse")
            lines.append(f"| {row['threads']} | {row['config']} | {cell(row, 'torch')} | "
                         f"{faults_of(row, 'torch')} | {cell(row, TORCH_REUSE)} | "
                         f"{faults_of(row, TORCH_REUSE)} | "
                         + (f"{tr:.2f}" if tr else "-") + " | "
                         + (f"{row['paired_ratio_torch_reuse']:.2f} ({min(pr):.2f}-{max(pr):.2f})"
                            if pr else "-") + " |")
    if any(fw in row for row in rows for fw in UNCONFIGURED):
        lines += ["", "| threads | config | unconfigured ms (spread) | faults / iter | "
                  "unconfigured, no pool ms (spread) | faults / iter | pool / no pool |",
                  "|" + "---|" * 7]

        for row in rows:
            ratio = row.get("pool_over_nopool")
            lines.append(f"| {row['threads']} | {row['config']} | "
                         f"{cell(row, UNCONFIGURED[0])} | {faults_of(row, UNCONFIGURED[0])} | "
                         f"{cell(row, UNCONFIGURED[1])} | {faults_of(row, UNCONFIGURED[1])} | "
                         + (f"{ratio:.2f}" if ratio else "-") + " |")
    return "\n".join(lines)


def add_timing_flags(ap: argparse.ArgumentParser, configs: str, rounds: int) -> None:
    """The flags of a timed run, shared with ``ab.py``: configs, thread counts, rounds and how
    long each process warms up and times."""
    ap.add_argument("--configs", default=configs)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="time at least this long (and warm up half as long) per process")


def check_timing_flags(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse counts below their least value as argparse errors."""
    for name, lo in (("--rounds", 1), ("--iters", 1), ("--warmup", 0), ("--seconds", 0)):
        if getattr(args, name[2:]) < lo:
            ap.error(f"{name} must be >= {lo}, got {getattr(args, name[2:])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_timing_flags(ap, "mlp64,mlp256,dcgan64,dcgan256", 3)
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--out", default=os.path.join(HERE, "per_process_results.json"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    check_timing_flags(ap, args)
    if args.worker:
        print(json.dumps(worker(args.worker, args.configs, int(args.threads), args.iters,
                                args.warmup, args.seconds)))
        return 0
    sys.path[:0] = [HERE, ROOT]
    from specs import CONFIGS

    configs = [c for c in args.configs.split(",") if c]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        ap.error(f"--configs: unknown {bad}; choose from {list(CONFIGS)}")
    threads = [int(t) for t in args.threads.split(",") if t]
    frameworks = [f for f in args.frameworks.split(",") if f]
    missing = [f for f in frameworks
               if f not in FRAMEWORKS + UNCONFIGURED + (TORCH_REUSE,) or not available(f)]
    for f in missing:
        print(f"note: {f} is not available here; skipped", file=sys.stderr)
    frameworks = [f for f in frameworks if f not in missing]
    runs = []
    started = time.time()
    load0 = os.getloadavg()[0]
    for t in threads:
        for r in range(args.rounds):
            for config in configs:
                order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
                for fw in order:
                    res = run_process(fw, config, t, args.iters, args.warmup, args.seconds)
                    res["round"] = r
                    runs.append(res)
                    print(f"threads {t} round {r + 1} {config:9s} {fw:27s} "
                          f"{res['median_ms']:9.1f} ms  peak {res['peak_mb']:.0f} MB  "
                          f"{res['cores_used']:.2f} cores", flush=True)
    rows = summarise(runs)
    print(format_rows(rows))
    result = {"how": "each framework in its own process, its own defaults; thread-count "
                     "variables, and below the core count the process pinned to that many "
                     "cores; alternating order; median over rounds of round medians",
              "rounds": args.rounds, "iters": args.iters, "warmup": args.warmup,
              "min_seconds": args.seconds,
              "loadavg_1min_at_start": load0, "loadavg_1min_at_end": os.getloadavg()[0],
              "seconds": time.time() - started, "rows": rows, "runs": runs}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
