"""GAN losses: values and gradients against PyTorch autograd and central differences."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import TOL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nanogan import losses
from nanogan.gradcheck import numerical_gradient, rel_error

NAMES = ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge")
#: (loss, method) pairs whose value is a signed mean of the raw logits: cancellation between
#: summands is legitimate there, so the value is compared relative to the summands' size.
LINEAR = {("wasserstein", "d"), ("wasserstein", "g"), ("hinge", "g")}

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------- PyTorch references
def torch_d(torch, name, sr, sf):
    """PyTorch's discriminator loss on tensors (the formulas of API.md, stable torch ops)."""
    F = torch.nn.functional
    if name in ("minimax", "nonsaturating"):
        # -log sigma(s) = -logsigmoid(s);  -log(1 - sigma(s)) = -logsigmoid(-s)
        return -F.logsigmoid(sr).mean() - F.logsigmoid(-sf).mean()
    if name == "wasserstein":
        return sf.mean() - sr.mean()
    if name == "lsgan":
        return (0.5 * F.mse_loss(sr, torch.ones_like(sr))
                + 0.5 * F.mse_loss(sf, torch.zeros_like(sf)))
    return F.relu(1 - sr).mean() + F.relu(1 + sf).mean()


def torch_g(torch, name, sf):
    """PyTorch's generator loss on a tensor."""
    F = torch.nn.functional
    if name == "minimax":
        return F.logsigmoid(-sf).mean()  # log(1 - sigma(s))
    if name == "nonsaturating":
        return -F.logsigmoid(sf).mean()
    if name == "lsgan":
        return 0.5 * F.mse_loss(sf, torch.ones_like(sf))
    return -sf.mean()


def reference(torch, name, method, real, fake):
    """Value and gradients from torch autograd, in the dtype of the inputs."""
    sf = torch.tensor(fake, requires_grad=True)
    if method == "d":
        sr = torch.tensor(real, requires_grad=True)
        v = torch_d(torch, name, sr, sf)
        v.backward()
        return v.item(), sr.grad.numpy(), sf.grad.numpy()
    v = torch_g(torch, name, sf)
    v.backward()
    return v.item(), sf.grad.numpy()


def ours(name, method, real, fake):
    loss = losses.get(name)
    return loss.d_loss(real, fake) if method == "d" else loss.g_loss(fake)


def assert_matches(name, method, got, ref, real, fake, tol, floor_dtype=None):
    """Value and each gradient within ``tol`` relative error of the reference."""
    scale = abs(ref[0])
    if (name, method) in LINEAR:
        scale += float(np.mean(np.abs(fake), dtype=np.float64))
        if method == "d":
            scale += float(np.mean(np.abs(real), dtype=np.float64))
    # below the smallest normal number of the dtype only a few bits are left (e^-100 in float32
    # is subnormal): differences smaller than that are rounding, not error
    tiny = float(np.finfo(floor_dtype or fake.dtype).tiny)
    assert abs(got[0] - ref[0]) <= tol * scale + tiny, (got[0], ref[0])
    for g, r, x in zip(got[1:], ref[1:], (real, fake)[-(len(got) - 1):]):
        assert g.shape == x.shape and g.dtype == x.dtype
        assert np.all(np.isfinite(g))
        assert rel_error(g, r) < tol or np.max(np.abs(g - r)) <= tiny, (g, r)


def logits(dtype, lo, hi, max_n=8):
    """Hypothesis logits of shape (N,) or (N, 1)."""
    shape = st.tuples(st.integers(1, max_n)) | st.tuples(st.integers(1, max_n), st.just(1))
    width = 32 if dtype == np.float32 else 64
    return arrays(dtype, shape, elements=st.floats(lo, hi, width=width, allow_subnormal=False))


# ---------------------------------------------------------------------------- names
def test_get_every_name(kernel_set):
    assert tuple(losses.LOSSES) == NAMES
    for name in NAMES:
        loss = losses.get(name)
        assert isinstance(loss, losses.LOSSES[name]) and isinstance(loss, losses.GANLoss)
        assert losses.get(loss) is loss
    assert isinstance(losses.get("nonsaturating"), losses.Minimax)  # shares the D loss


@pytest.mark.parametrize("bad", ["bce", "Minimax", "", None, 3])
def test_unknown_name_lists_choices(bad):
    with pytest.raises(ValueError) as exc:
        losses.get(bad)
    for name in NAMES:
        assert name in str(exc.value)


@pytest.mark.parametrize("name", NAMES)
def test_bad_logits_rejected(name):
    loss = losses.get(name)
    with pytest.raises(ValueError, match=r"fake_logits.*floating"):
        loss.g_loss(np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"real_logits.*\(N,\)"):
        loss.d_loss(np.ones(0), np.ones(3))
    with pytest.raises(ValueError, match=type(loss).__name__):
        loss.d_loss(np.ones(3), np.array([True]))


# ---------------------------------------------------------------------------- central differences
@pytest.mark.parametrize("shape", [(5,), (5, 1)])
@pytest.mark.parametrize("name", NAMES)
def test_gradients_central_differences(kernel_set, name, shape, rng):
    loss = losses.get(name)
    real = rng.uniform(-4, 4, size=shape)
    fake = rng.uniform(-4, 4, size=(7, *shape[1:]))
    for s in (real, fake):  # keep away from the hinge kinks at +-1
        s[np.abs(np.abs(s) - 1) < 0.05] += 0.2

    v, d_real, d_fake = loss.d_loss(real, fake)
    assert isinstance(v, float)
    n_real = numerical_gradient(lambda: loss.d_loss(real, fake)[0], real)
    n_fake = numerical_gradient(lambda: loss.d_loss(real, fake)[0], fake)
    assert rel_error(d_real, n_real) < 1e-6
    assert rel_error(d_fake, n_fake) < 1e-6

    v, d_fake = loss.g_loss(fake)
    assert isinstance(v, float)
    assert rel_error(d_fake, numerical_gradient(lambda: loss.g_loss(fake)[0], fake)) < 1e-6
    assert d_real.shape == shape and d_fake.shape == fake.shape


# ---------------------------------------------------------------------------- the formulas
def _sig(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


def _mean(xs) -> float:
    return sum(xs) / len(xs)


#: API.md's definitions, term by term in plain Python floats, at moderate logits:
#: name -> (D value, dD/ds_real_i, dD/ds_fake_i, G value, dG/ds_fake_i); gradients per element
#: before the 1/N of the mean.
FORMULAS = {
    "minimax": (
        lambda r, f: -_mean([math.log(_sig(s)) for s in r])
        - _mean([math.log(1 - _sig(s)) for s in f]),
        lambda s: -(1 - _sig(s)), _sig,
        lambda f: _mean([math.log(1 - _sig(s)) for s in f]), lambda s: -_sig(s)),
    "nonsaturating": (
        lambda r, f: -_mean([math.log(_sig(s)) for s in r])
        - _mean([math.log(1 - _sig(s)) for s in f]),
        lambda s: -(1 - _sig(s)), _sig,
        lambda f: -_mean([math.log(_sig(s)) for s in f]), lambda s: -(1 - _sig(s))),
    "wasserstein": (
        lambda r, f: _mean(f) - _mean(r), lambda s: -1.0, lambda s: 1.0,
        lambda f: -_mean(f), lambda s: -1.0),
    "lsgan": (
        lambda r, f: 0.5 * _mean([(s - 1) ** 2 for s in r]) + 0.5 * _mean([s**2 for s in f]),
        lambda s: s - 1, lambda s: s,
        lambda f: 0.5 * _mean([(s - 1) ** 2 for s in f]), lambda s: s - 1),
    "hinge": (
        lambda r, f: _mean([max(0.0, 1 - s) for s in r]) + _mean([max(0.0, 1 + s) for s in f]),
        lambda s: -1.0 if s < 1 else 0.0, lambda s: 1.0 if s > -1 else 0.0,
        lambda f: -_mean(f), lambda s: -1.0),
}
KNOWN_REAL = [-2.0, 0.0, 0.5, 3.0]
KNOWN_FAKE = [-1.5, 0.25, 2.0]


def formula(name: str, method: str, real, fake):
    dv, dr, df, gv, gf = FORMULAS[name]
    if method == "d":
        return (dv(real, fake), np.array([dr(s) / len(real) for s in real]),
                np.array([df(s) / len(fake) for s in fake]))
    return gv(fake), np.array([gf(s) / len(fake) for s in fake])


def assert_close_to(got, want, tol=1e-12) -> None:
    assert got[0] == pytest.approx(want[0], rel=tol, abs=tol), (got[0], want[0])
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(g.ravel(), w, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", ["n", "n1"])
@pytest.mark.parametrize(("name", "method"), [(n, m) for n in NAMES for m in "dg"])
def test_values_and_gradients_at_known_logits(kernel_set, name, method, shape):
    """The loss is the formula of API.md, not only self-consistent under central differences."""
    real, fake = np.array(KNOWN_REAL), np.array(KNOWN_FAKE)
    if shape == "n1":
        real, fake = real[:, None], fake[:, None]
    want = formula(name, method, KNOWN_REAL, KNOWN_FAKE)
    assert_close_to(ours(name, method, real, fake), want)
    # the comparison is not blind: the loss with its sign flipped is rejected
    flipped = tuple(-v for v in ours(name, method, real, fake))
    with pytest.raises(AssertionError):
        assert_close_to(flipped, want)


def test_formulas_table_is_hand_checked():
    """Two entries worked by hand, so that the table above is not trusted blindly."""
    v, dr, df = formula("minimax", "d", [0.0], [0.0])
    assert v == pytest.approx(2 * math.log(2)) and dr[0] == -0.5 and df[0] == 0.5
    v, dr, df = formula("hinge", "d", [0.5, 2.0], [-2.0, 0.0])
    assert v == pytest.approx((0.5 + 0.0) / 2 + (0.0 + 1.0) / 2)
    np.testing.assert_array_equal(dr, [-0.5, 0.0])
    np.testing.assert_array_equal(df, [0.0, 0.5])


def test_shapes_n_and_n1_agree(kernel_set, rng):
    real, fake = rng.standard_normal(6), rng.standard_normal(4)
    for name in NAMES:
        loss = losses.get(name)
        flat, col = loss.d_loss(real, fake), loss.d_loss(real[:, None], fake[:, None])
        assert flat[0] == col[0]
        np.testing.assert_array_equal(flat[1], col[1].ravel())
        np.testing.assert_array_equal(flat[2], col[2].ravel())
        assert col[1].shape == (6, 1) and col[2].shape == (4, 1)
        assert loss.g_loss(fake)[0] == loss.g_loss(fake[:, None])[0]


# ---------------------------------------------------------------------------- PyTorch
#: Every (loss, side) pair is its own test case: none can go untested by the luck of the draw.
CASES = [(name, method) for name in NAMES for method in "dg"]
few = settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])


@few
@pytest.mark.parametrize(("name", "method"), CASES)
@given(real=logits(np.float64, -40, 40), fake=logits(np.float64, -40, 40))
def test_matches_torch_float64(kernel_set, torch, name, method, real, fake):
    got = ours(name, method, real, fake)
    ref = reference(torch, name, method, real, fake)
    assert_matches(name, method, got, ref, real, fake, 1e-8)


@few
@pytest.mark.parametrize(("name", "method"), CASES)
@given(real=logits(np.float32, -15, 15), fake=logits(np.float32, -15, 15))
def test_matches_torch_float32(kernel_set, torch, name, method, real, fake):
    got = ours(name, method, real, fake)
    ref = reference(torch, name, method, real, fake)
    assert_matches(name, method, got, ref, real, fake, 1e-4)


EXTREME = st.sampled_from([1e4, -1e4, 9999.5, -3e3, 1e3, -100.0, 88.5, -88.5, 50.0, 0.0, 1.0])


@few
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "method"), CASES)
@given(real=st.lists(EXTREME, min_size=1, max_size=6),
       fake=st.lists(EXTREME, min_size=1, max_size=6), col=st.booleans())
def test_extreme_logits_finite_and_match_torch(kernel_set, torch, dtype, name, method, real,
                                               fake, col):
    real, fake = np.array(real, dtype), np.array(fake, dtype)
    if col:
        real, fake = real[:, None], fake[:, None]
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        got = ours(name, method, real, fake)
    assert np.isfinite(got[0]) and all(np.all(np.isfinite(g)) for g in got[1:])
    tol = TOL[dtype]
    ref = reference(torch, name, method, real, fake)
    if np.isfinite(ref[0]) and all(np.all(np.isfinite(r)) for r in ref[1:]):
        assert_matches(name, method, got, ref, real, fake, tol)
    # the exact answer: torch in float64 on the same (rounded) logits
    ref64 = reference(torch, name, method, real.astype(np.float64), fake.astype(np.float64))
    got64 = (got[0], *(g.astype(np.float64) for g in got[1:]))
    assert_matches(name, method, got64, ref64, real.astype(np.float64),
                   fake.astype(np.float64), tol, floor_dtype=dtype)


@fixture_ok
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(real=logits(np.float64, -3, 3), fake=logits(np.float64, -3, 3))
def test_minimax_is_bce_with_logits_in_torch(kernel_set, torch, dtype, real, fake):
    """The minimax/non-saturating losses are PyTorch's BCEWithLogits with labels 1 and 0."""
    F = torch.nn.functional
    real, fake = real.astype(dtype), fake.astype(dtype)
    tol = TOL[dtype]
    sr = torch.tensor(real, requires_grad=True)
    sf = torch.tensor(fake, requires_grad=True)
    d = (F.binary_cross_entropy_with_logits(sr, torch.ones_like(sr))
         + F.binary_cross_entropy_with_logits(sf, torch.zeros_like(sf)))
    d.backward()
    assert_matches("minimax", "d", losses.get("minimax").d_loss(real, fake),
                   (d.item(), sr.grad.numpy(), sf.grad.numpy()), real, fake, tol)
    for name, target, sign in (("nonsaturating", torch.ones_like, 1), ("minimax",
                                                                        torch.zeros_like, -1)):
        sf.grad = None
        g = sign * F.binary_cross_entropy_with_logits(sf, target(sf))
        g.backward()
        assert_matches(name, "g", losses.get(name).g_loss(fake),
                       (g.item(), sf.grad.numpy()), real, fake, tol)


# ---------------------------------------------------------------------------- bce_with_logits
@fixture_ok
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(s=logits(np.float64, -3, 3), data=st.data())
def test_bce_with_logits_matches_torch(kernel_set, torch, dtype, s, data):
    s = s.astype(dtype)
    t = data.draw(arrays(dtype, s.shape, elements=st.floats(0, 1, width=32)))
    v, g = losses.bce_with_logits(s, t)
    ts = torch.tensor(s, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(ts, torch.tensor(t))
    ref.backward()
    assert isinstance(v, float) and g.shape == s.shape and g.dtype == s.dtype
    assert abs(v - ref.item()) <= TOL[dtype] * abs(ref.item())
    assert rel_error(g, ts.grad.numpy()) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_extreme_and_scalar_target(kernel_set, dtype, rng):
    s = np.array([1e4, -1e4, 30.0, -30.0], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v1, g1 = losses.bce_with_logits(s, 1.0)
        v0, g0 = losses.bce_with_logits(s, np.zeros_like(s))
    # exact: softplus(-s) and softplus(s), averaged
    assert v1 == pytest.approx((1e4 + 30 + np.log1p(np.exp(-30.0))) / 4, rel=TOL[dtype])
    assert v0 == pytest.approx((1e4 + 30 + np.log1p(np.exp(-30.0))) / 4, rel=TOL[dtype])
    np.testing.assert_allclose(g1, [0, -0.25, 0, -0.25], atol=1e-12)
    np.testing.assert_allclose(g0, [0.25, 0, 0.25, 0], atol=1e-12)
    # confident and right: the loss is tiny but not lost to cancellation
    assert losses.bce_with_logits(np.array([40.0], dtype), 1.0)[0] == pytest.approx(
        np.exp(-40.0), rel=TOL[dtype], abs=0)
    x = rng.standard_normal(5)
    assert rel_error(losses.bce_with_logits(x, 0.3)[1],
                     numerical_gradient(lambda: losses.bce_with_logits(x, 0.3)[0], x)) < 1e-6


# ---------------------------------------------------------------------------- why non-saturating
def test_minimax_generator_saturates_nonsaturating_does_not(kernel_set):
    """When D confidently rejects fakes (s << 0) the minimax G gradient vanishes."""
    fake = np.full(4, -10.0)
    _, d_minimax = losses.get("minimax").g_loss(fake)
    _, d_nonsat = losses.get("nonsaturating").g_loss(fake)
    assert np.all(np.abs(d_minimax) < 1e-4 / 4)
    np.testing.assert_allclose(d_nonsat, -0.25, rtol=1e-4)


@pytest.mark.parametrize(("name", "method"), CASES)
def test_torch_comparison_rejects_a_flipped_sign(torch, name, method):
    """A negative control for ``assert_matches``: the loss with its sign flipped fails it."""
    real, fake = np.array([-1.5, 0.3, 2.0]), np.array([-0.7, 0.4, 1.5, -2.5])
    got = ours(name, method, real, fake)
    ref = reference(torch, name, method, real, fake)
    assert_matches(name, method, got, ref, real, fake, 1e-8)
    with pytest.raises(AssertionError):
        assert_matches(name, method, tuple(-v for v in got), ref, real, fake, 1e-8)
