"""GAN theory you can run: toy data, Proposition 1 / Theorem 1 on a grid, the strict teacher,
instance noise and discriminator ensembles, and the two toy examples in quick mode."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanogan import gradcheck, losses, rel_error, theory, toy
from nanogan.gan import GAN
from nanogan.gradcheck import numerical_gradient
from nanogan.layers import Dense, LeakyReLU, Sequential, Tanh
from nanogan.optim import Adam
from nanogan.remedies import (
    DiscriminatorEnsemble,
    InstanceNoise,
    increasing_capacity_ensemble,
    linear_anneal,
    noisy_loss_profile,
)

ROOT = Path(__file__).resolve().parents[1]
GRID = np.linspace(-20.0, 25.0, 18001)
F64 = np.float64


def _examples():
    sys.path.insert(0, str(ROOT / "examples"))
    import toy_1d

    return toy_1d


# ------------------------------------------------------------------------------ toy data
def test_ring_samples_and_metrics_on_the_data():
    x, k = toy.sample_ring(2500, 0, return_modes=True)
    assert x.shape == (2500, 2) and x.dtype == np.float32 and k.shape == (2500,)
    c = toy.ring_centers()
    assert c.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), toy.RING_RADIUS)
    np.testing.assert_allclose(np.linalg.norm(x - c[k], axis=1).mean(),
                               toy.RING_STD * math.sqrt(math.pi / 2), rtol=0.05)  # Rayleigh
    m = toy.ring_metrics(x)
    assert m.modes_covered == 8 and m.high_quality > 0.98  # 3 std in 2-D holds 98.9 %
    assert m.counts.sum() == round(m.high_quality * 2500) and m.min_count == 32


def test_ring_metrics_collapse_stray_samples_and_far_points():
    c = toy.ring_centers()
    rng = np.random.default_rng(0)
    collapsed = c[3] + 0.02 * rng.standard_normal((1000, 2))
    m = toy.ring_metrics(collapsed)
    assert m.modes_covered == 1 and m.counts[3] == m.counts.sum()
    # a handful of stray samples on another mode does not count as covering it
    x = np.concatenate([collapsed, c[[5] * 5]])
    assert toy.ring_metrics(x).modes_covered == 1
    assert toy.ring_metrics(x, min_count=1).modes_covered == 2
    # samples at the centre, or 4 std away from every mode, are not high quality
    far = c[0] + np.array([4 * toy.RING_STD, 0.0])
    m = toy.ring_metrics(np.array([[0.0, 0.0], far, [np.nan, 0.0]]))
    assert m.high_quality == 0.0 and m.modes_covered == 0
    with pytest.raises(ValueError, match=r"expected shape \(n, 2\)"):
        toy.ring_metrics(np.zeros((5, 3)))


def test_normal_data_and_pdf():
    x = toy.sample_normal_1d(20000, 2.0, 1.5, 0, np.float64)
    assert x.shape == (20000, 1)
    assert abs(x.mean() - 2.0) < 0.05 and abs(x.std() - 1.5) < 0.05
    assert theory.trapezoid(toy.normal_pdf(GRID, 2.0, 1.5), GRID) == pytest.approx(1.0, abs=1e-9)
    assert next(toy.normal_batches(7, rng=0)).shape == (7, 1)
    with pytest.raises(ValueError, match="sigma"):
        toy.normal_pdf(0.0, 0.0, 0.0)


def test_shift_gradcheck_and_torch(torch):
    G = toy.Shift(3, 0.5, dtype=F64)
    z = np.random.default_rng(0).standard_normal((5, 3))
    assert max(gradcheck(G, z).values()) < 1e-8
    dy = np.random.default_rng(1).standard_normal((5, 3))
    G.zero_grad()
    y, c = G.forward(z)
    dz = G.backward(dy, c)
    tz = torch.tensor(z, requires_grad=True)
    tm = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    ty = tz + tm
    (ty * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(G.grads["shift"], tm.grad.numpy(), rtol=1e-12)
    assert G.backward(dy, c, input_grad=False) is None
    with pytest.raises(ValueError, match="Shift"):
        G.forward(np.zeros((2, 4)))


# ------------------------------------------------------------------------------ theory on a grid
@pytest.mark.parametrize("m", [-4.0, -1.0, 0.0, 1.5, 2.0, 3.0, 8.0])
def test_theorem1_identity(m):
    """C(G) = V(D*, G) = -log 4 + 2 JSD, on the grid and by Monte Carlo off it."""
    mu = 2.0
    p, q = toy.normal_pdf(GRID, mu), toy.normal_pdf(GRID, m)
    c, j = theory.virtual_criterion(p, q, GRID), theory.jsd(p, q, GRID)
    assert 0.0 <= j <= math.log(2) + 1e-12
    assert c == pytest.approx(-theory.LOG4 + 2 * j, abs=1e-9)
    logit_d_star = -0.5 * (GRID - mu) ** 2 + 0.5 * (GRID - m) ** 2  # log p_data / p_g
    assert theory.value_logits(logit_d_star, p, q, GRID) == pytest.approx(c, abs=1e-9)
    rng = np.random.default_rng(0)
    xr, xf = rng.normal(mu, 1, 200_000), rng.normal(m, 1, 200_000)
    lr_r = -0.5 * (xr - mu) ** 2 + 0.5 * (xr - m) ** 2
    lr_f = -0.5 * (xf - mu) ** 2 + 0.5 * (xf - m) ** 2
    c_mc = np.mean(-np.logaddexp(0, -lr_r)) + np.mean(-np.logaddexp(0, lr_f))
    assert c_mc == pytest.approx(c, abs=0.01)


def test_jsd_zero_at_the_optimum_and_c_minimum():
    p = toy.normal_pdf(GRID, 2.0)
    assert theory.jsd(p, p, GRID) == pytest.approx(0.0, abs=1e-12)
    assert theory.virtual_criterion(p, p, GRID) == pytest.approx(-theory.LOG4, abs=1e-9)
    cs = {m: theory.virtual_criterion(p, toy.normal_pdf(GRID, m), GRID)
          for m in np.linspace(-2, 6, 33)}
    assert min(cs, key=cs.get) == pytest.approx(2.0)
    # far apart: JSD -> log 2, C -> 0
    assert theory.jsd(p, toy.normal_pdf(GRID, 20.0), GRID) == pytest.approx(math.log(2), abs=1e-6)
    # symmetric, and a known closed form: two disjoint uniforms
    x = np.linspace(0, 4, 4001)
    u1, u2 = (x < 1).astype(float), ((x > 2) & (x < 3)).astype(float)
    assert theory.jsd(u1, u2, x) == pytest.approx(math.log(2), abs=1e-3)
    q = toy.normal_pdf(GRID, -1.0, 2.0)
    assert theory.jsd(p, q, GRID) == pytest.approx(theory.jsd(q, p, GRID), abs=1e-12)


@settings(max_examples=20)
@given(st.floats(-3, 3), st.floats(-2, 2), st.floats(-0.5, 0.5))
def test_d_star_maximises_the_value(m, a, b):
    """Proposition 1: no other discriminator has a higher V(D, G)."""
    p, q = toy.normal_pdf(GRID, 0.0), toy.normal_pdf(GRID, m)
    c = theory.virtual_criterion(p, q, GRID)
    s = -0.5 * GRID ** 2 + 0.5 * (GRID - m) ** 2  # logit of D* = log p_data / p_g
    other = s + a * np.tanh(GRID) + b  # a perturbed discriminator
    assert theory.value_logits(other, p, q, GRID) <= c + 1e-9
    np.testing.assert_allclose(theory.value_logits(s, p, q, GRID), c, atol=1e-9)


def test_theory_inputs_and_histogram():
    p = toy.normal_pdf(GRID, 0.0)
    np.testing.assert_allclose(theory.optimal_discriminator([1.0, 0.0, 0.0], [1.0, 2.0, 0.0]),
                               [0.5, 0.0, 0.5])
    assert theory.kl(p, p, GRID) == pytest.approx(0.0, abs=1e-12)
    half = np.full(GRID.shape, 0.5)  # the undecided D: V = -log 4 for any G
    assert theory.value(half, p, toy.normal_pdf(GRID, 3.0), GRID) == pytest.approx(-theory.LOG4)
    assert theory.value_logits(0 * GRID, p, p, GRID) == pytest.approx(-theory.LOG4)
    assert theory.kl(p, toy.normal_pdf(GRID, 1.0), GRID) == pytest.approx(0.5, abs=1e-9)
    assert theory.kl(np.array([1.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])) == math.inf
    h = theory.histogram_density(np.random.default_rng(0).standard_normal(400_000), GRID[::20])
    assert theory.trapezoid(h, GRID[::20]) == pytest.approx(1.0, abs=1e-3)
    assert theory.jsd(h, p[::20], GRID[::20]) < 1e-3
    with pytest.raises(ValueError, match="increasing"):
        theory.jsd(p, p, GRID[::-1])
    with pytest.raises(ValueError, match="'q'"):
        theory.jsd(p, p[:-1], GRID)
    with pytest.raises(ValueError, match="non-negative"):
        theory.jsd(p, -p, GRID)


# ------------------------------------------------------------------------------ trained D (short)
@pytest.mark.slow
def test_proposition1_trained_d_approaches_d_star():
    """A discriminator trained on a fixed G(z) = z + m approaches D* (short training run)."""
    ex = _examples()
    rng = np.random.default_rng(0)
    mu, m = 2.0, 0.5
    D = ex.mlp(16, 2, rng)
    ex.train_discriminator(D, ex.normal_sampler(mu, rng), ex.normal_sampler(m, rng), 600,
                           lr=5e-3)
    p, q = toy.normal_pdf(ex.GRID, mu), toy.normal_pdf(ex.GRID, m)
    r = ex.proposition1(D, p, q)
    assert r["max_dev"] < 0.06, r["max_dev"]
    assert r["V_trained"] <= r["C"] + 0.005 and r["V_trained"] > r["C"] - 0.01


@pytest.mark.slow
def test_strict_teacher_minimax_gradient_vanishes():
    """Far-apart distributions and a strong D: |dL_G/dm| of the minimax loss collapses by orders
    of magnitude, the non-saturating one does not (short training run)."""
    ex = _examples()
    rng = np.random.default_rng(0)
    mu, m = 2.0, -4.0
    D = ex.mlp(32, 2, rng)
    z = rng.standard_normal((2048, 1))
    before = ex.shift_grad(D, m, "minimax", z), ex.shift_grad(D, m, "nonsaturating", z)
    ex.train_discriminator(D, ex.normal_sampler(mu, rng), ex.normal_sampler(m, rng), 400,
                           lr=5e-3)
    mm, ns = ex.shift_grad(D, m, "minimax", z), ex.shift_grad(D, m, "nonsaturating", z)
    # the ratio minimax / non-saturating is about mean D(G(z)): near 1/2 at the start
    assert mm < 1e-2 * ns, (mm, ns, before)
    assert mm / ns < 0.02 * before[0] / before[1], (mm, ns, before)
    assert ns > 10 * before[1]  # the non-saturating teacher speaks louder as D improves


# ------------------------------------------------------------------------------ remedies
def test_linear_anneal_and_instance_noise_schedule():
    assert linear_anneal(0, 2.0, 0.0, 100) == 2.0
    assert linear_anneal(50, 2.0, 0.0, 100) == pytest.approx(1.0)
    assert linear_anneal(500, 2.0, 0.5, 100) == 0.5
    assert linear_anneal(3, 2.0, 0.5, 0) == 0.5
    w = InstanceNoise(Sequential(Dense(2, 1, dtype=F64, rng=0)), 1.0, 0.0, 10, rng=0)
    w.set_step(5)
    assert w.sigma == pytest.approx(0.5)
    assert list(w.params) == ["module.0.weight", "module.0.bias"]
    with pytest.raises(ValueError, match="InstanceNoise"):
        InstanceNoise(Dense(2, 1), sigma=-1.0)


def test_instance_noise_statistics_and_eval_mode():
    ident = Dense(3, 3, bias=False, dtype=F64, rng=0)
    ident.params["weight"][...] = np.eye(3)
    w = InstanceNoise(ident, sigma=0.7, sigma_end=0.7, rng=1)
    x = np.ones((20000, 3))
    y = w(x, train=True)
    assert abs((y - x).mean()) < 0.02 and (y - x).std() == pytest.approx(0.7, rel=0.02)
    np.testing.assert_array_equal(w(x, train=False), x)  # no noise outside training


def test_instance_noise_gradcheck_and_torch(torch):
    """dL/dx passes through the additive noise; parameter gradients are D's at x + sigma eps."""
    D = Sequential(Dense(2, 4, dtype=F64, rng=0), Tanh(), Dense(4, 1, dtype=F64, rng=1))
    w = InstanceNoise(D, sigma=0.3, sigma_end=0.3, rng=0)
    x = np.random.default_rng(2).standard_normal((5, 2))
    dy = np.random.default_rng(3).standard_normal((5, 1))

    def loss() -> float:
        w.rng = np.random.default_rng(7)  # the same noise at every evaluation
        return float(np.sum(w.forward(x)[0] * dy))

    w.rng = np.random.default_rng(7)
    w.zero_grad()
    y, c = w.forward(x)
    dx = w.backward(dy, c)
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-8
    for k, p in w.params.items():
        assert rel_error(w.grads[k], numerical_gradient(loss, p)) < 1e-8, k
    # PyTorch: the same network at the same noisy input
    eps = 0.3 * np.random.default_rng(7).standard_normal(x.shape)
    tx = torch.tensor(x, requires_grad=True)
    lin1, lin2 = torch.nn.Linear(2, 4).double(), torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        for lin, src in ((lin1, D[0]), (lin2, D[2])):
            lin.weight.copy_(torch.tensor(src.params["weight"]))
            lin.bias.copy_(torch.tensor(src.params["bias"]))
    ty = lin2(torch.tanh(lin1(tx + torch.tensor(eps))))
    (ty * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(w.grads["module.0.weight"], lin1.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(w.grads["module.2.bias"], lin2.bias.grad.numpy(), rtol=1e-10)


def _ensemble(rng=0):
    rng = np.random.default_rng(rng)
    return DiscriminatorEnsemble(
        Sequential(Dense(2, 1, dtype=F64, rng=rng)),
        Sequential(Dense(2, 3, dtype=F64, rng=rng), Tanh(), Dense(3, 1, dtype=F64, rng=rng)),
        Dense(2, 1, dtype=F64, rng=rng),
    )


def test_ensemble_gradcheck():
    ens = _ensemble()
    x = np.random.default_rng(1).standard_normal((4, 2))
    errs = gradcheck(ens, x)
    assert max(errs.values()) < 1e-7, errs
    assert set(errs) == {"x", "0.0.weight", "0.0.bias", "1.0.weight", "1.0.bias", "1.2.weight",
                         "1.2.bias", "2.weight", "2.bias"}
    y, c = ens.forward(x)
    assert y.shape == (4, 3)
    assert ens.backward(np.ones((4, 3)), c, input_grad=False) is None
    with pytest.raises(ValueError, match=r"expected shape \(N, 3\)"):
        ens.backward(np.ones((4, 2)), c)
    with pytest.raises(ValueError, match="at least one member"):
        DiscriminatorEnsemble()


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"])
def test_ensemble_loss_is_the_mean_of_members_losses(name, torch):
    """Every loss of the (N, M) ensemble logits = the mean over members of each member's loss,
    and the gradients match PyTorch's autograd of that mean."""
    ens = _ensemble()
    loss = losses.get(name)
    rng = np.random.default_rng(4)
    xr, xf = rng.standard_normal((6, 2)), rng.standard_normal((5, 2))
    ens.zero_grad()
    sr, cr = ens.forward(xr)
    sf, cf = ens.forward(xf)
    value, dr, df = loss.d_loss(sr, sf)
    dxr = ens.backward(dr, cr)
    ens.backward(df, cf)
    members = [m.d_loss(sr[:, i:i + 1], sf[:, i:i + 1])[0]
               for i, m in enumerate([loss] * len(ens))]
    assert value == pytest.approx(np.mean(members), rel=1e-12)
    # PyTorch: rebuild the members and differentiate the mean of their losses
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in ens.params.items()}

    def member(i, t):
        P = lambda k: tparams[k]  # noqa: E731
        if i == 0:
            return t @ P("0.0.weight").T + P("0.0.bias")
        if i == 1:
            h = torch.tanh(t @ P("1.0.weight").T + P("1.0.bias"))
            return h @ P("1.2.weight").T + P("1.2.bias")
        return t @ P("2.weight").T + P("2.bias")

    F = torch.nn.functional

    def torch_d_loss(r, f):
        if name in ("minimax", "nonsaturating"):
            return F.softplus(-r).mean() + F.softplus(f).mean()
        if name == "wasserstein":
            return f.mean() - r.mean()
        if name == "lsgan":
            return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean()
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()

    txr = torch.tensor(xr, requires_grad=True)
    txf = torch.tensor(xf)
    total = sum(torch_d_loss(member(i, txr), member(i, txf)) for i in range(3)) / 3
    total.backward()
    assert value == pytest.approx(total.item(), rel=1e-10)
    np.testing.assert_allclose(dxr, txr.grad.numpy(), rtol=1e-9, atol=1e-14)
    for k, g in ens.grads.items():
        np.testing.assert_allclose(g, tparams[k].grad.numpy(), rtol=1e-9, atol=1e-14, err_msg=k)


def test_ensemble_and_noise_train_inside_gan():
    """Both remedies work as GAN's discriminator: Algorithm 1 runs, every member learns."""
    rng = np.random.default_rng(0)
    G = Sequential(Dense(4, 8, rng=rng), LeakyReLU(0.2), Dense(8, 2, rng=rng))
    ens = increasing_capacity_ensemble(2, (0, 4, 8), rng=rng)
    D = InstanceNoise(ens, sigma=0.5, anneal_steps=3, rng=rng)
    gan = GAN(G, D, "nonsaturating", d_opt=Adam(D, lr=1e-2))
    before = {k: v.copy() for k, v in D.params.items()}
    batches = toy.ring_batches(16, rng)
    for _ in range(3):
        D.set_step(gan.steps)
        stats = gan.step(batches, rng)
    assert np.isfinite(stats["d_loss"]) and np.isfinite(stats["g_loss"]) and gan.steps == 3
    assert D.sigma == pytest.approx(0.5 / 3)  # set to step 2 before the last update
    D.set_step(3)
    assert D.sigma == 0.0
    for k, v in D.params.items():
        assert not np.array_equal(v, before[k]), k
    assert len(ens) == 3 and ens(np.zeros((5, 2), np.float32)).shape == (5, 3)


@pytest.mark.slow
def test_noisy_loss_profile_measures_distance():
    """log 4 for p_g = p_data at every noise level; below it, and at the bound log 4 - 2 JSD,
    when the fake is shifted; the score falls with the shift."""
    rng = np.random.default_rng(0)
    sigmas = [2.0, 1.0, 0.0]
    real = toy.sample_normal_1d(3000, 0.0, 1.0, rng, F64)
    same = noisy_loss_profile(real, toy.sample_normal_1d(3000, 0.0, 1.0, rng, F64), sigmas,
                              steps=150, rng=1)
    np.testing.assert_allclose(same, theory.LOG4, atol=0.01)
    prof = noisy_loss_profile(real, toy.sample_normal_1d(3000, 2.0, 1.0, rng, F64), sigmas,
                              steps=150, rng=1)
    assert np.all(np.diff(prof) < 0)  # less noise: easier to tell apart
    bound = [theory.LOG4 - 2 * theory.jsd(toy.normal_pdf(GRID, 0, math.hypot(1, s)),
                                          toy.normal_pdf(GRID, 2, math.hypot(1, s)), GRID)
             for s in sigmas]
    np.testing.assert_allclose(prof, bound, atol=0.03)
    with pytest.raises(ValueError, match="noisy_loss_profile"):
        noisy_loss_profile(np.zeros((4, 2)), np.zeros((4, 3)))


# ------------------------------------------------------------------------------ examples, quick
def _run_example(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_toy_1d_example_quick(tmp_path):
    res = _run_example("toy_1d.py", "--quick", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    for name in ("prop1.png", "theorem1.png", "strict_teacher.png", "mlp_gan.png",
                 "loss_profile.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    out = json.loads((tmp_path / "results.json").read_text())
    for r in out["theorem1"]:
        assert r["abs_diff"] < 1e-9 and r["C"] >= -theory.LOG4 - 1e-9
    assert out["prop1"]["shift"]["max_dev"] < 0.5
    assert {"minimax+plain", "nonsaturating+plain"} <= set(out["strict_teacher_gan"])
    assert "| m |" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_ring_2d_example_quick(tmp_path):
    res = _run_example("ring_2d.py", "--quick", "--losses", "nonsaturating", "wasserstein",
                       "--remedies", "none", "noise", "ensemble", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    for name in ("overview.png", "curves.png", "nonsaturating_none.png",
                 "wasserstein_ensemble.png", "ring_table.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    out = json.loads((tmp_path / "results.json").read_text())
    assert set(out["results"]) == {f"{loss}/{rem}" for loss in ("nonsaturating", "wasserstein")
                                   for rem in ("none", "noise", "ensemble")}
    run = out["results"]["nonsaturating/none"][0]
    assert 0 <= run["modes_covered"] <= 8 and run["history"]["step"][-1] == 60
    table = (tmp_path / "ring_table.md").read_text()
    assert "| nonsaturating |" in table and "| wasserstein |" in table
