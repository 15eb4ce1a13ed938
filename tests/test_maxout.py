"""Maxout: PyTorch equivalence (Linear + max over pieces), gradient checks, ties, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanogan import Maxout, Sequential, gradcheck, rel_error
from nanogan.layers.serialize import module_from_config, module_to_config

TOL = {np.float64: 1e-8, np.float32: 1e-4}
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
