"""examples/minimal_gan.py, the one-file NumPy GAN, computes exactly nanogan's gradients."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nanogan import GAN, Dense, LeakyReLU, Sequential, Tanh
from nanogan.optim import SGD, Adam

PATH = Path(__file__).resolve().parents[1] / "examples" / "minimal_gan.py"


@pytest.fixture(scope="module")
def mg():
    spec = importlib.util.spec_from_file_location("minimal_gan", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines functions only: training runs under __main__
    return module


def as_nanogan(params, last_tanh):
    """The same MLP as nanogan layers, sharing nothing (weights copied)."""
    layers = []
    for i, (W, b) in enumerate(params):
        d = Dense(W.shape[1], W.shape[0], dtype=W.dtype)
        d.weight[...], d.bias[...] = W, b
        layers.append(d)
        if i < len(params) - 1:
            layers.append(LeakyReLU(0.2))
    return Sequential(*layers, *([Tanh()] if last_tanh else []))


def keyed(grads):
    """[(dW, db), ...] keyed as nanogan's grads (Dense layers at 0, 2, 4, ...)."""
    return {f"{2 * i}.{name}": g for i, pair in enumerate(grads)
            for name, g in zip(("weight", "bias"), pair)}


def test_self_contained_and_short():
    tree = ast.parse(PATH.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"argparse", "gzip", "itertools", "pathlib", "numpy"}, imported
    assert len(PATH.read_text().splitlines()) < 200


@pytest.mark.parametrize("fast", [True, False])
def test_gradients_equal_nanogans(mg, fast):
    rng = np.random.default_rng(0)
    G = mg.init_mlp(rng, [5, 8, 8, 12], dtype=np.float64)
    D = mg.init_mlp(rng, [12, 8, 8, 1], dtype=np.float64)
    x = rng.uniform(-1, 1, (6, 12))
    z1, z2 = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))

    ld, d_grads, s_real, s_fake = mg.d_step_grads(G, D, x, z1)
    lg, g_grads = mg.g_step_grads(G, D, z2)

    nG, nD = as_nanogan(G, True), as_nanogan(D, False)
    gan = GAN(nG, nD, g_opt=SGD(nG, lr=0.0), d_opt=SGD(nD, lr=0.0), fast=fast)
    d_stats = gan.d_step(x, z1)
    g_stats = gan.g_step(z2)
    assert d_stats["d_loss"] == pytest.approx(ld, rel=1e-13)
    assert g_stats["g_loss"] == pytest.approx(lg, rel=1e-13)
    assert d_stats["D_x"] == pytest.approx(mg.sigmoid(s_real).mean(), rel=1e-13)
    assert d_stats["D_G_z"] == pytest.approx(mg.sigmoid(s_fake).mean(), rel=1e-13)
    for ours, theirs in ((keyed(d_grads), nD.grads), (keyed(g_grads), nG.grads)):
        assert set(ours) == set(theirs)
        for k, g in theirs.items():
            np.testing.assert_allclose(ours[k], g, rtol=1e-12, atol=1e-15, err_msg=k)


def test_adam_equals_nanogans(mg):
    rng = np.random.default_rng(1)
    D = mg.init_mlp(rng, [4, 3, 1], dtype=np.float64)
    nD = as_nanogan(D, False)
    ours, theirs = mg.Adam(D, lr=1e-2), Adam(nD, lr=1e-2, betas=(0.5, 0.999))
    for _ in range(3):
        grads = [(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in D]
        ours.step(grads)
        for k, g in keyed(grads).items():
            nD.grads[k][...] = g
        theirs.step()
    for k, p in keyed(D).items():
        np.testing.assert_allclose(p, nD.params[k], rtol=1e-13, err_msg=k)


def test_a_few_training_steps_run(mg, tmp_path):
    """Short run (training marked as such): the loop runs, learns something, writes a grid."""
    X = mg.load_mnist()
    assert X.shape == (60000, 784) and X.dtype == np.float32
    assert X.min() == -1 and X.max() == 1
    mg.main(steps=3, batch=8, hidden=16, out=tmp_path / "grid.pgm")
    assert (tmp_path / "grid.pgm").read_bytes().startswith(b"P5 224 224 255\n")
