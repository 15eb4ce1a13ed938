"""Where nanogan's time goes in one iteration of Algorithm 1, phase by phase and layer by layer.

::

    python benchmarks/profile_nanogan.py [--configs mlp64,dcgan64] [--iters N] [--threads T]
                                         [--cprofile] [--ops]

Re-enacts ``GAN.d_step`` and ``GAN.g_step`` with a clock around each phase (noise, G forward,
D forward, loss, D backward, G backward, optimizer; G forward once for both steps where
``GAN.step`` runs it so, :class:`nanogan.fast.Ahead`) and around every step's forward
and backward (the steps of the fused plan ``GAN`` runs: a layer, or a layer and its activation);
prints medians over ``N`` iterations after warm-up. ``--ops`` adds the time of every kernel op
and matrix product of real ``GAN.step`` iterations, by op and operand shape; ``--cprofile`` the
top functions under cProfile.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from typing import Any

from _common import format_table, real_batch, set_threads, use_checkout
from specs import CONFIGS, X_SHAPE


class Clock:
    """Accumulates wall time per key within an iteration; one list entry per iteration."""

    def __init__(self) -> None:
        self.cur: dict[str, float] = defaultdict(float)
        self.hist: dict[str, list[float]] = defaultdict(list)

    def add(self, key: str, seconds: float) -> None:
        self.cur[key] += seconds

    def end_iteration(self) -> None:
        for k, v in self.cur.items():
            self.hist[k].append(v)
        self.cur = defaultdict(float)


def timed(clock: Clock, key: str, fn, *a, **kw) -> Any:
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    clock.add(key, time.perf_counter() - t0)
    return out


_PLANS: dict[int, tuple[Any, Any]] = {}  # id -> (network, its plan)


def plan_of(seq):
    """What ``GAN`` runs: the network's fused plan (:mod:`nanogan.fast`)."""
    from nanogan.fast import Plan

    entry = _PLANS.get(id(seq))
    if entry is None or entry[0] is not seq:  # an id is reused once its network is freed
        entry = _PLANS[id(seq)] = (seq, Plan(seq))
    return entry[1]


def step_name(step) -> str:
    return type(step.layer).__name__ + ("+act" if step.size == 2 else "")


def seq_forward(clock: Clock, net: str, seq, x, phase: str):
    """The plan's forward pass step by step, as ``Plan.forward`` runs it (a step's time includes
    turning its input into the order of images it takes, where that changes)."""
    from nanogan.fast.plan import relayout
    from nanogan.fast.steps import NCHW

    plan = plan_of(seq)
    caches = []
    have = NCHW
    for i, (step, want) in enumerate(zip(plan.steps, plan.layouts)):
        t0 = time.perf_counter()
        x, have = relayout(x, have, want), want
        x, c = step.forward(x, True)
        dt = time.perf_counter() - t0
        clock.add(f"layer {net}.{i} {step_name(step)} fwd", dt)
        clock.add(phase, dt)
        caches.append(c)
    t0 = time.perf_counter()
    x = relayout(x, have, NCHW)
    clock.add(phase, time.perf_counter() - t0)
    return x, caches


def seq_backward(clock: Clock, net: str, seq, dy, caches, phase: str, param_grads: bool = True,
                 input_grad: bool = True, accumulate: bool = True):
    """The plan's backward pass step by step, as ``Plan.backward`` runs it: without
    ``input_grad`` the steps before the first one with parameters are skipped and that one
    computes no input gradient (what ``GAN`` asks for in the D step and for G); with
    ``accumulate=False`` the pass writes the gradients (``GAN`` skips ``zero_grad`` on a plan)."""
    from nanogan.fast.plan import relayout
    from nanogan.fast.steps import NCHW

    whole = plan_of(seq)
    plan = whole.steps
    first = 0 if input_grad or not param_grads else next(
        (i for i, s in enumerate(plan) if s.has_params), len(plan))
    have = NCHW
    for i in reversed(range(first, len(plan))):
        t0 = time.perf_counter()
        dy, have = relayout(dy, have, whole.layouts[i]), whole.layouts[i]
        dy = plan[i].backward(dy, caches[i], param_grads=param_grads,
                              input_grad=input_grad or i > first, accumulate=accumulate)
        dt = time.perf_counter() - t0
        clock.add(f"layer {net}.{i} {step_name(plan[i])} bwd", dt)
        clock.add(phase, dt)
    return relayout(dy, have, NCHW) if input_grad else None


def iteration(clock: Clock, gan, x, rng) -> None:
    """``gan.step([x], rng)`` with clocks; the same calls in the same order."""
    import numpy as np  # not at the top: main() sets the thread count before NumPy loads

    from nanogan.fast import Ahead

    G, D, loss = gan.G, gan.D, gan.loss
    n = len(x)
    z = timed(clock, "noise", gan.sample_noise, n, rng)
    once = Ahead.wanted(gan)  # G(z) and G(z_g) as one batch, as GAN.step runs them
    if once:
        z_g = timed(clock, "noise", gan.sample_noise, n, rng)
        both = timed(clock, "G forward (D and G steps)", np.concatenate, [z, z_g])
        fakes, c = seq_forward(clock, "G", G, both, "G forward (D and G steps)")
        fake, fake_g = fakes[:n], fakes[n:]
        c_g = plan_of(G).split_pair((True, c, n))[1]
    else:
        fake, _ = seq_forward(clock, "G", G, z, "D step: G forward")
    if gan._run(D).stacks:  # real and fake as one batch (nanogan.fast.Plan.forward_pair)
        both = timed(clock, "D step: D forward (real, fake)", np.concatenate, [x, fake])
        s, c = seq_forward(clock, "D", D, both, "D step: D forward (real, fake)")
        _, d_real, d_fake = timed(clock, "losses", loss.d_loss, s[:n], s[n:])
        ds = timed(clock, "D step: D backward (real, fake)", np.concatenate, [d_real, d_fake])
        seq_backward(clock, "D", D, ds, c, "D step: D backward (real, fake)", input_grad=False,
                     accumulate=False)
    else:
        s_real, c_real = seq_forward(clock, "D", D, x, "D step: D forward (real, fake)")
        s_fake, c_fake = seq_forward(clock, "D", D, fake, "D step: D forward (real, fake)")
        _, d_real, d_fake = timed(clock, "losses", loss.d_loss, s_real, s_fake)
        seq_backward(clock, "D", D, d_real, c_real, "D step: D backward (real, fake)",
                     input_grad=False, accumulate=False)
        seq_backward(clock, "D", D, d_fake, c_fake, "D step: D backward (real, fake)",
                     input_grad=False)
    timed(clock, "D step: Adam", gan.d_opt.step)
    if once:
        fake = fake_g
    else:
        z = timed(clock, "noise", gan.sample_noise, n, rng)
        fake, c_g = seq_forward(clock, "G", G, z, "G step: G forward")
    s_fake, c_d = seq_forward(clock, "D", D, fake, "G step: D forward")
    _, d_fake = timed(clock, "losses", loss.g_loss, s_fake)
    dfake = seq_backward(clock, "D", D, d_fake, c_d, "G step: D backward (dx only)",
                         param_grads=False)
    seq_backward(clock, "G", G, dfake, c_g, "G step: G backward", input_grad=False,
                 accumulate=False)
    timed(clock, "G step: Adam", gan.g_opt.step)


#: The ops listed with both operands' shapes: the products, and the kernel ops that run a
#: convolution's products with its column matrix.
PRODUCTS = ("matmul", "matmul_pair", "im2col_matmul", "matmul_col2im", "matmul_im2col_t")


def op_times(gan, x, rng, iters: int) -> str:
    """Time every kernel op and every product of ``iters`` real iterations (``gan.step``), by op
    and by the shape of its first argument: calls and ms per iteration."""
    import nanogan.fast.steps as fast_steps
    from nanogan._kernels import OP_NAMES, ops

    acc: dict[tuple, float] = defaultdict(float)
    calls: dict[tuple, int] = defaultdict(int)

    def wrap(name: str, fn):
        def clocked(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            first = args[0]
            what = (f"[{len(first)} arrays, {sum(a.size for a in first):,} values]"
                    if isinstance(first, list) else str(tuple(getattr(first, "shape", ()))))
            key = (name, what,
                   str(tuple(getattr(args[1], "shape", ()))) if name in PRODUCTS else "")
            acc[key] += time.perf_counter() - t0
            calls[key] += 1
            return out
        return clocked

    saved = {op: getattr(ops, op) for op in OP_NAMES}
    saved_matmul, saved_pair = fast_steps.matmul, fast_steps.matmul_pair
    try:
        for op, fn in saved.items():
            setattr(ops, op, wrap(op, fn))
        fast_steps.matmul = wrap("matmul", saved_matmul)
        fast_steps.matmul_pair = wrap("matmul_pair", saved_pair)
        t0 = time.perf_counter()
        for _ in range(iters):
            gan.step([x], rng)
        total = (time.perf_counter() - t0) / iters
    finally:
        for op, fn in saved.items():
            setattr(ops, op, fn)
        fast_steps.matmul, fast_steps.matmul_pair = saved_matmul, saved_pair
    rows = sorted(acc.items(), key=lambda kv: -kv[1])
    table = [[f"{op} {a}" + (f" @ {b}" if b else ""), f"{calls[(op, a, b)] / iters:.0f}",
              1e3 * t / iters, f"{100 * t / iters / total:.0f}%"] for (op, a, b), t in rows[:16]]
    rest = sum(t for _, t in rows[16:]) / iters
    outside = total - sum(acc.values()) / iters  # NumPy copies and sums, Python, the loss
    table.append([f"the other {max(len(rows) - 16, 0)} ops and products",
                  f"{sum(calls[k] for k, _ in rows[16:]) / iters:.0f}", 1e3 * rest,
                  f"{100 * rest / total:.0f}%"])
    table.append(["outside them (NumPy, Python)", "", 1e3 * outside,
                  f"{100 * outside / total:.0f}%"])
    return (f"kernel ops and products, {1e3 * total:.2f} ms per iteration with the clocks "
            f"(the fused plan's products and every kernel op):\n\n"
            + format_table(["op (first argument's shape)", "calls", "ms", "share"], table))


def profile_config(name: str, iters: int, warmup: int, cprofile: bool, ops: bool = False) -> str:
    import statistics

    import nano_side
    import numpy as np

    arch, batch = CONFIGS[name]
    gan = nano_side.build_gan(arch)
    x = real_batch(X_SHAPE[arch], batch)
    rng = np.random.default_rng(0)
    clock = Clock()
    totals = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        iteration(clock, gan, x, rng)
        dt = time.perf_counter() - t0
        if i >= warmup:
            clock.end_iteration()
            totals.append(dt)
        else:
            clock.cur.clear()
    total = statistics.median(totals)
    med = {k: statistics.median(v) for k, v in clock.hist.items()}
    phases = [(k, v) for k, v in med.items() if not k.startswith("layer ")]
    layers = sorted(((k[6:], v) for k, v in med.items() if k.startswith("layer ")),
                    key=lambda kv: -kv[1])
    out = [f"{name}: median {1e3 * total:.2f} ms per iteration"]
    out.append(format_table(["phase", "ms", "share"],
                            [[k, 1e3 * v, f"{100 * v / total:.0f}%"] for k, v in phases]))
    out.append(format_table(["layer (summed over the iteration)", "ms", "share"],
                            [[k, 1e3 * v, f"{100 * v / total:.0f}%"] for k, v in layers[:10]]))
    if ops:
        out.append(op_times(gan, x, rng, iters))
    if cprofile:
        import cProfile
        import io
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        for _ in range(iters):
            gan.step([x], rng)
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(12)
        out.append(s.getvalue())
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="mlp64,dcgan64")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--ops", action="store_true",
                    help="also time every kernel op and product by shape")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads, passive=False)  # nanogan alone: configure() decides
    use_checkout()
    import nanogan.performance

    nanogan.performance.configure()  # nanogan's process-wide speed settings, as its examples
    import nanogan

    print(f"{threads} threads, nanogan kernels '{nanogan.kernel_backend()}'")
    for name in args.configs.split(","):
        print(profile_config(name.strip(), args.iters, args.warmup, args.cprofile, args.ops))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
