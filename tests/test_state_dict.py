"""state_dict / load_state_dict: round trips with PyTorch, error messages, array identity."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL, check

from nanogan import BatchNorm1d, BatchNorm2d, Dense, LeakyReLU, Sequential


def ours(dtype=np.float32, rng=0):
    return Sequential(Dense(6, 5, rng=rng, dtype=dtype), BatchNorm1d(5, dtype=dtype),
                      LeakyReLU(0.2), Dense(5, 3, rng=rng + 1, dtype=dtype))


def theirs(torch, dtype=np.float32):
    nn = torch.nn
    torch.manual_seed(0)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.LeakyReLU(0.2),
                         nn.Linear(5, 3)).to(tdt)


def to_numpy(t):
    return {k: v.detach().numpy() for k, v in t.state_dict().items()}


def outputs_equal(m, t, torch, x, dtype, train):
    t.train(train)
    with torch.no_grad():
        yt = t(torch.from_numpy(x)).numpy()
    check("y", m(x, train), yt, TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_to_nanogan(kernel_set, torch, dtype):
    g = np.random.default_rng(0)
    t = theirs(torch, dtype)
    t.train()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for _ in range(3):
            t(torch.from_numpy((g.standard_normal((8, 6)) * 2 + 1).astype(dtype)))
        t[1].weight.uniform_(0.5, 1.5)
        t[1].bias.normal_()
    m = ours(dtype, rng=42)
    m.load_state_dict(to_numpy(t))
    assert int(m[1].num_batches_tracked) == 3
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, to_numpy(t)[k])
    x = g.standard_normal((7, 6)).astype(dtype)
    outputs_equal(m, t, torch, x, dtype, train=False)
    outputs_equal(m, t, torch, x, dtype, train=True)  # also advances both running stats
    for k, v in m.buffers.items():
        check(k, v, to_numpy(t)[k], TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nanogan_to_torch(kernel_set, torch, dtype):
    g = np.random.default_rng(1)
    m = ours(dtype, rng=3)
    for _ in range(2):
        m((g.standard_normal((8, 6)) - 1).astype(dtype))
    m[1].weight[...] = g.uniform(0.5, 1.5, 5)
    t = theirs(torch, dtype)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    assert int(t[1].num_batches_tracked) == 2
    x = g.standard_normal((5, 6)).astype(dtype)
    outputs_equal(m, t, torch, x, dtype, train=False)
    outputs_equal(m, t, torch, x, dtype, train=True)


def test_keys_order_and_shapes_equal_torch(torch):
    sd, tsd = ours().state_dict(), theirs(torch).state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        assert sd[k].shape == tuple(tsd[k].shape), k
        assert sd[k].dtype == tsd[k].numpy().dtype, k


def test_round_trip_nanogan():
    a, b = ours(rng=0), ours(rng=10)
    a(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)


def test_state_dict_returns_copies():
    m = ours()
    sd = m.state_dict()
    sd["0.weight"][...] = 123
    sd["1.num_batches_tracked"][...] = 9
    assert not np.any(m.params["0.weight"] == 123)
    assert int(m[1].num_batches_tracked) == 0


def test_load_keeps_array_identity():
    """Optimizers hold the arrays: loading must write into them, never rebind them."""
    m = ours()
    params, grads, buffers = m.params, m.grads, m.buffers
    src = ours(rng=7)
    src(np.ones((3, 6), np.float32) * np.arange(3)[:, None])
    m.load_state_dict(src.state_dict())
    for k in params:
        assert m.params[k] is params[k], k
        assert m.grads[k] is grads[k], k
        np.testing.assert_array_equal(m.params[k], src.params[k])
    for k in buffers:
        assert m.buffers[k] is buffers[k], k
    assert m[0].weight is params["0.weight"] and m[1].running_var is buffers["1.running_var"]
    assert int(m[1].num_batches_tracked) == 1


def test_load_converts_dtype_in_place():
    m = ours(np.float32)
    w = m.params["0.weight"]
    m.load_state_dict(ours(np.float64, rng=5).state_dict())
    assert m.params["0.weight"] is w and w.dtype == np.float32
    np.testing.assert_allclose(w, ours(np.float64, rng=5).params["0.weight"], rtol=1e-6)


def test_missing_key_raises_naming_it():
    m = ours()
    sd = m.state_dict()
    del sd["1.running_var"]
    with pytest.raises(ValueError, match=r"missing.*1\.running_var"):
        m.load_state_dict(sd)


def test_unexpected_key_raises_naming_it():
    m = ours()
    sd = m.state_dict()
    sd["4.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"unexpected.*4\.weight"):
        m.load_state_dict(sd)


@pytest.mark.parametrize("key,shape", [("0.weight", (6, 5)), ("3.bias", (4,)),
                                       ("1.num_batches_tracked", (1,))])
def test_misshapen_key_raises_naming_it(key, shape):
    m = ours()
    sd = m.state_dict()
    sd[key] = np.zeros(shape, sd[key].dtype)
    with pytest.raises(ValueError) as exc:
        m.load_state_dict(sd)
    msg = str(exc.value)
    assert repr(key) in msg and str(shape[0]) in msg


def test_non_strict_load_ignores_missing_and_unexpected():
    m = ours()
    sd = {"0.bias": np.full(5, 2.0, np.float32), "extra": np.zeros(1)}
    m.load_state_dict(sd, strict=False)
    np.testing.assert_array_equal(m.params["0.bias"], 2.0)


def test_batchnorm2d_loads_torch(torch):
    t = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        t(torch.randn(4, 3, 2, 2) * 3 + 1)
    bn = BatchNorm2d(3)
    bn.load_state_dict(to_numpy(t))
    t.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    with torch.no_grad():
        check("y", bn(x, train=False), t(torch.from_numpy(x)).numpy(), 1e-4)
