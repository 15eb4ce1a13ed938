"""The GMN, EBGAN and DANN examples in quick mode (tens of steps): every output is written, the
summaries hold sane numbers, and a resumed run continues bit for bit (short training runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nanogan.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_example(name: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), "--quick",
                           "--no-progress", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def weights(path: Path, prefix: str) -> dict[str, np.ndarray]:
    arrays, _ = load_checkpoint(path)
    return {k: v for k, v in arrays.items() if k.startswith(prefix)}


def test_gmn_mnist_quick_and_resume(tmp_path):
    out = tmp_path / "gmn"
    run_example("gmn_mnist.py", "--out", str(out), "--steps", "12")
    for f in ("samples.png", "losses.png"):
        assert_png(out / f)
    x = np.load(out / "samples.npy")
    assert x.shape == (200, 1, 28, 28) and np.all(np.abs(x) <= 1)
    assert (out / "metrics.csv").read_text().count("\n") == 13
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 12 and np.isfinite(summary["final_mmd2_mean_last_100"])
    # 12 + 8 resumed steps equal 20 straight steps, bit for bit
    run_example("gmn_mnist.py", "--out", str(out), "--steps", "20", "--resume")
    straight = tmp_path / "straight"
    run_example("gmn_mnist.py", "--out", str(straight), "--steps", "20")
    a, b = weights(out / "checkpoint.npz", "G."), weights(straight / "checkpoint.npz", "G.")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_gmn_ring_quick(tmp_path):
    out = tmp_path / "ring"
    stdout = run_example("gmn_mnist.py", "--data", "ring", "--out", str(out))
    assert "modes covered" in stdout
    assert_png(out / "ring.png")
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["modes_covered"] <= 8 and 0.0 <= summary["high_quality"] <= 1.0
    assert len(summary["counts"]) == 8


def test_ebgan_quick_and_resume(tmp_path):
    out = tmp_path / "ebgan"
    run_example("ebgan_mnist.py", "--out", str(out), "--steps", "10")
    run_example("ebgan_mnist.py", "--out", str(out), "--steps", "20", "--resume")
    for f in ("samples.png", "reconstructions.png", "losses.png", "energies.png"):
        assert_png(out / f)
    assert np.load(out / "samples.npy").shape == (200, 1, 28, 28)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 20
    assert all(np.isfinite(v) for v in summary["mean_of_last_100"].values())
    straight = tmp_path / "straight"
    run_example("ebgan_mnist.py", "--out", str(straight), "--steps", "20")
    for prefix in ("G.", "D."):
        a, b = weights(out / "checkpoint.npz", prefix), weights(straight / "checkpoint.npz",
                                                                  prefix)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("target", ["texture", "invert"])
def test_dann_quick(tmp_path, target):
    out = tmp_path / "dann"
    stdout = run_example("dann_mnist.py", "--target", target, "--out", str(out))
    assert "target" in stdout
    assert_png(out / "dann.png")
    summary = json.loads((out / "summary.json").read_text())
    for group in ("target_accuracy", "source_accuracy"):
        assert set(summary[group]) == {"source_only", "dann"}
        assert all(0.0 <= v <= 1.0 for v in summary[group].values())
    # 30 steps on 1,000 digits already learn the source far above chance (0.1)
    assert summary["source_accuracy"]["source_only"] > 0.3
    assert (out / "accuracy.csv").read_text().startswith("step,")
