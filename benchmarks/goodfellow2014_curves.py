"""The 2014 replication's Parzen curves: the plot and the equal-epoch table of QUALITY.md.

::

    python benchmarks/goodfellow2014_curves.py [--every 10] [--png PATH]

Reads the ``parzen_*.csv`` files of ``benchmarks/goodfellow2014/`` (copies of the runs'
``parzen.csv``: epoch, updates, seconds, Parzen log-likelihood, its standard error, sigma and,
for newer runs, the validation figure), draws epoch against log-likelihood for every run with the
paper's 225 +- 2 and the real-data ceiling (``examples/goodfellow2014_mnist.py``'s plot), and
prints a Markdown table of every run at equal epochs (``--every``), so that runs of different
lengths are compared where they all have a figure.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

#: file stem -> label, in the table's column order
RUNS = {
    "parzen_simultaneous_seed1": "simultaneous (2014 code), seed 1: the published run",
    "parzen_alternating_seed0": "Algorithm 1 as printed (alternating), seed 0",
    "parzen_earlier_simultaneous_seed0": "simultaneous, seed 0, the earlier run",
    "parzen_simultaneous_seed0": "simultaneous, seed 0 (stopped: D won)",
    "parzen_lever_lrdecay_seed1": "lever: lr decay 1.00004 (10x the yaml's), seed 1",
    "parzen_lever_dropout_seed1": "lever: D hidden keep 0.8 (yaml 0.5), seed 1",
}


def read(path: Path) -> dict[int, tuple[float, float]]:
    """epoch -> (Parzen log-likelihood, standard error)."""
    with open(path, newline="") as f:
        return {int(r["epoch"]): (float(r["parzen"]), float(r["se"])) for r in csv.DictReader(f)}


def table(curves: dict[str, dict[int, tuple[float, float]]], every: int) -> str:
    names = list(curves)
    last = max(max(c) for c in curves.values() if c)
    lines = ["| epoch | " + " | ".join(RUNS.get(n, n) for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for epoch in range(every, last + 1, every):
        cells = [f"{c[epoch][0]:.1f} +- {c[epoch][1]:.1f}" if epoch in c else ""
                 for c in curves.values()]
        if any(cells):
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--png", default=str(HERE / "goodfellow2014" / "parzen.png"))
    args = ap.parse_args(argv)
    folder = HERE / "goodfellow2014"
    paths = {p.stem: p for p in sorted(folder.glob("parzen_*.csv"))}
    order = [s for s in RUNS if s in paths] + [s for s in paths if s not in RUNS]
    curves = {s: read(paths[s]) for s in order}
    print(table(curves, args.every))
    from goodfellow2014_mnist import save_parzen_plot

    first, *rest = order
    save_parzen_plot(paths[first], Path(args.png), {RUNS.get(s, s): paths[s] for s in rest},
                     label=RUNS.get(first, first), ylim=(0, 260))  # below 0: in the table
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
