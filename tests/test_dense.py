"""Dense: PyTorch equivalence (nn.Linear), gradient checks, initialisation, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import TOL, check
from hypothesis import given
from hypothesis import strategies as st

from nanogan import Dense, gradcheck

dims = st.integers(1, 7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(n=dims, fin=dims, fout=dims, bias=st.booleans(), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_vs_torch_linear(torch, dtype, n, fin, fout, bias, seed, scale):
    g = np.random.default_rng(seed)
    m = Dense(fin, fout, bias=bias, rng=seed, dtype=dtype)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    t = torch.nn.Linear(fin, fout, bias=bias, dtype=tdt)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = (g.standard_normal((n, fin)) * scale).astype(dtype)
    dy = g.standard_normal((n, fout)).astype(dtype)

    y, cache = m.forward(x)
    dx = m.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.from_numpy(dy))
    tol = TOL[dtype]
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == (n, fout)
    check("y", y, yt.detach().numpy(), tol)
    check("dx", dx, xt.grad.numpy(), tol)
    check("dweight", m.grads["weight"], t.weight.grad.numpy(), tol)
    if bias:
        check("dbias", m.grads["bias"], t.bias.grad.numpy(), tol)
    else:
        assert "bias" not in m.params and t.bias is None


@given(n=dims, fin=dims, fout=dims, bias=st.booleans(), seed=st.integers(0, 2**16))
def test_gradcheck(n, fin, fout, bias, seed):
    m = Dense(fin, fout, bias=bias, rng=seed, dtype=np.float64)
    x = np.random.default_rng(seed + 1).standard_normal((n, fin))
    errs = gradcheck(m, x, rng=seed + 2)
    assert set(errs) == ({"x", "weight", "bias"} if bias else {"x", "weight"})
    assert max(errs.values()) < 1e-6, errs


def test_state_dict_and_params_like_torch(torch):
    for bias in (True, False):
        m, t = Dense(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias)
        sd, tsd = m.state_dict(), t.state_dict()
        assert list(sd) == list(tsd)
        assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
        assert list(m.params) == [k for k, _ in t.named_parameters()]
        assert {k: g.shape for k, g in m.grads.items()} == {k: p.shape
                                                           for k, p in m.params.items()}


def test_init_pytorch_default_bounds_and_seed():
    m = Dense(50, 40, rng=0)
    b = 1 / math.sqrt(50)
    assert m.weight.dtype == np.float32 and m.weight.shape == (40, 50)
    assert np.abs(m.weight).max() <= b and np.abs(m.bias).max() <= b
    assert np.abs(m.weight).max() > 0.9 * b  # spread over the whole interval
    np.testing.assert_array_equal(m.weight, Dense(50, 40, rng=0).weight)
    assert not np.array_equal(m.weight, Dense(50, 40, rng=1).weight)


def test_grads_accumulate_and_param_grads_false():
    g = np.random.default_rng(0)
    m = Dense(3, 2, rng=0, dtype=np.float64)
    x1, x2 = g.standard_normal((4, 3)), g.standard_normal((5, 3))
    d1, d2 = g.standard_normal((4, 2)), g.standard_normal((5, 2))
    _, c1 = m.forward(x1)
    _, c2 = m.forward(x2)
    m.backward(d1, c1)
    m.backward(d2, c2)
    np.testing.assert_allclose(m.grads["weight"], d1.T @ x1 + d2.T @ x2, rtol=1e-12)
    np.testing.assert_allclose(m.grads["bias"], d1.sum(0) + d2.sum(0), rtol=1e-12)
    m.zero_grad()
    dx = m.backward(d1, c1, param_grads=False)
    np.testing.assert_allclose(dx, d1 @ m.weight, rtol=1e-12)
    assert not m.grads["weight"].any() and not m.grads["bias"].any()


def test_float32_input_to_float64_layer():
    m = Dense(3, 2, rng=0, dtype=np.float64)
    y, _ = m.forward(np.ones((2, 3), np.float32))
    assert y.dtype == np.float64


@pytest.mark.parametrize("x,fragment", [
    (np.ones((4, 3), np.int32), "int32"),
    (np.ones((4, 3), complex), "complex"),
    (np.ones((3,), np.float32), "(3,)"),
    (np.ones((4, 3, 1), np.float32), "(4, 3, 1)"),
    (np.ones((4, 5), np.float32), "(4, 5)"),
])
def test_bad_input(x, fragment):
    m = Dense(3, 2)
    with pytest.raises(ValueError) as exc:
        m.forward(x)
    msg = str(exc.value)
    assert repr(m) in msg and fragment in msg and "'x'" in msg
