"""LayerNorm: gradient checks, PyTorch equivalence, state dicts, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import Conv2d, Dense, LayerNorm, Sequential, gradcheck, rel_error
from nanogan.layers.serialize import module_from_config, module_to_config

FIXTURE_OK = settings(max_examples=20, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def shapes():
    """(input shape, normalized_shape): 1-2 leading dims, 1-3 normalised dims, >= 3 values
    normalised (one value normalises to 0; two to +-1, whose gradient is ~eps, all noise)."""
    return st.tuples(
        st.lists(st.integers(1, 3), min_size=1, max_size=2),
        st.lists(st.integers(1, 4), min_size=1, max_size=3),
    ).filter(lambda t: int(np.prod(t[1])) >= 3).map(lambda t: (tuple(t[0] + t[1]), tuple(t[1])))


def make(normalized_shape, dtype=np.float64, seed=0, **kw) -> LayerNorm:
    """A LayerNorm with non-trivial weight and bias."""
    ln = LayerNorm(normalized_shape, dtype=dtype, **kw)
    g = np.random.default_rng(seed)
    for p in ln.params.values():
        p[...] = g.uniform(0.5, 1.5, p.shape) * g.choice([-1, 1], p.shape)
    return ln


def to_torch(torch, ln: LayerNorm, dtype=np.float64):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    t = torch.nn.LayerNorm(ln.normalized_shape, eps=ln.eps,
                           elementwise_affine=ln.elementwise_affine,
                           bias=ln.bias is not None, dtype=tdt)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in ln.state_dict().items()})
    return t


@given(shapes(), st.sampled_from([(True, True), (True, False), (False, True)]),
       st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_gradcheck(shape_ns, affine_bias, seed):
    shape, ns = shape_ns
    affine, bias = affine_bias
    ln = make(ns, seed=seed, elementwise_affine=affine, bias=bias)
    x = np.random.default_rng(seed).standard_normal(shape) * 3 + 1
    errs = gradcheck(ln, x, rng=seed + 1)  # dy not drawn like x (it would project to ~0)
    assert set(errs) == {"x", *ln.params}
    assert max(errs.values()) < 1e-7, errs


@given(shapes(), st.sampled_from([np.float64, np.float32]),
       st.sampled_from([(True, True), (True, False), (False, True)]), st.integers(0, 2**16))
@FIXTURE_OK
def test_matches_torch(torch, shape_ns, dtype, affine_bias, seed):
    shape, ns = shape_ns
    affine, bias = affine_bias
    ln = make(ns, dtype=dtype, seed=seed, elementwise_affine=affine, bias=bias,
              eps=1e-3 if seed % 2 else 1e-5)
    t = to_torch(torch, ln, dtype)
    g = np.random.default_rng(seed)
    x = (g.standard_normal(shape) * 2 - 0.5).astype(dtype)
    dy = g.standard_normal(shape).astype(dtype)
    y, cache = ln.forward(x)
    dx = ln.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.from_numpy(dy))
    tol = TOL[dtype]
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == dx.shape == shape
    assert rel_error(y, yt.detach().numpy()) < tol
    assert rel_error(dx, xt.grad.numpy()) < tol
    for name, tp in t.named_parameters():
        assert rel_error(ln.grads[name], tp.grad.numpy()) < tol, name


def test_state_dict_matches_torch(torch):
    ours = Sequential(Conv2d(1, 4, 3, dtype=np.float64, rng=0), LayerNorm((4, 6, 6)),
                      LayerNorm(6, bias=False), LayerNorm(6, elementwise_affine=False))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.LayerNorm((4, 6, 6)),
                                 torch.nn.LayerNorm(6, bias=False),
                                 torch.nn.LayerNorm(6, elementwise_affine=False))
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
    assert list(ours.params) == [k for k, _ in theirs.named_parameters()]
    # PyTorch's initial values (ones, zeros) and a load from PyTorch
    assert np.all(sd["1.weight"] == 1) and np.all(sd["1.bias"] == 0)
    for p in theirs.parameters():
        torch.nn.init.normal_(p)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-6)


def test_train_and_eval_agree_and_no_buffers():
    ln = make((3, 2), seed=1)
    x = np.random.default_rng(0).standard_normal((4, 5, 3, 2))
    np.testing.assert_array_equal(ln(x, train=True), ln(x, train=False))
    assert ln.buffers == {}
    y = ln(x)
    assert y.shape == x.shape
    # with unit weight and zero bias every row has mean 0 and (biased) variance 1 - eps/(var+eps)
    plain = LayerNorm((3, 2), dtype=np.float64, eps=0.0)
    rows = plain(x).reshape(-1, 6)
    np.testing.assert_allclose(rows.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(rows.var(axis=1), 1, rtol=1e-12)


def test_float32_stays_float32_and_accepts_float64_input():
    ln = LayerNorm(5)
    y, cache = ln.forward(np.random.default_rng(0).standard_normal((3, 5)))
    assert y.dtype == np.float32
    assert ln.backward(np.ones((3, 5)), cache).dtype == np.float32


def test_config_round_trip():
    for ln in (LayerNorm((4, 7, 7), eps=1e-3), LayerNorm(8, elementwise_affine=False),
               LayerNorm(3, bias=False, dtype=np.float64)):
        again = module_from_config(module_to_config(ln))
        assert type(again) is LayerNorm
        assert again.normalized_shape == ln.normalized_shape and again.eps == ln.eps
        assert list(again.params) == list(ln.params) and again.dtype == ln.dtype


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 3, 5)), r"trailing dimensions \(4, 5\).*got \(2, 3, 5\)"),
    (np.zeros((4, 5)), r"expected shape \(N, \*, 4, 5\).*got \(4, 5\)"),
    (np.zeros((2, 4, 5), dtype=np.int64), r"floating-point"),
])
def test_bad_input_names_layer_and_shapes(x, match):
    with pytest.raises(ValueError, match="LayerNorm") as e:
        LayerNorm((4, 5)).forward(x)
    assert e.match(match)


def test_bad_gradient_shape_and_constructor():
    ln = LayerNorm(4)
    _, cache = ln.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"LayerNorm.*'dy' expected shape \(2, 4\).*\(2, 5\)"):
        ln.backward(np.zeros((2, 5)), cache)
    for bad in (0, (), (3, -1), 2.5):
        with pytest.raises(ValueError, match="normalized_shape"):
            LayerNorm(bad)


def test_dense_then_layernorm_gradcheck():
    """In a Sequential with a Dense before it (the critic's use)."""
    m = Sequential(Dense(3, 6, dtype=np.float64, rng=0), make(6, seed=2))
    errs = gradcheck(m, np.random.default_rng(1).standard_normal((4, 3)))
    assert max(errs.values()) < 1e-7, errs
