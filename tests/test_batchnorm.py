"""BatchNorm1d / BatchNorm2d: gradient checks, PyTorch equivalence, running statistics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL, check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import BatchNorm1d, BatchNorm2d, gradcheck

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])


def shape_1d():
    """(N, C) or (N, C, L) with at least 4 values per channel (so dL/dx is not ~0)."""
    return st.tuples(st.integers(1, 5), st.integers(1, 4), st.sampled_from([0, 1, 2, 3])).map(
        lambda t: (max(t[0], 4), t[1]) if t[2] == 0 else (t[0], t[1], t[2])
    ).filter(lambda s: s[0] * (s[2] if len(s) == 3 else 1) >= 4)


def shape_2d():
    return st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                     st.integers(1, 3)).filter(lambda s: s[0] * s[2] * s[3] >= 4)


def make(cls, C: int, dtype, seed: int, **kw):
    """A layer with non-trivial weight, bias and running statistics."""
    bn = cls(C, dtype=dtype, **kw)
    g = np.random.default_rng(seed)
    if bn.affine:
        bn.weight[...] = g.uniform(0.5, 1.5, C)
        bn.bias[...] = g.standard_normal(C)
    bn.running_mean[...] = g.standard_normal(C)
    bn.running_var[...] = g.uniform(0.5, 2.0, C)
    return bn


def to_torch(torch, bn, dtype):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    cls = torch.nn.BatchNorm1d if isinstance(bn, BatchNorm1d) else torch.nn.BatchNorm2d
    t = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine, dtype=tdt)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in bn.state_dict().items()})
    return t


def compare_step(torch, bn, t, x, dy, dtype, train=True):
    """One forward/backward on both; compare y, dx, dweight, dbias."""
    tol = TOL[dtype]
    bn.zero_grad()
    t.zero_grad()
    t.train(train)
    y, cache = bn.forward(x, train)
    dx = bn.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.from_numpy(dy))
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == x.shape
    check("y", y, yt.detach().numpy(), tol)
    check("dx", dx, xt.grad.numpy(), tol)
    if bn.affine:
        check("dweight", bn.grads["weight"], t.weight.grad.numpy(), tol)
        check("dbias", bn.grads["bias"], t.bias.grad.numpy(), tol)


def compare_buffers(torch, bn, t, dtype):
    tol = TOL[dtype]
    ts = t.state_dict()
    check("running_mean", bn.running_mean, ts["running_mean"].numpy(), tol)
    check("running_var", bn.running_var, ts["running_var"].numpy(), tol)
    assert int(bn.num_batches_tracked) == int(ts["num_batches_tracked"])


# ---------------------------------------------------------------------------- gradient checks
@FIXTURE_OK
@given(shape=shape_1d(), seed=st.integers(0, 2**16), train=st.booleans(),
       affine=st.booleans())
def test_gradcheck_1d(kernel_set, shape, seed, train, affine):
    bn = make(BatchNorm1d, shape[1], np.float64, seed, affine=affine)
    x = np.random.default_rng(seed + 1).standard_normal(shape) * 2 + 0.5
    errs = gradcheck(bn, x, train=train, rng=seed + 2)
    assert set(errs) == ({"x", "weight", "bias"} if affine else {"x"})
    assert max(errs.values()) < 1e-6, errs


@FIXTURE_OK
@given(shape=shape_2d(), seed=st.integers(0, 2**16), train=st.booleans())
def test_gradcheck_2d(kernel_set, shape, seed, train):
    bn = make(BatchNorm2d, shape[1], np.float64, seed)
    x = np.random.default_rng(seed + 1).standard_normal(shape) * 3 - 1
    errs = gradcheck(bn, x, train=train, rng=seed + 2)
    assert max(errs.values()) < 1e-6, errs


# ---------------------------------------------------------------------------- vs PyTorch
@FIXTURE_OK
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=shape_1d(), seed=st.integers(0, 2**16), scale=st.sampled_from([1e-2, 1.0, 1e3]))
def test_vs_torch_1d(kernel_set, torch, dtype, shape, seed, scale):
    g = np.random.default_rng(seed)
    bn = make(BatchNorm1d, shape[1], dtype, seed)
    t = to_torch(torch, bn, dtype)
    for train in (True, False):
        x = ((g.standard_normal(shape) + 0.3) * scale).astype(dtype)
        dy = g.standard_normal(shape).astype(dtype)
        compare_step(torch, bn, t, x, dy, dtype, train)
        compare_buffers(torch, bn, t, dtype)


@FIXTURE_OK
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=shape_2d(), seed=st.integers(0, 2**16))
def test_vs_torch_2d(kernel_set, torch, dtype, shape, seed):
    g = np.random.default_rng(seed)
    bn = make(BatchNorm2d, shape[1], dtype, seed)
    t = to_torch(torch, bn, dtype)
    for train in (True, False):
        x = (g.standard_normal(shape) * 2 - 1).astype(dtype)
        dy = g.standard_normal(shape).astype(dtype)
        compare_step(torch, bn, t, x, dy, dtype, train)
        compare_buffers(torch, bn, t, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,shape", [(BatchNorm1d, (6, 3)), (BatchNorm1d, (4, 3, 5)),
                                       (BatchNorm2d, (3, 3, 4, 2))])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("affine", [True, False])
def test_running_stats_1_and_3_steps(kernel_set, torch, dtype, cls, shape, momentum, affine):
    """Buffers after one and after three training steps, then eval outputs, as PyTorch."""
    g = np.random.default_rng(7)
    bn = cls(shape[1], momentum=momentum, affine=affine, dtype=dtype)
    t = to_torch(torch, bn, dtype)
    for step in range(1, 4):
        x = (g.standard_normal(shape) * (step + 1) + step).astype(dtype)
        dy = g.standard_normal(shape).astype(dtype)
        compare_step(torch, bn, t, x, dy, dtype, train=True)
        if step in (1, 3):
            compare_buffers(torch, bn, t, dtype)
    assert int(bn.num_batches_tracked) == 3
    x = g.standard_normal(shape).astype(dtype)
    compare_step(torch, bn, t, x, g.standard_normal(shape).astype(dtype), dtype, train=False)
    compare_buffers(torch, bn, t, dtype)  # eval leaves the buffers alone


def test_momentum_none_is_cumulative_average(kernel_set):
    g = np.random.default_rng(3)
    bn = BatchNorm1d(2, momentum=None, dtype=np.float64)
    xs = [g.standard_normal((5, 2)) for _ in range(4)]
    for x in xs:
        bn.forward(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(0) for x in xs], axis=0),
                               rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, np.mean([x.var(0, ddof=1) for x in xs], axis=0),
                               rtol=1e-12)


def test_affine_false_has_no_params(torch):
    bn = BatchNorm2d(3, affine=False)
    assert bn.params == {} and bn.grads == {}
    assert list(bn.state_dict()) == list(torch.nn.BatchNorm2d(3, affine=False).state_dict())


# ---------------------------------------------------------------------------- contract
@pytest.mark.parametrize("affine", [True, False])
def test_state_dict_matches_torch(torch, affine):
    for bn, t in [(BatchNorm1d(5, affine=affine), torch.nn.BatchNorm1d(5, affine=affine)),
                  (BatchNorm2d(4, affine=affine), torch.nn.BatchNorm2d(4, affine=affine))]:
        sd, tsd = bn.state_dict(), t.state_dict()
        assert list(sd) == list(tsd)
        for k in sd:
            assert sd[k].shape == tuple(tsd[k].shape), k
            np.testing.assert_array_equal(sd[k], tsd[k].numpy())
        assert sd["num_batches_tracked"].dtype == np.int64
        assert sd["num_batches_tracked"].ndim == 0


def test_defaults_and_dtypes():
    bn = BatchNorm2d(3)
    assert bn.weight.dtype == np.float32 and bn.running_var.dtype == np.float32
    np.testing.assert_array_equal(bn.weight, 1)
    np.testing.assert_array_equal(bn.bias, 0)
    np.testing.assert_array_equal(bn.running_mean, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    assert (bn.eps, bn.momentum, bn.affine) == (1e-5, 0.1, True)
    bn64 = BatchNorm1d(2, dtype=np.float64)
    y, _ = bn64.forward(np.ones((3, 2), np.float32) * np.arange(3)[:, None])
    assert y.dtype == np.float64
    with pytest.raises(ValueError):
        BatchNorm1d(2, dtype=np.int32)


def test_arrays_updated_in_place(kernel_set):
    bn = BatchNorm1d(3, dtype=np.float64)
    before = {**bn.params, **bn.buffers}
    grads = bn.grads
    x = np.random.default_rng(0).standard_normal((4, 3))
    y, c = bn.forward(x)
    bn.backward(np.ones_like(y), c)
    after = {**bn.params, **bn.buffers}
    assert all(before[k] is after[k] for k in before)
    assert all(grads[k] is bn.grads[k] for k in grads)
    assert int(bn.num_batches_tracked) == 1


def test_grads_accumulate_and_param_grads_false(kernel_set):
    g = np.random.default_rng(1)
    bn = make(BatchNorm2d, 2, np.float64, 0)
    x1, x2 = g.standard_normal((2, 2, 3, 3)), g.standard_normal((2, 2, 3, 3))
    d1, d2 = g.standard_normal(x1.shape), g.standard_normal(x2.shape)
    _, c1 = bn.forward(x1)
    _, c2 = bn.forward(x2)  # the two caches are independent
    dx2 = bn.backward(d2, c2)
    gw2 = bn.grads["weight"].copy()
    dx1 = bn.backward(d1, c1)
    bn2 = make(BatchNorm2d, 2, np.float64, 0)
    _, c = bn2.forward(x1)
    np.testing.assert_allclose(dx1, bn2.backward(d1, c), rtol=1e-12)
    np.testing.assert_allclose(bn.grads["weight"], gw2 + bn2.grads["weight"], rtol=1e-12)
    bn.zero_grad()
    assert np.array_equal(bn.backward(d2, c2, param_grads=False), dx2)
    assert not bn.grads["weight"].any() and not bn.grads["bias"].any()


def test_eval_does_not_touch_buffers(kernel_set):
    bn = make(BatchNorm1d, 3, np.float64, 0)
    state = bn.state_dict()
    bn.forward(np.random.default_rng(0).standard_normal((5, 3)), train=False)
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


def test_single_value_per_channel_raises(torch):
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        bn.forward(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError):  # PyTorch raises too
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))
    with pytest.raises(ValueError, match="BatchNorm2d"):
        BatchNorm2d(2).forward(np.ones((1, 2, 1, 1), np.float32))
    # but eval with a single sample is fine, and (1, C, L) with L > 1 trains
    assert bn.forward(np.ones((1, 3), np.float32), train=False)[0].shape == (1, 3)
    assert bn.forward(np.ones((1, 3, 2), np.float32))[0].shape == (1, 3, 2)
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize("layer,x,fragment", [
    (BatchNorm1d(3), np.ones((4, 3), np.int64), "int64"),
    (BatchNorm1d(3), np.ones((4, 3), bool), "bool"),
    (BatchNorm1d(3), np.ones((4,), np.float32), "(4,)"),
    (BatchNorm1d(3), np.ones((4, 3, 2, 2), np.float32), "(4, 3, 2, 2)"),
    (BatchNorm1d(3), np.ones((4, 5), np.float32), "(4, 5)"),
    (BatchNorm1d(3), np.ones((4, 2, 7), np.float32), "(4, 2, 7)"),
    (BatchNorm2d(3), np.ones((4, 3, 2, 2), np.int32), "int32"),
    (BatchNorm2d(3), np.ones((4, 3, 2), np.float32), "(4, 3, 2)"),
    (BatchNorm2d(3), np.ones((4, 2, 5, 5), np.float32), "(4, 2, 5, 5)"),
])
def test_bad_input(layer, x, fragment):
    with pytest.raises(ValueError) as exc:
        layer.forward(x)
    msg = str(exc.value)
    assert repr(layer) in msg and fragment in msg and "'x'" in msg
