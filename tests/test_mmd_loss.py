"""MMD^2 training loss: value and gradient against central differences, PyTorch and the metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanogan.gradcheck import numerical_gradient, rel_error
from nanogan.metrics.mmd import mmd2_unbiased
from nanogan.mmd_loss import MMDLoss, mixture_kernel, mmd2_loss

SIGMAS = (0.5, 1.0, 3.0)


def torch_mmd2(torch, x, y, sigmas):
    """Unbiased MMD^2 written with torch ops; autograd gives d/dx."""
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in sigmas)

    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)) - 2 * kxy.mean())


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 7), n=st.integers(2, 7), d=st.integers(1, 5),
       scale=st.sampled_from([0.1, 1.0, 4.0]), seed=st.integers(0, 2**16))
def test_gradient_matches_central_differences(m, n, d, scale, seed):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((m, d))
    y = scale * rng.standard_normal((n, d)) + 0.3
    _value, dx = mmd2_loss(x, y, SIGMAS)
    num = numerical_gradient(lambda: mmd2_loss(x, y, SIGMAS)[0], x)
    assert dx.shape == x.shape and dx.dtype == np.float64
    assert rel_error(dx, num) < 1e-6 or np.abs(dx - num).max() < 1e-9


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 8), n=st.integers(2, 8), d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_matches_pytorch(torch, m, n, d, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((m, d)), rng.standard_normal((n, d)) * 1.5
    value, dx = mmd2_loss(x, y, SIGMAS)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch_mmd2(torch, tx, torch.tensor(y), SIGMAS)
    ref.backward()
    assert abs(value - ref.item()) <= 1e-10 * max(1.0, abs(ref.item()))
    assert rel_error(dx, tx.grad.numpy()) < 1e-9


def test_single_bandwidth_equals_the_metric(rng):
    x, y = rng.standard_normal((9, 4)), rng.standard_normal((6, 4)) + 1
    assert mmd2_loss(x, y, (1.7,))[0] == pytest.approx(mmd2_unbiased(x, y, "rbf", 1.7), rel=1e-12)


def test_kernel_and_weights(rng):
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    K, W = mixture_kernel(a, b, (1.0, 2.0))
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(K, np.exp(-d2 / 2) + np.exp(-d2 / 8), rtol=1e-12)
    np.testing.assert_allclose(W, np.exp(-d2 / 2) + np.exp(-d2 / 8) / 4, rtol=1e-12)


def test_float32_in_float32_out_and_descent_lowers_the_loss(rng):
    """Gradient descent on the samples themselves moves them onto the data."""
    y = rng.standard_normal((64, 2)).astype(np.float32)
    x = (rng.standard_normal((64, 2)) + 2).astype(np.float32)
    loss = MMDLoss((0.5, 1.0, 2.0, 4.0, 8.0))
    before, dx = loss(x, y)
    assert dx.dtype == np.float32
    for _ in range(300):
        _, dx = loss(x, y)
        x -= 5.0 * dx
    after, _ = loss(x, y)
    assert after < 0.05 * before
    assert np.abs(x.mean(axis=0)).max() < 0.5  # from 2 to about 0.25


def test_identical_batches_have_small_value_and_zero_pull(rng):
    y = rng.standard_normal((50, 3))
    value, _ = mmd2_loss(y.copy(), y, SIGMAS)
    assert abs(value) < 0.1  # unbiased: -2 k(y_i, y_i)/(mn) terms make it slightly negative
    assert value < 0


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((1, 2)), np.zeros((3, 2)), "'x' expected shape"),
    (np.zeros((3, 2)), np.zeros((3, 3)), "'y' expected shape"),
    (np.zeros((3, 2), dtype=np.int64), np.zeros((3, 2)), "floating-point"),
])
def test_bad_input_is_named(x, y, match):
    with pytest.raises(ValueError, match=match):
        mmd2_loss(x, y)


@pytest.mark.parametrize("sigmas", [(), (0.0,), (-1.0, 2.0), (float("nan"),)])
def test_bad_bandwidths(sigmas):
    with pytest.raises(ValueError, match="sigmas"):
        MMDLoss(sigmas)
