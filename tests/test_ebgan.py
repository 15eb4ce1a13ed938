"""EBGAN: margin loss, generator loss, pull-away term and the autoencoder energy, against central
differences and PyTorch autograd (float64)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanogan.ebgan import (
    AutoencoderEnergy,
    ebgan_g_loss,
    margin_d_loss,
    pull_away,
    reconstruction_energy,
)
from nanogan.gradcheck import numerical_gradient, rel_error
from nanogan.layers import Dense, LeakyReLU, Sequential, Tanh


def torch_pull_away(torch, s, eps=1e-12):
    n = s.shape[0]
    u = s / torch.sqrt((s * s).sum(1, keepdim=True) + eps)
    c = u @ u.T
    return ((c * c).sum() - (c.diagonal() ** 2).sum()) / (n * (n - 1))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 9), m=st.integers(1, 9), margin=st.sampled_from([0.1, 1.0, 10.0]),
       seed=st.integers(0, 2**16))
def test_margin_and_generator_losses_match_pytorch(torch, n, m, margin, seed):
    rng = np.random.default_rng(seed)
    er, ef = rng.uniform(0, 2, n), rng.uniform(0, 2 * margin, m)
    value, d_real, d_fake = margin_d_loss(er, ef, margin)
    tr, tf = torch.tensor(er, requires_grad=True), torch.tensor(ef, requires_grad=True)
    ref = tr.mean() + torch.relu(margin - tf).mean()
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(d_real, tr.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(d_fake, tf.grad.numpy(), rtol=1e-12)
    gv, gd = ebgan_g_loss(ef)
    tf.grad = None
    tf.mean().backward()
    assert gv == pytest.approx(ef.mean(), rel=1e-12)
    np.testing.assert_allclose(gd, tf.grad.numpy(), rtol=1e-12)


def test_margin_loss_central_differences(rng):
    er, ef = rng.uniform(0, 2, 5), np.array([0.2, 0.7, 1.4, 3.0, 0.05])  # none on the kink
    f_real = numerical_gradient(lambda: margin_d_loss(er, ef, 1.0)[0], er)
    f_fake = numerical_gradient(lambda: margin_d_loss(er, ef, 1.0)[0], ef)
    _, d_real, d_fake = margin_d_loss(er, ef, 1.0)
    assert rel_error(d_real, f_real) < 1e-8 and rel_error(d_fake, f_fake) < 1e-8
    assert d_fake[3] == 0  # past the margin: no gradient


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 8), c=st.integers(1, 6), scale=st.sampled_from([1e-3, 1.0, 1e3]),
       seed=st.integers(0, 2**16))
def test_pull_away_matches_pytorch_and_central_differences(torch, n, c, scale, seed):
    rng = np.random.default_rng(seed)
    s = scale * rng.standard_normal((n, c))
    value, ds = pull_away(s)
    ts = torch.tensor(s, requires_grad=True)
    ref = torch_pull_away(torch, ts)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-9, abs=1e-14)
    assert rel_error(ds, ts.grad.numpy()) < 1e-8 or np.abs(ds - ts.grad.numpy()).max() < 1e-12
    h = 1e-6 * scale
    num = numerical_gradient(lambda: pull_away(s)[0], s, h=h)
    assert rel_error(ds, num) < 1e-5 or np.abs(ds - num).max() < 1e-8 / scale


def test_pull_away_extremes():
    same = np.tile([[1.0, 2.0, 3.0]], (4, 1))
    value, ds = pull_away(same)
    assert value == pytest.approx(1.0) and np.abs(ds).max() < 1e-12  # a maximum: no gradient
    value, _ = pull_away(np.eye(4))
    assert value == 0.0  # orthogonal codes: nothing to pull away
    value, ds = pull_away(np.zeros((3, 2)))
    assert np.isfinite(value) and np.all(np.isfinite(ds))
    _v32, d32 = pull_away(np.ones((3, 2), np.float32))
    assert d32.dtype == np.float32


def make_energy(rng, d=6, code=3, dtype=np.float64):
    enc = Sequential(Dense(d, 5, rng=rng, dtype=dtype), LeakyReLU(0.2),
                     Dense(5, code, rng=rng, dtype=dtype))
    dec = Sequential(Dense(code, 5, rng=rng, dtype=dtype), LeakyReLU(0.2),
                     Dense(5, d, rng=rng, dtype=dtype), Tanh())
    return AutoencoderEnergy(enc, dec)


def test_reconstruction_energy_matches_pytorch(torch, rng):
    x, r = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    e, g = reconstruction_energy(x, r)
    tr = torch.tensor(r, requires_grad=True)
    te = ((tr - torch.tensor(x)) ** 2).flatten(1).mean(1)
    te.sum().backward()
    np.testing.assert_allclose(e, te.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, tr.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("with_codes", [False, True])
def test_autoencoder_energy_central_differences(rng, with_codes):
    D = make_energy(rng)
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal(4)
    dc = rng.standard_normal((4, 3)) if with_codes else None

    def f():
        e, cache = D.forward(x)
        out = float(np.sum(e * dy))
        return out + (float(np.sum(D.codes(cache) * dc)) if with_codes else 0.0)

    _e, cache = D.forward(x)
    D.zero_grad()
    dx = D.backward(dy, cache, d_codes=dc)
    assert rel_error(dx, numerical_gradient(f, x)) < 1e-7
    for name, p in D.params.items():
        assert rel_error(D.grads[name], numerical_gradient(f, p)) < 1e-7, name


def test_autoencoder_energy_matches_pytorch_with_pull_away(torch, rng):
    """The whole EBGAN generator-side objective: mean energy + 0.1 f_PT(codes), input and
    parameter gradients against autograd."""
    D = make_energy(rng)
    x = rng.standard_normal((5, 6))
    nn = torch.nn
    enc = nn.Sequential(nn.Linear(6, 5), nn.LeakyReLU(0.2), nn.Linear(5, 3)).double()
    dec = nn.Sequential(nn.Linear(3, 5), nn.LeakyReLU(0.2), nn.Linear(5, 6), nn.Tanh()).double()
    tD = nn.ModuleDict({"encoder": enc, "decoder": dec})
    tD.load_state_dict({k: torch.tensor(v) for k, v in D.state_dict().items()})
    tx = torch.tensor(x, requires_grad=True)
    s = enc(tx)
    te = ((dec(s) - tx) ** 2).mean(1)
    (te.mean() + 0.1 * torch_pull_away(torch, s)).backward()

    e, cache = D.forward(x)
    _value, de = ebgan_g_loss(e)
    _pt, dpt = pull_away(D.codes(cache))
    D.zero_grad()
    dx = D.backward(de, cache, d_codes=0.1 * dpt)
    np.testing.assert_allclose(e, te.detach().numpy(), rtol=1e-10)
    assert rel_error(dx, tx.grad.numpy()) < 1e-10
    tgrads = dict(tD.named_parameters())
    for name, g in D.grads.items():
        assert rel_error(g, tgrads[name].grad.numpy()) < 1e-10, name
    D.zero_grad()
    assert D.backward(de, cache, input_grad=False) is None
    D2 = make_energy(np.random.default_rng(0))
    D2.load_state_dict(D.state_dict())
    _, c2 = D2.forward(x)
    D2.backward(de, c2, input_grad=False)
    D.zero_grad()
    D.backward(de, cache)
    for name, g in D2.grads.items():  # skipping dL/dx leaves the parameter gradients as they are
        np.testing.assert_allclose(g, D.grads[name], rtol=1e-12)


def test_bad_inputs_are_named(rng):
    with pytest.raises(ValueError, match="margin must be positive"):
        margin_d_loss(np.ones(2), np.ones(2), 0.0)
    with pytest.raises(ValueError, match="'e_fake' expected shape"):
        margin_d_loss(np.ones(2), np.ones((2, 1)), 1.0)
    with pytest.raises(ValueError, match="'s' expected"):
        pull_away(np.ones((1, 3)))
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_energy(np.ones((2, 3)), np.ones((2, 4)))
    D = make_energy(rng)
    _e, cache = D.forward(rng.standard_normal((3, 6)))
    with pytest.raises(ValueError, match="'dy' expected shape"):
        D.backward(np.ones((3, 1)), cache)
