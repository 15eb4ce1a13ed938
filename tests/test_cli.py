"""The ``python -m nanogan`` command line: ``sample`` and ``info``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nanogan
from nanogan.__main__ import generate, main
from nanogan.data import Minibatches
from nanogan.gan import GAN
from nanogan.models import mlp_discriminator, mlp_generator
from nanogan.train import load_training_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A training checkpoint of a tiny MLP GAN making 28x28 images (3 steps on noise data)."""
    folder = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    gan = GAN(mlp_generator(8, 16, 784, rng=rng), mlp_discriminator(784, 16, rng=rng))
    data = np.tanh(np.random.default_rng(1).standard_normal((32, 784))).astype(np.float32)
    train(gan, Minibatches(data, 8, 2), 3, rng, out=folder, progress=False, sample_every=0)
    return folder / "checkpoint.npz"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "nanogan", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=120)


# ---------------------------------------------------------------------------- sample
def test_sample_subprocess(checkpoint, tmp_path):
    out, png = tmp_path / "s.npy", tmp_path / "g.png"
    res = run_cli("sample", str(checkpoint), "--n", "50", "--out", str(out), "--png", str(png),
                  "--seed", "3")
    assert res.returncode == 0, res.stderr
    assert str(out) in res.stdout and str(png) in res.stdout
    x = np.load(out, allow_pickle=False)
    assert x.dtype == np.float32 and x.shape == (50, 1, 28, 28)
    assert np.isfinite(x).all() and x.min() >= -1.0 and x.max() <= 1.0
    assert x.std() > 0.01  # not a constant picture
    assert png.read_bytes()[:8] == PNG_MAGIC
    # the same samples as the generator of the loaded checkpoint on seeded noise
    gan = load_training_checkpoint(checkpoint)["gan"]
    z = gan.sample_noise(50, np.random.default_rng(3))
    expect = gan.G(z, train=False).reshape(50, 1, 28, 28)
    np.testing.assert_array_equal(x, expect)


def test_sample_is_seeded(checkpoint, tmp_path):
    def draw(seed: int, name: str) -> np.ndarray:
        path = tmp_path / name
        assert main(["sample", str(checkpoint), "--n", "50", "--out", str(path),
                     "--seed", str(seed)]) == 0
        return np.load(path)

    a, b, c = draw(3, "a.npy"), draw(3, "b.npy"), draw(4, "c.npy")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not list(tmp_path.glob("*.tmp"))


def test_sample_in_chunks_and_png_only(checkpoint, tmp_path, capsys):
    gan = load_training_checkpoint(checkpoint)["gan"]
    big = generate(gan, 1203, seed=5)
    assert big.shape == (1203, 1, 28, 28) and big.dtype == np.float32
    # the first rows use the same noise; only BLAS blocking may differ with the batch size
    np.testing.assert_allclose(big[:7], generate(gan, 7, seed=5), rtol=0, atol=1e-6)
    assert not np.allclose(big[1000:1007], big[:7], atol=1e-3)  # the second chunk is fresh noise
    png = tmp_path / "only.png"
    assert main(["sample", str(checkpoint), "--n", "10", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert list(tmp_path.iterdir()) == [png]
    assert "only.png" in capsys.readouterr().out


def test_sample_default_output(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", str(checkpoint), "--n", "3"]) == 0
    assert np.load(tmp_path / "samples.npy").shape == (3, 1, 28, 28)


def test_sample_missing_checkpoint(tmp_path):
    missing = tmp_path / "nowhere" / "checkpoint.npz"
    res = run_cli("sample", str(missing), "--n", "5", "--out", str(tmp_path / "s.npy"))
    assert res.returncode != 0
    assert str(missing) in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_sample_corrupt_checkpoint(tmp_path, capsys, content):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(content)
    if not content:  # refused by the argument check: exit status 2, argparse style
        with pytest.raises(SystemExit) as exc:
            main(["sample", str(bad), "--n", "5", "--out", str(tmp_path / "s.npy")])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert str(bad) in err and "(0 bytes)" in err
    else:
        assert main(["sample", str(bad), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 1
        err = capsys.readouterr().err
        assert str(bad) in err and "corrupt" in err
    assert not (tmp_path / "s.npy").exists()


def test_sample_bad_n(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(checkpoint), "--n", "0", "--out", str(tmp_path / "s.npy")])
    assert exc.value.code == 2
    assert "argument --n: must be an integer in [1, 1000000], got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sample"])
    assert exc.value.code != 0


# ---------------------------------------------------------------------------- info
def test_info_lists_kernel_sets(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"nanogan {nanogan.__version__}" in out
    assert f"active {nanogan.kernel_backend()}" in out
    assert "reference" in out
    for name in nanogan.available_kernels():
        assert name in out


def test_info_subprocess():
    res = run_cli("info")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("nanogan ") and "kernels:" in res.stdout
    assert "reference" in res.stdout
