"""LeakyReLU, ReLU, Tanh, Sigmoid: PyTorch equivalence, gradient checks, extreme values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import TOL, check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nanogan import LeakyReLU, ReLU, Sigmoid, Tanh, gradcheck

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])

# (nanogan factory, torch factory by name): the same layer on both sides
LAYERS = {
    "LeakyReLU(0.01)": (lambda: LeakyReLU(), lambda nn: nn.LeakyReLU()),
    "LeakyReLU(0.2)": (lambda: LeakyReLU(0.2), lambda nn: nn.LeakyReLU(0.2)),
    "ReLU": (ReLU, lambda nn: nn.ReLU()),
    "Tanh": (Tanh, lambda nn: nn.Tanh()),
    "Sigmoid": (Sigmoid, lambda nn: nn.Sigmoid()),
}


def arrays(dtype, lo: float, hi: float):
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                      elements=st.floats(lo, hi, width=width) | st.sampled_from([0.0, -0.0]))


@FIXTURE_OK
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(data=st.data())
def test_vs_torch(kernel_set, torch, name, dtype, data):
    # Tanh and Sigmoid gradients are computed from y (``1 - y^2``, ``y (1 - y)``) as PyTorch does;
    # once saturated they carry an absolute error of about one ulp of 1, so the relative
    # comparison is made where they are well conditioned (the saturated range is checked below
    # with an absolute tolerance).
    r = 50.0 if "ReLU" in name else 3.0
    x = data.draw(arrays(dtype, -r, r))
    dy = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-2, 2, width=x.itemsize * 8)))
    ours, theirs = LAYERS[name][0](), LAYERS[name][1](torch.nn)
    y, cache = ours.forward(x)
    dx = ours.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == x.shape
    check(f"{name} y", y, yt.detach().numpy(), TOL[dtype])
    check(f"{name} dx", dx, xt.grad.numpy(), TOL[dtype])
    assert ours.params == {} and ours.state_dict() == {}


@FIXTURE_OK
@pytest.mark.parametrize("name", list(LAYERS))
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=st.integers(0, 2**16))
def test_gradcheck(kernel_set, name, shape, seed):
    g = np.random.default_rng(seed)
    x = g.uniform(0.05, 4, shape) * g.choice([-1.0, 1.0], shape)  # away from the kink at 0
    errs = gradcheck(LAYERS[name][0](), x, rng=seed + 1)
    assert errs["x"] < 1e-6, errs


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_values_finite_without_warnings(kernel_set, torch, name, dtype):
    x = np.array([[-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4]], dtype)
    if dtype == np.float64:
        x = np.concatenate([x, [[-1e300, -1e30, 0.0, 1e-300, 1e30, 1e300, 0.5]]])
    layer = LAYERS[name][0]()
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y, cache = layer.forward(x)
        dx = layer.backward(np.ones_like(x), cache)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    xt = torch.tensor(x, requires_grad=True)
    yt = LAYERS[name][1](torch.nn)(xt)
    yt.backward(torch.ones_like(xt))
    # atol: PyTorch flushes sigmoid(-100) to 0 in float32 where nanogan keeps the subnormal
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=TOL[dtype],
                               atol=np.finfo(dtype).tiny)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=TOL[dtype],
                               atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_gradient_absolute_error(torch, name, dtype):
    """Over the whole range the gradient is within a few ulps of 1 of PyTorch's (float64)."""
    x = np.linspace(-40, 40, 801).astype(dtype)
    layer = LAYERS[name][0]()
    _, cache = layer.forward(x)
    dx = layer.backward(np.ones_like(x), cache)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    LAYERS[name][1](torch.nn)(xt).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=TOL[dtype],
                               atol=4 * np.finfo(dtype).eps)


def test_sigmoid_saturates_exactly(kernel_set):
    y = Sigmoid()(np.array([-1e4, 1e4], np.float32))
    assert y[0] == 0.0 and y[1] == 1.0
    y = Sigmoid()(np.array([-30.0, 30.0]))
    assert 0 < y[0] < 1e-12 and 1 - 1e-12 < y[1] <= 1  # the tiny side keeps its precision


def test_relu_gradient_at_zero_is_zero_leaky_is_slope(kernel_set):
    x = np.zeros((1, 3))
    r, lr = ReLU(), LeakyReLU(0.3)
    assert not r.backward(np.ones_like(x), r.forward(x)[1]).any()
    np.testing.assert_array_equal(lr.backward(np.ones_like(x), lr.forward(x)[1]), 0.3)


def test_runs_in_input_dtype_and_keeps_input(kernel_set):
    for layer in (LeakyReLU(0.2), ReLU(), Tanh(), Sigmoid()):
        for dt in (np.float32, np.float64):
            x = np.linspace(-3, 3, 12, dtype=dt).reshape(2, 2, 3)
            x0 = x.copy()
            y, c = layer.forward(x)
            assert y.dtype == dt and y.shape == x.shape
            assert layer.backward(np.ones_like(y), c).dtype == dt
            np.testing.assert_array_equal(x, x0)  # no in-place change of the input


def test_repr_like_torch(torch):
    assert repr(LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(ReLU()) == "ReLU()" and repr(Tanh()) == "Tanh()"
    assert LeakyReLU().negative_slope == torch.nn.LeakyReLU().negative_slope


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("x,fragment", [
    (np.ones((2, 3), np.int64), "int64"),
    (np.ones((2, 3), bool), "bool"),
    (np.array(1.0, np.float32), "()"),
])
def test_bad_input(name, x, fragment):
    layer = LAYERS[name][0]()
    with pytest.raises(ValueError) as exc:
        layer.forward(x)
    assert repr(layer) in str(exc.value) and fragment in str(exc.value)
