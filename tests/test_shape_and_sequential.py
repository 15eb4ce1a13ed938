"""Flatten, Reshape and Sequential: shapes, backward, PyTorch's key naming, gradient checks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL, check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nanogan import (
    BatchNorm1d,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    gradcheck,
)

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])


# ---------------------------------------------------------------------------- Flatten / Reshape
@given(shape=hnp.array_shapes(min_dims=2, max_dims=5, min_side=1, max_side=4),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_flatten_shapes_and_backward(torch, shape, dtype):
    x = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    f = Flatten()
    y, cache = f.forward(x)
    assert y.shape == tuple(torch.nn.Flatten()(torch.from_numpy(x)).shape)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.ravel(), x.ravel())
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    dx = f.backward(dy, cache)
    assert dx.shape == shape
    np.testing.assert_array_equal(dx.ravel(), dy.ravel())


@given(n=st.integers(1, 3), target=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
       data=st.data())
def test_reshape_shapes_and_backward(n, target, data):
    size = int(np.prod(target))
    # any input shape with the same number of values per sample
    src = data.draw(st.sampled_from([(size,), (1, size), (size, 1), (1, 1, size)]))
    x = np.random.default_rng(0).standard_normal((n, *src))
    r = Reshape(*target)
    y, cache = r.forward(x)
    assert y.shape == (n, *target)
    np.testing.assert_array_equal(y.ravel(), x.ravel())
    dx = r.backward(y * 2, cache)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx, 2 * x)
    assert Reshape(list(target)).shape == tuple(target)


def test_reshape_noise_to_image():
    z = np.ones((5, 100), np.float32)
    assert Reshape(100, 1, 1)(z).shape == (5, 100, 1, 1)
    assert repr(Reshape(100, 1, 1)) == "Reshape(100, 1, 1)"


def test_reshape_wrong_size_raises():
    r = Reshape(2, 3)
    with pytest.raises(ValueError) as exc:
        r.forward(np.ones((4, 7), np.float32))
    msg = str(exc.value)
    assert repr(r) in msg and "(4, 7)" in msg and "6" in msg


@pytest.mark.parametrize("layer", [Flatten(), Reshape(3)])
@pytest.mark.parametrize("x,fragment", [
    (np.ones((2, 3), np.int64), "int64"),
    (np.array(1.0), "()"),
])
def test_shape_layers_bad_input(layer, x, fragment):
    with pytest.raises(ValueError) as exc:
        layer.forward(x)
    assert repr(layer) in str(exc.value) and fragment in str(exc.value)


# ---------------------------------------------------------------------------- Sequential
def mlp(dtype=np.float64, rng=0):
    return Sequential(Dense(4, 5, rng=rng, dtype=dtype), BatchNorm1d(5, dtype=dtype),
                      LeakyReLU(0.2), Dense(5, 3, rng=rng + 1, dtype=dtype), Tanh())


def torch_mlp(torch, dtype=None):
    nn = torch.nn
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.LeakyReLU(0.2), nn.Linear(5, 3),
                         nn.Tanh()).to(dtype or torch.float64)


def test_sequential_keys_like_torch(torch):
    m, t = mlp(), torch_mlp(torch)
    assert list(m.params) == [k for k, _ in t.named_parameters()]
    assert list(m.grads) == list(m.params)
    assert list(m.buffers) == [k for k, _ in t.named_buffers()]
    sd, tsd = m.state_dict(), t.state_dict()
    assert list(sd) == list(tsd)
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
    assert "0.weight" in sd and "1.running_mean" in sd and "1.num_batches_tracked" in sd
    assert m.num_params() == sum(p.numel() for p in t.parameters())
    assert len(m) == 5 and isinstance(m[1], BatchNorm1d)


def test_sequential_nested_keys_like_torch(torch):
    nn = torch.nn
    m = Sequential(Sequential(Dense(2, 3), BatchNorm1d(3)), ReLU(), Dense(3, 1))
    t = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), nn.ReLU(),
                      nn.Linear(3, 1))
    assert list(m.state_dict()) == list(t.state_dict())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("train", [True, False])
def test_sequential_vs_torch(kernel_set, torch, dtype, train):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    m, t = mlp(dtype), torch_mlp(torch, tdt)
    g = np.random.default_rng(4)
    m[1].running_mean[...] = g.standard_normal(5)
    m[1].running_var[...] = g.uniform(0.5, 2, 5)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    t.train(train)
    x = g.standard_normal((6, 4)).astype(dtype)
    dy = g.standard_normal((6, 3)).astype(dtype)
    y, cache = m.forward(x, train)
    dx = m.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.from_numpy(dy))
    tol = TOL[dtype]
    check("y", y, yt.detach().numpy(), tol)
    check("dx", dx, xt.grad.numpy(), tol)
    tp = dict(t.named_parameters())
    for k, grad in m.grads.items():
        if train and k == "0.bias":  # a bias before BatchNorm has zero gradient (up to round-off)
            assert np.abs(grad).max() < 100 * tol * np.abs(m.grads["0.weight"]).max()
            continue
        check(f"d{k}", grad, tp[k].grad.numpy(), tol)
    tsd = t.state_dict()
    for k, v in m.buffers.items():
        check(k, v, tsd[k].numpy(), tol)


@FIXTURE_OK
@given(n=st.integers(3, 6), seed=st.integers(0, 2**16), train=st.booleans())
def test_sequential_gradcheck(kernel_set, n, seed, train):
    # no bias before BatchNorm: its gradient is 0 in training, round-off against round-off
    m = Sequential(Dense(3, 4, bias=False, rng=seed, dtype=np.float64),
                   BatchNorm1d(4, dtype=np.float64),
                   LeakyReLU(0.2), Dense(4, 6, rng=seed + 1, dtype=np.float64),
                   Reshape(2, 3), Sigmoid(), Flatten(), Dense(6, 2, rng=seed + 2,
                                                              dtype=np.float64))
    x = np.random.default_rng(seed + 3).standard_normal((n, 3))
    errs = gradcheck(m, x, train=train, rng=seed + 4)
    assert set(errs) == {"x", *m.params}
    assert max(errs.values()) < 1e-6, errs


def test_sequential_caches_independent_and_grads_accumulate(kernel_set):
    g = np.random.default_rng(0)
    m = mlp()
    xa, xb = g.standard_normal((4, 4)), g.standard_normal((5, 4))
    da, db = g.standard_normal((4, 3)), g.standard_normal((5, 3))
    _, ca = m.forward(xa)
    _, cb = m.forward(xb)  # the second call must not spoil the first cache
    dxb = m.backward(db, cb)
    gb = {k: v.copy() for k, v in m.grads.items()}
    dxa = m.backward(da, ca)
    ref = mlp()
    _, c = ref.forward(xa)
    np.testing.assert_allclose(dxa, ref.backward(da, c), rtol=1e-12)
    for k, v in m.grads.items():
        np.testing.assert_allclose(v, gb[k] + ref.grads[k], rtol=1e-10, atol=1e-14)
    m.zero_grad()
    assert not any(v.any() for v in m.grads.values())
    np.testing.assert_allclose(m.backward(db, cb, param_grads=False), dxb, rtol=1e-12)
    assert not any(v.any() for v in m.grads.values())


def test_sequential_eval_uses_running_stats_and_dropout_off(kernel_set):
    m = Sequential(Dense(3, 3, rng=0), BatchNorm1d(3), Dropout(0.5, rng=0))
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    y1, y2 = m(x, train=False), m(x, train=False)
    np.testing.assert_array_equal(y1, y2)
    assert int(m[1].num_batches_tracked) == 0


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError):
        Sequential(Dense(2, 2), lambda x: x)


def test_sequential_bad_input_names_the_layer():
    m = mlp(np.float32)
    with pytest.raises(ValueError) as exc:
        m.forward(np.ones((2, 7), np.float32))
    assert repr(m[0]) in str(exc.value) and "(2, 7)" in str(exc.value)


# ---------------------------------------------------------------------------- fusion, input_grad
def _conv_net(dtype, slope, seed=0):
    from nanogan import BatchNorm2d, Conv2d, ConvTranspose2d

    act = ReLU() if slope == 0 else LeakyReLU(slope)
    return Sequential(
        Conv2d(2, 3, 3, 2, 1, rng=seed, dtype=dtype), act,
        Conv2d(3, 4, 3, 1, 1, bias=False, rng=seed + 1, dtype=dtype),
        BatchNorm2d(4, dtype=dtype), LeakyReLU(slope),
        ConvTranspose2d(4, 2, 4, 2, 1, rng=seed + 2, dtype=dtype), Flatten(),
        Dense(2 * 6 * 6, 5, rng=seed + 3, dtype=dtype), LeakyReLU(slope),
        Dense(5, 1, rng=seed + 4, dtype=dtype))


@FIXTURE_OK
@given(dtype=st.sampled_from([np.float32, np.float64]), slope=st.sampled_from([0.0, 0.2]),
       train=st.booleans(), seed=st.integers(0, 2**16))
def test_fused_pairs_equal_the_layers_alone(kernel_set, dtype, slope, train, seed):
    """Dense/Conv2d (with bias) and BatchNorm fused with the (Leaky)ReLU after them give the
    unfused layers' outputs, input gradients, parameter gradients and running statistics."""
    from nanogan.fast import Plan

    fused, alone = Plan(_conv_net(dtype, slope, seed)), _conv_net(dtype, slope, seed)
    g = np.random.default_rng(seed)
    x = g.standard_normal((3, 2, 6, 6)).astype(dtype)
    dy = g.standard_normal((3, 1)).astype(dtype)
    y1, c1 = fused.forward(x, train)
    y2, c2 = alone.forward(x, train)
    assert len(c1) == len(c2) - 3  # three activations ran fused
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y1, y2, rtol=rtol, atol=rtol * np.abs(y2).max())
    dx1, dx2 = fused.backward(dy, c1), alone.backward(dy, c2)
    np.testing.assert_allclose(dx1, dx2, rtol=rtol, atol=rtol * np.abs(dx2).max())
    for k, v in alone.grads.items():
        np.testing.assert_allclose(fused.grads[k], v, rtol=rtol, atol=rtol * np.abs(v).max())
    for k, v in alone.buffers.items():
        np.testing.assert_allclose(fused.buffers[k], v, rtol=rtol)


@FIXTURE_OK
@given(seed=st.integers(0, 2**16), slope=st.sampled_from([0.0, 0.2]), train=st.booleans())
def test_fused_network_gradcheck(kernel_set, seed, slope, train):
    from nanogan.fast import Plan

    m = Plan(_conv_net(np.float64, slope, seed))
    x = np.random.default_rng(seed + 5).standard_normal((2, 2, 6, 6))
    errs = gradcheck(m, x, train=train, rng=seed + 6)
    assert set(errs) == {"x", *m.params}
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("lead", [False, True])
@pytest.mark.parametrize("fuse", [True, False])
def test_input_grad_false_returns_none_with_the_same_param_grads(kernel_set, lead, fuse):
    """``backward(..., input_grad=False)`` skips dL/dx (returns None) and the layers before the
    first one with parameters; the parameter gradients equal the full backward's."""
    layers = [Reshape(72), Reshape(2, 6, 6)] if lead else []
    nets = []
    for _ in range(2):
        net = Sequential(*layers, *_conv_net(np.float64, 0.2, 1).layers) if lead \
            else _conv_net(np.float64, 0.2, 1)
        if fuse:
            from nanogan.fast import Plan

            net = Plan(net)
        nets.append(net)
    x = np.random.default_rng(2).standard_normal((3, 72) if lead else (3, 2, 6, 6))
    dy = np.random.default_rng(3).standard_normal((3, 1))
    full, skip = nets
    _, c = full.forward(x)
    assert full.backward(dy, c).shape == x.shape
    _, c = skip.forward(x)
    assert skip.backward(dy, c, input_grad=False) is None
    for k, v in full.grads.items():
        np.testing.assert_array_equal(skip.grads[k], v)
    assert skip.backward(dy, c, param_grads=False, input_grad=False) is None


def test_every_layer_accepts_input_grad_false(kernel_set):
    from nanogan import BatchNorm2d, Conv2d, ConvTranspose2d

    g = np.random.default_rng(4)
    cases = [(Dense(3, 2, dtype=np.float64), (4, 3)),
             (Conv2d(2, 3, 3, 2, 1, dtype=np.float64), (2, 2, 5, 5)),
             (Conv2d(2, 3, 5, dtype=np.float64), (2, 2, 5, 5)),
             (ConvTranspose2d(2, 3, 4, 2, 1, dtype=np.float64), (2, 2, 3, 3)),
             (ConvTranspose2d(2, 3, 3, dtype=np.float64), (2, 2, 1, 1)),
             (BatchNorm2d(2, dtype=np.float64), (3, 2, 2, 2)), (LeakyReLU(0.2), (3, 4)),
             (ReLU(), (3, 4)), (Tanh(), (3, 4)), (Sigmoid(), (3, 4)), (Flatten(), (3, 2, 2)),
             (Reshape(4), (3, 2, 2))]
    for layer, shape in cases:
        for train in (True, False):
            x = g.standard_normal(shape)
            y, c = layer.forward(x, train)
            dy = g.standard_normal(y.shape)
            layer.zero_grad()
            dx = layer.backward(dy, c)
            assert dx.shape == x.shape
            full = {k: v.copy() for k, v in layer.grads.items()}
            layer.zero_grad()
            assert layer.backward(dy, c, input_grad=False) is None, layer
            for k, v in full.items():
                np.testing.assert_array_equal(layer.grads[k], v)
