"""Dropout: inverted scaling, evaluation identity, reproducible masks, backward with the mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nanogan import Dropout, gradcheck


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
       p=st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_scaling_and_backward_mask(shape, p, dtype, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) + 3).astype(dtype)  # never 0
    d = Dropout(p, rng=seed)
    y, cache = d.forward(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert np.all(np.isfinite(y))
    kept = y != 0
    if p == 1.0:
        assert not kept.any()
    else:
        np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    dy = np.random.default_rng(seed + 1).standard_normal(shape).astype(dtype)
    dx = d.backward(dy, cache)
    assert dx.shape == shape
    # same mask as the forward pass, same scale
    assert not dx[~kept].any()
    if p < 1.0:
        np.testing.assert_allclose(dx[kept], dy[kept] / (1 - p), rtol=1e-6)


def test_backward_uses_the_forward_mask_not_a_new_one():
    d = Dropout(0.5, rng=0)
    x = np.ones((64, 64))
    y1, c1 = d.forward(x)
    y2, c2 = d.forward(x)
    assert not np.array_equal(y1, y2)  # a fresh mask per call
    np.testing.assert_array_equal(d.backward(np.ones_like(x), c1), y1)
    np.testing.assert_array_equal(d.backward(np.ones_like(x), c2), y2)


def test_eval_is_identity():
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    d = Dropout(0.7, rng=0)
    y, cache = d.forward(x, train=False)
    np.testing.assert_array_equal(y, x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(d.backward(dy, cache), dy)
    y0, _ = Dropout(0.0).forward(x)  # p = 0 is the identity in training too
    np.testing.assert_array_equal(y0, x)


def test_reproducible_with_a_seed():
    x = np.ones((10, 20), np.float32)
    a, b = Dropout(0.3, rng=123), Dropout(0.3, rng=123)
    for _ in range(3):
        np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(Dropout(0.3, rng=1)(x), Dropout(0.3, rng=2)(x))
    g = np.random.default_rng(5)
    assert Dropout(0.3, rng=g).rng is g


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fraction_dropped_near_p(p, dtype):
    x = np.ones((400, 500), dtype)
    y = Dropout(p, rng=0)(x)
    frac = float(np.mean(y == 0))
    assert abs(frac - p) < 5e-3  # 200k draws: std ~1.1e-3
    assert abs(float(y.mean()) - 1.0) < 2e-2  # inverted scaling keeps the mean


def test_p_one_gives_zeros_without_warnings():
    x = np.ones((3, 4), np.float32)
    d = Dropout(1.0, rng=0)
    with np.errstate(all="raise"):
        y, c = d.forward(x)
        dx = d.backward(np.ones_like(x), c)
    assert not y.any() and not dx.any()


class _FixedMaskDropout(Dropout):
    """Dropout that draws the same mask on every call, so central differences apply."""

    def forward(self, x, train=True):
        self.rng = np.random.default_rng(0)
        return super().forward(x, train)


@pytest.mark.parametrize("p", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_gradcheck(p, train):
    x = np.random.default_rng(1).standard_normal((3, 5))
    errs = gradcheck(_FixedMaskDropout(p), x, train=train, rng=2)
    assert errs["x"] < 1e-6, errs
    d = Dropout(p, rng=0)
    _, cache = d.forward(x, train)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    expected = dy if cache is None else dy * cache
    np.testing.assert_array_equal(d.backward(dy, cache), expected)


def test_matches_torch_statistics(torch):
    """Same scaling as torch.nn.Dropout: kept values are x / (1 - p)."""
    x = np.full((50, 50), 2.0)
    p = 0.25
    yt = torch.nn.Dropout(p)(torch.from_numpy(x)).numpy()
    y = Dropout(p, rng=0)(x)
    assert set(np.unique(yt)) == set(np.unique(y)) == {0.0, 2.0 / (1 - p)}


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_bad_p(p):
    with pytest.raises(ValueError, match="p"):
        Dropout(p)


@pytest.mark.parametrize("x,fragment", [
    (np.ones((3, 4), np.int64), "int64"),
    (np.array(1.0), "()"),
])
def test_bad_input(x, fragment):
    d = Dropout(0.5)
    with pytest.raises(ValueError) as exc:
        d.forward(x)
    assert repr(d) in str(exc.value) and fragment in str(exc.value)
