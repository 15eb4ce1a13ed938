"""Maxout: PyTorch equivalence (Linear + max over pieces), gradient checks, ties, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st

from nanogan import Maxout, Sequential, gradcheck, rel_error
from nanogan.layers.serialize import module_from_config, module_to_config

dims = st.integers(1, 6)


def torch_maxout(torch, m: Maxout, dtype):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    lin = torch.nn.Linear(m.in_features, m.out_features * m.pieces, bias=m.bias is not None,
                          dtype=tdt)
    lin.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})

    def f(x):
        z = lin(x)
        return z.view(len(x), m.out_features, m.pieces).max(-1).values

    return lin, f


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(n=dims, fin=dims, fout=dims, pieces=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**16), scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_vs_torch(torch, dtype, n, fin, fout, pieces, bias, seed, scale):
    g = np.random.default_rng(seed)
    m = Maxout(fin, fout, pieces, bias=bias, rng=seed, dtype=dtype)
    lin, f = torch_maxout(torch, m, dtype)
    x = (g.standard_normal((n, fin)) * scale).astype(dtype)
    dy = g.standard_normal((n, fout)).astype(dtype)
    y, cache = m.forward(x)
    dx = m.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = f(xt)
    yt.backward(torch.from_numpy(dy))
    tol = TOL[dtype]
    assert y.shape == (n, fout) and y.dtype == dtype and dx.dtype == dtype
    assert rel_error(y, yt.detach().numpy()) < tol
    assert rel_error(dx, xt.grad.numpy()) < tol
    assert rel_error(m.grads["weight"], lin.weight.grad.numpy()) < tol
    if bias:
        assert rel_error(m.grads["bias"], lin.bias.grad.numpy()) < tol
    assert list(m.state_dict()) == list(lin.state_dict())


@given(n=dims, fin=dims, fout=dims, pieces=st.integers(1, 4), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_gradcheck(n, fin, fout, pieces, bias, seed):
    m = Maxout(fin, fout, pieces, bias=bias, rng=seed, dtype=np.float64)
    x = np.random.default_rng(seed + 1).standard_normal((n, fin))
    errs = gradcheck(m, x, rng=seed + 2)
    assert max(errs.values()) < 1e-6, errs


def test_input_grad_false_gives_the_same_param_grads():
    m = Maxout(4, 3, 2, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    y, cache = m.forward(x)
    dy = np.ones_like(y)
    m.backward(dy, cache)
    full = {k: g.copy() for k, g in m.grads.items()}
    m.zero_grad()
    assert m.backward(dy, cache, input_grad=False) is None
    for k, g in m.grads.items():
        np.testing.assert_array_equal(g, full[k])


def test_piece_layout_is_pylearn2s():
    """Unit j owns rows j*pieces .. j*pieces+pieces-1: setting one row's bias high selects it."""
    m = Maxout(2, 3, 4, rng=0, dtype=np.float64)
    m.weight[...] = 0
    m.bias[...] = np.arange(12.0)[::-1]   # piece 0 wins in every unit
    y = m(np.zeros((1, 2)))
    np.testing.assert_array_equal(y, [[11.0, 7.0, 3.0]])


def test_tie_sends_gradient_to_one_piece():
    m = Maxout(3, 2, 3, rng=0, dtype=np.float64)
    m.weight[...] = 1.0
    m.bias[...] = 0.0  # all pieces equal
    x = np.ones((4, 3))
    y, cache = m.forward(x)
    m.backward(np.ones_like(y), cache)
    # each unit's gradient goes to exactly one piece (the first), not split or duplicated
    np.testing.assert_array_equal(m.grads["bias"], [4.0, 0, 0, 4.0, 0, 0])


def test_bad_input_names_layer_and_shapes():
    m = Maxout(5, 2, 3)
    with pytest.raises(ValueError, match=r"Maxout\(.*in_features.*\(3, 4\)"):
        m.forward(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="floating"):
        m.forward(np.zeros((3, 5), np.int64))
    with pytest.raises(ValueError, match="pieces"):
        Maxout(5, 2, 0)


def test_config_round_trip_in_sequential():
    s = Sequential(Maxout(4, 3, 2, rng=0), Maxout(3, 1, 5, bias=False, rng=1))
    s2 = module_from_config(module_to_config(s))
    s2.load_state_dict(s.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(s(x), s2(x))
    assert list(s2.state_dict()) == ["0.weight", "0.bias", "1.weight"]


# ---------------------------------------------------------------- the paper's model and update
def test_simultaneous_step_matches_torch(torch):
    """GAN.simultaneous_step = the 2014 code's update: both gradients from one forward pass,
    applied together (float64, against autograd on the same nets, two steps)."""
    from nanogan import GAN, Dense, ReLU, Sigmoid
    from nanogan.optim import SGD

    f64 = np.float64
    G = Sequential(Dense(4, 6, rng=0, dtype=f64), ReLU(), Dense(6, 5, rng=1, dtype=f64), Sigmoid())
    D = Sequential(Maxout(5, 3, 2, rng=2, dtype=f64), Maxout(3, 2, 3, rng=3, dtype=f64),
                   Dense(2, 1, rng=4, dtype=f64))
    tG = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 5),
                             torch.nn.Sigmoid()).double()
    tD = [torch.nn.Linear(5, 6).double(), torch.nn.Linear(3, 6).double(),
          torch.nn.Linear(2, 1).double()]
    tG.load_state_dict({k: torch.from_numpy(v) for k, v in G.state_dict().items()})
    for i, lin in enumerate(tD):
        lin.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v)
                             for k, v in D.state_dict().items() if k.startswith(f"{i}.")})

    def t_d(x):
        h = tD[0](x).view(len(x), 3, 2).max(-1).values
        h = tD[1](h).view(len(x), 2, 3).max(-1).values
        return tD[2](h)

    gan = GAN(G, D, g_opt=SGD(G, lr=0.1, momentum=0.5), d_opt=SGD(D, lr=0.1, momentum=0.5))
    d_params = [p for lin in tD for p in lin.parameters()]
    t_gopt = torch.optim.SGD(tG.parameters(), lr=0.1, momentum=0.5)
    t_dopt = torch.optim.SGD(d_params, lr=0.1, momentum=0.5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    g = np.random.default_rng(0)
    for _ in range(2):
        x, z = g.random((8, 5)), g.standard_normal((8, 4))
        stats = gan.simultaneous_step(x, z)
        s_real, s_fake = t_d(torch.from_numpy(x)), t_d(tG(torch.from_numpy(z)))
        d_obj = 0.5 * (bce(s_real, torch.ones_like(s_real)) + bce(s_fake, torch.zeros_like(s_fake)))
        g_obj = bce(s_fake, torch.ones_like(s_fake))
        d_grads = torch.autograd.grad(d_obj, d_params, retain_graph=True)
        g_grads = torch.autograd.grad(g_obj, list(tG.parameters()))
        for p, gr in zip(d_params, d_grads):
            p.grad = gr
        for p, gr in zip(tG.parameters(), g_grads):
            p.grad = gr
        t_dopt.step()
        t_gopt.step()
        assert rel_error(stats["d_loss"], d_obj.item()) < 1e-10
        assert rel_error(stats["g_loss"], g_obj.item()) < 1e-10
    for k, v in tG.state_dict().items():
        assert rel_error(G.state_dict()[k], v.numpy()) < 1e-8, k
    flat = [p.detach().numpy() for p in d_params]
    assert all(rel_error(a, b) < 1e-8 for a, b in zip(D.params.values(), flat))
    assert gan.steps == 2


def test_goodfellow2014_example_schedule_and_init():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import goodfellow2014_mnist as ex

    assert ex.schedule(0) == (0.1, 0.5)
    lr, mom = ex.schedule(250 * ex.STEPS_PER_EPOCH)
    assert mom == pytest.approx(0.7) and lr == pytest.approx(0.1 / 1.000004**125000)
    assert ex.schedule(10**8) == (1e-6, 0.7)
    assert ex.schedule(124 * ex.STEPS_PER_EPOCH + 3)[1] == pytest.approx(0.5 + 0.2 * 124 / 249)
    x = np.random.default_rng(0).random((50, 784)).astype(np.float32)
    x[:, 0] = 0  # an always-black pixel: the clipped marginal 1e-5
    G, D = ex.build(x, "yaml", np.random.default_rng(1))
    assert np.abs(G.params["0.weight"]).max() <= 0.05 and np.abs(D.params["1.weight"]).max() <= 5e-3
    assert not G.params["0.bias"].any() and not D.params["1.bias"].any()
    p = 1 / (1 + np.exp(-G.params["4.bias"].astype(np.float64)))
    np.testing.assert_allclose(p[1:], x.mean(0)[1:], rtol=1e-4)
    assert p[0] == pytest.approx(1e-5, rel=1e-3)
    assert [type(m).__name__ for m in D.layers] == ["Dropout", "Maxout", "Dropout", "Maxout",
                                                    "Dropout", "Dense"]
    assert [m.p for m in D.layers[::2]] == [0.2, 0.5, 0.5]
