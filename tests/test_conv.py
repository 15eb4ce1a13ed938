"""Conv2d, ConvTranspose2d: gradient checks, PyTorch parity, naive loops, errors, accumulation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import TOL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import Conv2d, ConvTranspose2d, gradcheck, rel_error
from nanogan.layers.conv_naive import (
    conv2d_naive,
    conv2d_naive_backward,
    conv_transpose2d_naive,
)

# the kernel_set fixture is function-scoped; it only switches the kernel table, so it is safe to
# share between the examples of one test
fixture_settings = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------- configurations
@dataclass
class Cfg:
    transpose: bool
    N: int
    C: int
    O: int
    k: tuple[int, int]
    s: tuple[int, int]
    p: tuple[int, int]
    op: tuple[int, int]
    H: int
    W: int
    bias: bool
    square: bool  # pass kernel_size/stride/padding as ints
    seed: int

    def _arg(self, v: tuple[int, int]) -> int | tuple[int, int]:
        return v[0] if self.square else v

    def kwargs(self) -> dict:
        kw = dict(kernel_size=self._arg(self.k), stride=self._arg(self.s),
                  padding=self._arg(self.p), bias=self.bias)
        if self.transpose:
            kw["output_padding"] = self._arg(self.op)
        return kw

    def ours(self, dtype=np.float64, rng=None):
        cls = ConvTranspose2d if self.transpose else Conv2d
        return cls(self.C, self.O, **self.kwargs(), rng=self.seed if rng is None else rng,
                   dtype=dtype)

    def theirs(self, torch, dtype):
        cls = torch.nn.ConvTranspose2d if self.transpose else torch.nn.Conv2d
        return cls(self.C, self.O, **self.kwargs(), dtype=dtype)

    def x(self, dtype=np.float64, scale: float = 1.0) -> np.ndarray:
        gen = np.random.default_rng(self.seed + 1)
        return (scale * gen.standard_normal((self.N, self.C, self.H, self.W))).astype(dtype)

    def out_hw(self) -> tuple[int, int]:
        if self.transpose:
            return tuple((n - 1) * s - 2 * p + k + op for n, s, p, k, op in
                         zip((self.H, self.W), self.s, self.p, self.k, self.op))
        return tuple((n + 2 * p - k) // s + 1 for n, s, p, k in
                     zip((self.H, self.W), self.s, self.p, self.k))


@st.composite
def configs(draw, transpose: bool) -> Cfg:
    """Tiny layers: N 1..3, C and O 1..4, kernel 1..4, stride 1..3 (also above the kernel),
    padding 0..kernel (conv) or 0..kernel-1 (transpose), output_padding < stride."""
    square = draw(st.booleans())

    def pair(strategy):
        a = draw(strategy)
        return (a, a) if square else (a, draw(strategy))

    k = pair(st.integers(1, 4))
    s = pair(st.integers(1, 3))
    p = (draw(st.integers(0, k[0] - (1 if transpose else 0))),) * 2 if square else tuple(
        draw(st.integers(0, ki - (1 if transpose else 0))) for ki in k)
    if transpose:
        op = (draw(st.integers(0, s[0] - 1)),) * 2 if square else tuple(
            draw(st.integers(0, si - 1)) for si in s)
        # smallest input with a positive output: (H - 1) s - 2 p + k + op >= 1
        lo = [max(1, 1 + math.ceil((2 * pi - ki - opi + 1) / si))
              for ki, si, pi, opi in zip(k, s, p, op)]
        hi = [v + 3 for v in lo]
    else:
        op = (0, 0)
        lo = [max(1, ki - 2 * pi) for ki, pi in zip(k, p)]
        hi = [v + 5 for v in lo]
    H = draw(st.integers(lo[0], hi[0]))
    W = draw(st.integers(lo[1], hi[1]))
    return Cfg(transpose, draw(st.integers(1, 3)), draw(st.integers(1, 4)),
               draw(st.integers(1, 4)), k, s, p, op, H, W, draw(st.booleans()), square,
               draw(st.integers(0, 2**31)))


any_config = st.one_of(configs(False), configs(True))


# ---------------------------------------------------------------------------- (a) gradcheck
@settings(fixture_settings, max_examples=12)
@pytest.mark.parametrize("transpose", [False, True], ids=["Conv2d", "ConvTranspose2d"])
@given(data=st.data())
def test_gradcheck_float64(kernel_set, transpose, data):
    cfg = data.draw(configs(transpose), label="cfg")
    layer = cfg.ours(np.float64)
    x = cfg.x()
    y = layer(x)
    assert y.shape == (cfg.N, cfg.O, *cfg.out_hw())
    errs = gradcheck(layer, x, rng=cfg.seed)
    assert set(errs) == {"x", "weight"} | ({"bias"} if cfg.bias else set())
    assert max(errs.values()) < 1e-6, (cfg, errs)


# ---------------------------------------------------------------------------- (b) PyTorch
def _torch_run(torch, cfg, ours, x, dy):
    tdt = {np.float64: torch.float64, np.float32: torch.float32}[ours.dtype.type]
    tl = cfg.theirs(torch, tdt)
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    yt = tl(xt)
    yt.backward(torch.from_numpy(dy))
    out = {"y": yt.detach().numpy(), "x": xt.grad.numpy(), "weight": tl.weight.grad.numpy()}
    if cfg.bias:
        out["bias"] = tl.bias.grad.numpy()
    return out


@settings(fixture_settings, max_examples=8)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transpose", [False, True], ids=["Conv2d", "ConvTranspose2d"])
@given(data=st.data(), scale=st.sampled_from([1e-20, 1.0, 1e20]), noncontiguous=st.booleans())
def test_matches_torch(kernel_set, torch, transpose, dtype, data, scale, noncontiguous):
    cfg = data.draw(configs(transpose), label="cfg")
    ours = cfg.ours(dtype)
    x = cfg.x(dtype, scale)
    if noncontiguous:  # same values, seen through a strided view
        big = np.zeros((cfg.N, cfg.C, 2 * cfg.H, 3 * cfg.W), dtype=dtype)
        big[:, :, ::2, ::3] = x
        x = big[:, :, ::2, ::3]
    y, cache = ours.forward(x)
    assert y.dtype == dtype
    dy = np.random.default_rng(cfg.seed + 2).standard_normal(y.shape).astype(dtype)
    dx = ours.backward(dy, cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    ref = _torch_run(torch, cfg, ours, x, dy)
    got = {"y": y, "x": dx, **ours.grads}
    assert set(got) == set(ref)
    for name, r in ref.items():
        err = rel_error(got[name], r)
        assert err < TOL[dtype], (name, err, cfg)


@given(cfg=any_config)
def test_loads_torch_state_dict(torch, cfg):
    torch.manual_seed(cfg.seed)
    tl = cfg.theirs(torch, torch.float64)
    ours = cfg.ours(np.float64, rng=0)
    ours.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    assert list(ours.state_dict()) == list(tl.state_dict())
    x = cfg.x()
    with torch.no_grad():
        ref = tl(torch.from_numpy(x)).numpy()
    assert rel_error(ours(x), ref) < 1e-8


@pytest.mark.parametrize("transpose", [False, True])
def test_default_init_like_torch(transpose):
    cls = ConvTranspose2d if transpose else Conv2d
    a, b = cls(16, 2, 3, rng=7), cls(16, 2, 3, rng=7)
    assert a.weight.dtype == np.float32 and a.bias.dtype == np.float32
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    # Conv2d: fan_in = in * kh * kw = 144; ConvTranspose2d: fan_in = out * kh * kw = 18
    bound = 1 / math.sqrt((2 if transpose else 16) * 9)
    for p in (a.weight, a.bias):
        assert np.abs(p).max() <= bound
    assert np.abs(a.weight).max() > 0.9 * bound
    assert a.weight.shape == ((16, 2, 3, 3) if transpose else (2, 16, 3, 3))
    assert cls(16, 2, 3, dtype=np.float64).weight.dtype == np.float64


# ---------------------------------------------------------------------------- (c) naive loops
@fixture_settings
@given(cfg=configs(False))
def test_conv2d_naive_matches_layer(kernel_set, cfg):
    layer = cfg.ours(np.float64)
    x = cfg.x()
    y, cache = layer.forward(x)
    b = layer.bias if cfg.bias else None
    assert rel_error(conv2d_naive(x, layer.weight, b, cfg.s, cfg.p), y) < 1e-12
    dy = np.random.default_rng(cfg.seed).standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    ndx, ndw, ndb = conv2d_naive_backward(dy, x, layer.weight, cfg.s, cfg.p)
    assert rel_error(ndx, dx) < 1e-12
    assert rel_error(ndw, layer.grads["weight"]) < 1e-12
    if cfg.bias:
        assert rel_error(ndb, layer.grads["bias"]) < 1e-12


@fixture_settings
@given(cfg=configs(True))
def test_conv_transpose2d_naive_matches_layer(kernel_set, cfg):
    layer = cfg.ours(np.float64)
    x = cfg.x()
    b = layer.bias if cfg.bias else None
    ref = conv_transpose2d_naive(x, layer.weight, b, cfg.s, cfg.p, cfg.op)
    assert rel_error(ref, layer(x)) < 1e-12


@fixture_settings
@given(cfg=configs(True))
def test_transpose_is_conv_input_gradient(kernel_set, cfg):
    """ConvTranspose2d(Cin, Cout) forward == Conv2d(Cout, Cin) backward w.r.t. its input."""
    convt = cfg.ours(np.float64)
    kw = {k: v for k, v in cfg.kwargs().items() if k != "output_padding"}
    conv = Conv2d(cfg.O, cfg.C, **kw, rng=0, dtype=np.float64)
    conv.weight[...] = convt.weight
    x = cfg.x()
    y = convt(x)
    if cfg.bias:
        y = y - convt.bias[None, :, None, None]
    _, cache = conv.forward(np.zeros(y.shape))
    assert rel_error(conv.backward(x, cache, param_grads=False), y) < 1e-12


# ---------------------------------------------------------------------------- (d) bad input
def _raises(layer, x, *must_contain):
    with pytest.raises(ValueError) as exc:
        layer.forward(x)
    msg = str(exc.value)
    assert type(layer).__name__ in msg, msg
    for part in must_contain:
        assert part in msg, (part, msg)
    return msg


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
@pytest.mark.parametrize("shape", [(3, 5, 5), (1, 2, 3, 5, 5), (5,)])
def test_wrong_rank(cls, shape):
    _raises(cls(3, 4, 3, padding=1), np.zeros(shape), str(shape))


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_wrong_channels(cls):
    msg = _raises(cls(3, 4, 3), np.zeros((2, 4, 6, 6)), "(2, 4, 6, 6)")
    assert "3" in msg


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex128, object])
def test_non_float_input(cls, dtype):
    _raises(cls(1, 1, 2), np.zeros((1, 1, 4, 4), dtype=dtype), str(np.dtype(dtype)))


@pytest.mark.parametrize(("shape", "padding"), [((1, 2, 2, 9), 0), ((1, 2, 9, 1), 1),
                                                ((1, 2, 0, 9), 1)])
def test_conv2d_input_smaller_than_kernel(shape, padding):
    _raises(Conv2d(2, 1, 4, padding=padding), np.zeros(shape), str(shape))


def test_conv_transpose2d_non_positive_output():
    # (1 - 1) * 1 - 2 * 2 + 3 + 0 = -1
    _raises(ConvTranspose2d(2, 1, 3, padding=2), np.zeros((1, 2, 1, 1)), "(1, 2, 1, 1)")


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_wrong_dy_shape(cls):
    layer = cls(2, 3, 3, dtype=np.float64)
    y, cache = layer.forward(np.zeros((1, 2, 5, 5)))
    bad = np.zeros((1, 3, y.shape[2] + 1, y.shape[3]))
    with pytest.raises(ValueError, match=re.escape(type(layer).__name__)) as exc:
        layer.backward(bad, cache)
    assert str(bad.shape) in str(exc.value)


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
@pytest.mark.parametrize(("kwargs", "word"), [
    (dict(in_channels=0), "in_channels"), (dict(out_channels=-1), "out_channels"),
    (dict(in_channels=2.0), "in_channels"), (dict(kernel_size=0), "kernel_size"),
    (dict(kernel_size=(3, 0)), "kernel_size"), (dict(kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(kernel_size=2.5), "kernel_size"), (dict(stride=0), "stride"),
    (dict(stride=(1, -2)), "stride"), (dict(padding=-1), "padding"),
    (dict(padding=(0, -1)), "padding"), (dict(dtype=np.int32), "dtype"),
])
def test_bad_constructor(cls, kwargs, word):
    args = dict(in_channels=2, out_channels=3, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=word) as exc:
        cls(**args)
    if word != "dtype":  # the dtype check is shared by every layer
        assert cls.__name__ in str(exc.value)


@pytest.mark.parametrize(("stride", "output_padding"), [(1, 1), (2, 2), (2, (1, 2)), (1, -1)])
def test_conv_transpose2d_output_padding_rule(stride, output_padding):
    with pytest.raises(ValueError, match=r"ConvTranspose2d.*output_padding"):
        ConvTranspose2d(2, 3, 3, stride=stride, output_padding=output_padding)


def test_repr_like_torch(torch):
    assert repr(Conv2d(3, 8, 3, 2, 1, bias=False)) == repr(torch.nn.Conv2d(3, 8, 3, 2, 1,
                                                                             bias=False))
    assert repr(ConvTranspose2d(3, 8, 4, 2, 1, 1)) == repr(torch.nn.ConvTranspose2d(3, 8, 4, 2,
                                                                                    1, 1))


# ---------------------------------------------------------------------------- (e) accumulation
@pytest.mark.parametrize("transpose", [False, True])
def test_grads_accumulate_and_param_grads_false(transpose):
    cfg = Cfg(transpose, 2, 3, 2, (3, 2), (2, 1), (1, 0), (1, 0), 5, 4, True, False, 3)
    layer = cfg.ours(np.float64)
    x = cfg.x()
    y, cache = layer.forward(x)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dx1 = layer.backward(dy, cache)
    once = {k: g.copy() for k, g in layer.grads.items()}
    assert all(np.abs(g).sum() > 0 for g in once.values())
    dx2 = layer.backward(dy, cache)
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-14)
    before = {k: g.copy() for k, g in layer.grads.items()}
    ids = {k: id(g) for k, g in layer._grads.items()}
    dx3 = layer.backward(dy, cache, param_grads=False)
    np.testing.assert_array_equal(dx3, dx1)
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, before[k])
        assert id(layer._grads[k]) == ids[k]


@pytest.mark.parametrize("transpose", [False, True])
def test_caches_are_independent(transpose):
    """Two forward passes, backpropagated in reverse order, give each its own gradient."""
    cfg = Cfg(transpose, 2, 2, 3, (2, 2), (2, 2), (0, 0), (0, 0), 4, 4, True, True, 5)
    layer = cfg.ours(np.float64)
    xa, xb = cfg.x(), cfg.x() * 3 + 1
    ya, ca = layer.forward(xa)
    _, cb = layer.forward(xb)
    dy = np.ones_like(ya)
    dxb = layer.backward(dy, cb)
    gb = layer.grads["weight"].copy()
    layer.zero_grad()
    dxa = layer.backward(dy, ca)
    ga = layer.grads["weight"].copy()
    fresh = cfg.ours(np.float64)
    np.testing.assert_allclose(fresh.backward(dy, fresh.forward(xa)[1]), dxa)
    np.testing.assert_allclose(fresh.grads["weight"], ga)
    fresh.zero_grad()
    np.testing.assert_allclose(fresh.backward(dy, fresh.forward(xb)[1]), dxb)
    np.testing.assert_allclose(fresh.grads["weight"], gb)
    assert not np.allclose(ga, gb)


@pytest.mark.parametrize("transpose", [False, True])
def test_float32_layer_converts_input(transpose):
    cfg = Cfg(transpose, 1, 2, 2, (3, 3), (1, 1), (1, 1), (0, 0), 4, 4, True, True, 9)
    layer = cfg.ours(np.float32)
    y64 = layer(cfg.x(np.float64))
    assert y64.dtype == np.float32
    np.testing.assert_array_equal(y64, layer(cfg.x(np.float32)))
    y, cache = layer.forward(cfg.x(np.float32))
    dx = layer.backward(np.ones(y.shape), cache)  # float64 dy, float32 layer
    assert dx.dtype == np.float32 and layer.grads["weight"].dtype == np.float32
