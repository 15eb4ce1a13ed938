"""Two checkouts of nanogan against each other: alternating processes, a ratio per round.

::

    python benchmarks/ab.py OTHER [--configs dcgan256,mlp256] [--threads 1,2] [--rounds 6]
                                  [--seconds 1.0] [--plain]

``OTHER`` (A) is another checkout of this repository with its own build, for example the main
before a change::

    git worktree add ../base <commit> && (cd ../base && python setup.py build_ext --inplace)

and this checkout is B. For every thread count, config and round, one fresh process of each
times nanogan's iteration as ``per_process.py`` does (each checkout's own ``per_process.py
--worker``: its own nanogan, ``configure()``, only the thread-count variables set, pinned below
the core count). A runs first in odd rounds and B in even ones: on this host the order alone
moved a ratio by a few percent. Printed: each round's ``B / A``, then per config the median of
the ratios with their spread, and each side's median time. A change is visible only where the
spread of the ratios stays on one side of 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import per_process  # noqa: E402


def order(round_index: int) -> tuple[str, str]:
    """Which side runs first in round ``round_index`` (0-based): A in even, B in odd ones."""
    return ("A", "B") if round_index % 2 == 0 else ("B", "A")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (threads, config): the ratios ``B / A`` of each round, their median and spread, and
    each side's median time over rounds."""
    out = []
    for key in sorted({(r["threads"], r["config"]) for r in runs}):
        rounds = sorted({r["round"] for r in runs if (r["threads"], r["config"]) == key})
        ms = {side: [] for side in ("A", "B")}
        ratios = []
        for rnd in rounds:
            got = {r["side"]: r["median_ms"] for r in runs
                   if (r["threads"], r["config"], r["round"]) == (*key, rnd)}
            if set(got) == {"A", "B"}:
                ratios.append(got["B"] / got["A"])
                for side in ms:
                    ms[side].append(got[side])
        if ratios:
            out.append({"threads": key[0], "config": key[1], "rounds": len(ratios),
                        "ratios": ratios, "ratio": statistics.median(ratios),
                        "min_ratio": min(ratios), "max_ratio": max(ratios),
                        "a_ms": statistics.median(ms["A"]), "b_ms": statistics.median(ms["B"])})
    return out


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = ["| threads | config | A ms | B ms | B / A (spread over rounds) | rounds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['config']} | {r['a_ms']:.1f} | {r['b_ms']:.1f} | "
                     f"{r['ratio']:.3f} ({r['min_ratio']:.3f}-{r['max_ratio']:.3f}) | "
                     f"{r['rounds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", help="the other checkout (A); this one is B")
    per_process.add_timing_flags(ap, "dcgan256,mlp256", 6)
    ap.add_argument("--plain", action="store_true", help="time GAN(fast=False) instead")
    args = ap.parse_args(argv)
    per_process.check_timing_flags(ap, args)
    other = os.path.join(os.path.abspath(args.other), "benchmarks", "per_process.py")
    if not os.path.isfile(other):
        ap.error(f"{args.other!r} is not a checkout of nanogan: no benchmarks/per_process.py")
    scripts = {"A": other, "B": os.path.join(HERE, "per_process.py")}
    sys.path[:0] = [os.path.dirname(HERE)]
    from specs import CONFIGS

    configs = [c for c in args.configs.split(",") if c]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        ap.error(f"--configs: unknown {bad}; choose from {list(CONFIGS)}")
    framework = "nanogan-plain" if args.plain else "nanogan"
    runs = []
    for t in (int(x) for x in args.threads.split(",") if x):
        for rnd in range(args.rounds):
            for config in configs:
                got = {}
                for side in order(rnd):
                    res = per_process.run_process(framework, config, t, args.iters, args.warmup,
                                                  args.seconds, script=scripts[side])
                    res.update(side=side, round=rnd)
                    runs.append(res)
                    got[side] = res["median_ms"]
                print(f"threads {t} round {rnd + 1} {config:9s} A {got['A']:9.2f} ms  "
                      f"B {got['B']:9.2f} ms  B/A {got['B'] / got['A']:.3f}", flush=True)
    print(format_rows(summarise(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
