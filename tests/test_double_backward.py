"""Second-order backward (``jvp``, ``backward_jvp``) of every layer a critic can use.

For random ``x``, ``dy`` and directions ``x_dot``, ``dy_dot`` (float64):

* against central differences of the first-order pass: ``y_dot``, ``dx_dot`` and the
  parameter-gradient tangents are ``(f(+h) - f(-h)) / 2h`` of ``y``, ``backward(dy + e dy_dot)`` at
  ``x + e x_dot`` and of the parameter gradients it adds;
* against PyTorch's double backward: ``dx = torch.autograd.grad(y, x, dy, create_graph=True)``,
  then the gradient of ``x_dot . dx + dy_dot . y`` w.r.t. ``x`` and every parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import (
    Conv2d,
    ConvTranspose2d,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    LeakyReLU,
    Maxout,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    rel_error,
)

F64 = np.float64
FIXTURE_OK = settings(max_examples=15, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
FD_TOL = 1e-6       # central differences of a gradient, h = 1e-5
TORCH_TOL = 1e-10   # the same formulas evaluated in another order


# ---------------------------------------------------------------------------- our side
def second_order(m, x, dy, x_dot, dy_dot, **kw):
    """``(y_dot, dx, dx_dot, grads_dot)`` from the second-order methods."""
    _, cache = m.forward(x)
    y_dot, tcache = m.jvp(x_dot, cache)
    m.zero_grad()
    dx, dx_dot = m.backward_jvp(dy, dy_dot, cache, tcache, **kw)
    return y_dot, dx, dx_dot, {k: g.copy() for k, g in m.grads.items()}


def first_order(m, x, dy):
    """``(y, dx, grads)`` of the ordinary forward and backward."""
    y, cache = m.forward(x)
    m.zero_grad()
    dx = m.backward(dy, cache)
    return y, dx, {k: g.copy() for k, g in m.grads.items()}


def check_finite_differences(m, x, dy, x_dot, dy_dot, h=1e-5):
    y_dot, dx, dx_dot, grads_dot = second_order(m, x, dy, x_dot, dy_dot)
    _, dx0, _ = first_order(m, x, dy)
    yp, dxp, gp = first_order(m, x + h * x_dot, dy + h * dy_dot)
    ym, dxm, gm = first_order(m, x - h * x_dot, dy - h * dy_dot)
    assert rel_error(dx, dx0) < 1e-12
    assert y_dot.shape == yp.shape and dx_dot.shape == x.shape
    errs = {"y_dot": rel_error(y_dot, (yp - ym) / (2 * h)),
            "dx_dot": rel_error(dx_dot, (dxp - dxm) / (2 * h))}
    for k in grads_dot:
        errs[k] = rel_error(grads_dot[k], (gp[k] - gm[k]) / (2 * h))
    assert max(errs.values()) < FD_TOL, errs
    return errs


# ---------------------------------------------------------------------------- PyTorch's side
def torch_module(torch, m):
    """The PyTorch module of a nanogan layer (float64, same parameters)."""
    nn = torch.nn
    if isinstance(m, Sequential):
        return nn.Sequential(*[torch_module(torch, c) for c in m.layers])
    if isinstance(m, Dense):
        t = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    elif isinstance(m, Conv2d):
        t = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                      bias=m.bias is not None)
    elif isinstance(m, ConvTranspose2d):
        t = nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                               m.output_padding, bias=m.bias is not None)
    elif isinstance(m, LayerNorm):
        t = nn.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine, bias=m.bias is not None)
    elif isinstance(m, LeakyReLU):  # ReLU included: slope 0
        t = nn.LeakyReLU(m.negative_slope)
    elif isinstance(m, Tanh):
        t = nn.Tanh()
    elif isinstance(m, Sigmoid):
        t = nn.Sigmoid()
    elif isinstance(m, Flatten):
        t = nn.Flatten()
    elif isinstance(m, Reshape):
        shape = m.shape

        class _Reshape(nn.Module):
            def forward(self, x):
                return x.reshape(x.shape[0], *shape)

        t = _Reshape()
    elif isinstance(m, Maxout):
        return _TorchMaxout(torch, m)
    elif isinstance(m, SameMaskDropout):
        return _TorchMask(torch, m)
    else:
        raise TypeError(type(m))
    t = t.double()
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.state_dict().items()})
    return t


class SameMaskDropout(Dropout):
    """Dropout that draws the same mask at every forward pass (so that finite differences and
    PyTorch see one fixed linear map)."""

    def forward(self, x, train=True):
        self.rng = np.random.default_rng(0)
        return super().forward(x, train)


def _TorchMask(torch, m):
    class Mask(torch.nn.Module):
        def forward(self, x):
            mask = m.forward(np.ones(tuple(x.shape)))[1]
            return x * (1.0 if mask is None else torch.from_numpy(mask))

    return Mask()


def _TorchMaxout(torch, m):
    """PyTorch's equivalent of Maxout: a Linear, then the max over each unit's pieces."""

    class TorchMaxout(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(m.in_features, m.out_features * m.pieces,
                                       bias=m.bias is not None).double()
            self.lin.load_state_dict({k: torch.from_numpy(v.copy())
                                      for k, v in m.state_dict().items()})

        def forward(self, x):
            z = self.lin(x)
            return z.view(len(x), m.out_features, m.pieces).max(-1).values

    t = TorchMaxout()
    t.named_parameters = lambda: t.lin.named_parameters()  # keys "weight", "bias" as ours
    return t


def check_torch(torch, m, x, dy, x_dot, dy_dot):
    y_dot, dx, dx_dot, grads_dot = second_order(m, x, dy, x_dot, dy_dot)
    t = torch_module(torch, m)
    params = dict(t.named_parameters())
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    # y_dot = J x_dot by the double-vjp trick: J^T u is linear in u, its gradient w.r.t. u is J
    u = torch.zeros_like(yt, requires_grad=True)
    (jtu,) = torch.autograd.grad(yt, xt, u, create_graph=True)
    (yt_dot,) = torch.autograd.grad(jtu, u, torch.from_numpy(x_dot))
    (dxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dy), create_graph=True)
    s = (dxt * torch.from_numpy(x_dot)).sum() + (yt * torch.from_numpy(dy_dot)).sum()
    names = list(params)
    out = torch.autograd.grad(s, [xt, *params.values()], allow_unused=True)
    errs = {"dx": rel_error(dx, dxt.detach().numpy()),
            "y_dot": rel_error(y_dot, yt_dot.numpy()),
            "dx_dot": rel_error(dx_dot, out[0].detach().numpy())}
    for k, g in zip(names, out[1:]):
        errs[k] = rel_error(grads_dot[k], 0 * grads_dot[k] if g is None else g.numpy())
    assert set(names) == set(grads_dot)
    assert max(errs.values()) < TORCH_TOL, errs
    return errs


def random_inputs(m, x_shape, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal(x_shape)
    y = m(x)
    return x, g.standard_normal(y.shape), g.standard_normal(x_shape), g.standard_normal(y.shape)


def check_both(torch, m, x_shape, seed):
    args = random_inputs(m, x_shape, seed)
    check_finite_differences(m, *args)
    check_torch(torch, m, *args)


def randomise(m, seed):
    """Non-trivial parameters (LayerNorm starts at ones and zeros)."""
    g = np.random.default_rng(seed + 7)
    for p in m.params.values():
        p[...] += 0.3 * g.standard_normal(p.shape)
    return m


# ---------------------------------------------------------------------------- layers
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**16))
@FIXTURE_OK
def test_dense(torch, N, fin, fout, bias, seed):
    check_both(torch, Dense(fin, fout, bias, dtype=F64, rng=seed), (N, fin), seed)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 1), st.integers(3, 6), st.integers(3, 6),
       st.booleans(), st.integers(0, 2**16))
@FIXTURE_OK
def test_conv2d(torch, N, C, O, k, s, p, H, W, bias, seed):
    conv = Conv2d(C, O, k, stride=s, padding=p, bias=bias, dtype=F64, rng=seed)
    check_both(torch, conv, (N, C, H, W), seed)


def test_conv2d_every_kernel_set(torch, kernel_set):
    """im2col/col2im of every kernel set, and the one-window-per-image case."""
    check_both(torch, Conv2d(2, 3, 3, stride=2, padding=1, dtype=F64, rng=0), (2, 2, 5, 5), 0)
    check_both(torch, Conv2d(2, 3, 4, dtype=F64, rng=1), (3, 2, 4, 4), 1)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 1), st.integers(0, 1), st.integers(1, 4),
       st.integers(1, 4), st.booleans(), st.integers(0, 2**16))
@FIXTURE_OK
def test_conv_transpose2d(torch, N, C, O, k, s, p, op, H, W, bias, seed):
    op = min(op, s - 1)
    m = ConvTranspose2d(C, O, k, stride=s, padding=p, output_padding=op, bias=bias, dtype=F64,
                        rng=seed)
    if min(m.output_shape((N, C, H, W))[2:]) < 1:
        return
    check_both(torch, m, (N, C, H, W), seed)


def elementwise_shape():
    return st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


@given(st.sampled_from(["leaky", "relu", "tanh", "sigmoid"]), elementwise_shape(),
       st.floats(0.0, 0.5), st.integers(0, 2**16))
@FIXTURE_OK
def test_activations(torch, kind, shape, slope, seed):
    m = {"leaky": LeakyReLU(slope), "relu": ReLU(), "tanh": Tanh(), "sigmoid": Sigmoid()}[kind]
    check_both(torch, m, shape, seed)


def test_tanh_and_sigmoid_second_derivative_is_used(torch):
    """With dy_dot = 0 and a constant dy, dx_dot is dy * f''(x) * x_dot, not zero."""
    for m, f2 in ((Tanh(), lambda x: -2 * np.tanh(x) / np.cosh(x) ** 2),
                  (Sigmoid(), lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s))):
        x = np.linspace(-3, 3, 12).reshape(3, 4)
        x_dot = np.full_like(x, 0.5)
        _, _, dx_dot, _ = second_order(m, x, np.ones_like(x), x_dot, np.zeros_like(x))
        np.testing.assert_allclose(dx_dot, f2(x) * x_dot, rtol=1e-12, atol=1e-15)


@given(st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple), st.integers(0, 2**16))
@FIXTURE_OK
def test_flatten_and_reshape(torch, shape, seed):
    check_both(torch, Flatten(), shape, seed)
    n = int(np.prod(shape[1:]))
    check_both(torch, Reshape(n, 1), shape, seed)


@given(st.lists(st.integers(1, 2), min_size=1, max_size=2),
       st.lists(st.integers(1, 4), min_size=1, max_size=3).filter(lambda s: np.prod(s) >= 3),
       st.sampled_from([(True, True), (True, False), (False, True)]), st.integers(0, 2**16))
@FIXTURE_OK
def test_layernorm(torch, lead, ns, affine_bias, seed):
    affine, bias = affine_bias
    ln = randomise(LayerNorm(tuple(ns), elementwise_affine=affine, bias=bias, dtype=F64), seed)
    check_both(torch, ln, (*lead, *ns), seed)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.booleans(), st.integers(0, 2**16))
@FIXTURE_OK
def test_maxout(torch, N, fin, fout, pieces, bias, seed):
    check_both(torch, Maxout(fin, fout, pieces, bias, dtype=F64, rng=seed), (N, fin), seed)


@given(elementwise_shape(), st.sampled_from([0.0, 0.3, 1.0]), st.booleans(),
       st.integers(0, 2**16))
@FIXTURE_OK
def test_dropout(torch, shape, p, train, seed):
    m = SameMaskDropout(p)
    if not train:
        m.forward = lambda x, train=True: Dropout.forward(m, x, False)
    check_both(torch, m, shape, seed)


def conv_critic(seed=0, slope=0.2):
    """Conv2d + LeakyReLU + LayerNorm + Flatten + Dense, with a nested Sequential and a Tanh."""
    return randomise(Sequential(
        Conv2d(2, 3, 3, stride=2, padding=1, dtype=F64, rng=seed), LeakyReLU(slope),
        LayerNorm((3, 3, 3), dtype=F64),
        Sequential(Conv2d(3, 4, 2, dtype=F64, rng=seed + 1), Tanh()),
        Flatten(), Dense(16, 3, dtype=F64, rng=seed + 2), Sigmoid(), Dense(3, 1, dtype=F64,
                                                                           rng=seed + 3),
    ), seed)


@given(st.integers(1, 3), st.integers(0, 2**16))
@FIXTURE_OK
def test_sequential_conv_critic(torch, N, seed):
    check_both(torch, conv_critic(seed), (N, 2, 5, 5), seed)


@given(st.integers(1, 4), st.integers(0, 2**16))
@FIXTURE_OK
def test_sequential_mlp(torch, N, seed):
    # (LayerNorm before ReLU: after it, a row with one positive value normalises to a constant
    # and the finite differences would measure only rounding)
    m = randomise(Sequential(Reshape(12), Dense(12, 6, dtype=F64, rng=seed),
                             LayerNorm(6, dtype=F64), ReLU(), Dense(6, 5, dtype=F64, rng=seed + 1),
                             LeakyReLU(0.1), Dense(5, 2, dtype=F64, rng=seed + 2)), seed)
    check_both(torch, m, (N, 3, 4), seed)


# ---------------------------------------------------------------------------- the flags
def test_input_grad_false_and_param_grads_false():
    m = conv_critic(3)
    args = random_inputs(m, (2, 2, 5, 5), 3)
    _, _, _, full = second_order(m, *args)
    _, dx, dx_dot, skipped = second_order(m, *args, input_grad=False)
    assert dx is None and dx_dot is None
    for k in full:
        np.testing.assert_allclose(skipped[k], full[k], rtol=1e-13, atol=1e-15)
    # a parameter-free first layer is skipped altogether
    m2 = Sequential(Flatten(), Dense(50, 2, dtype=F64, rng=0))
    a2 = random_inputs(m2, (2, 2, 5, 5), 4)
    full2, skipped2 = second_order(m2, *a2)[3], second_order(m2, *a2, input_grad=False)[3]
    np.testing.assert_allclose(skipped2["1.weight"], full2["1.weight"], rtol=1e-13)
    # param_grads=False adds nothing
    _, cache = m.forward(args[0])
    _, tcache = m.jvp(args[2], cache)
    m.zero_grad()
    dx2, dx_dot2 = m.backward_jvp(args[1], args[3], cache, tcache, param_grads=False)
    assert all(not g.any() for g in m.grads.values())
    np.testing.assert_allclose(dx2, second_order(m, *args)[1], rtol=1e-13)
    np.testing.assert_allclose(dx_dot2, second_order(m, *args)[2], rtol=1e-13)


def test_backward_jvp_accumulates():
    m = conv_critic(5)
    args = random_inputs(m, (2, 2, 5, 5), 5)
    once = second_order(m, *args)[3]
    _, cache = m.forward(args[0])
    _, tcache = m.jvp(args[2], cache)
    m.backward_jvp(args[1], args[3], cache, tcache)  # on top of the first call's grads
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-13)


def test_cache_must_have_one_entry_per_layer():
    m = Sequential(Dense(4, 5, dtype=F64, rng=0), LeakyReLU(0.2))
    x = np.zeros((2, 4))
    _, cache = m.forward(x)
    with pytest.raises(ValueError, match=r"Sequential.jvp: argument 'cache'.*\(2\), got 1"):
        m.jvp(x, cache[:1])
    _, tcache = m.jvp(x, cache)
    with pytest.raises(ValueError, match=r"Sequential.backward_jvp: argument 'tcache'"):
        m.backward_jvp(np.zeros((2, 5)), np.zeros((2, 5)), cache, tcache[:1])


def test_jvp_checks_shapes():
    conv = Conv2d(2, 3, 3, dtype=F64, rng=0)
    _, cache = conv.forward(np.zeros((2, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"Conv2d.*'x_dot' expected shape \(2, 2, 5, 5\)"):
        conv.jvp(np.zeros((2, 2, 5, 6)), cache)
    dense = Dense(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"Dense.*'x_dot'"):
        dense.jvp(np.zeros((2, 4)), dense.forward(np.zeros((2, 3)))[1])
    flat = Flatten()
    with pytest.raises(ValueError, match=r"Flatten.*'x_dot'"):
        flat.jvp(np.zeros((2, 6)), flat.forward(np.zeros((2, 2, 3)))[1])


def test_float32_runs():
    m = Sequential(Conv2d(1, 2, 3, rng=0), LeakyReLU(0.2), LayerNorm((2, 3, 3)), Flatten(),
                   Dense(18, 1, rng=1))
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32)
    y, cache = m.forward(x)
    y_dot, tcache = m.jvp(x, cache)
    dx, dx_dot = m.backward_jvp(np.ones_like(y), np.zeros_like(y), cache, tcache)
    assert y_dot.dtype == dx.dtype == dx_dot.dtype == np.float32
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in m.grads.values())


def test_plan_refuses_fused_caches_and_delegates_second_order():
    from nanogan.fast import Plan

    m = Sequential(Dense(4, 5, dtype=F64, rng=0), LeakyReLU(0.2))
    x = np.zeros((2, 4))
    plan = Plan(m)
    _, fused = plan.forward(x)  # one entry for the fused pair
    with pytest.raises(ValueError, match="one entry per layer"):
        plan.jvp(x, fused)
    _, cache = m.forward(x)  # the plan runs the second order on the plain layers
    y_dot, tcache = plan.jvp(np.ones((2, 4)), cache)
    np.testing.assert_array_equal(y_dot, m.jvp(np.ones((2, 4)), cache)[0])
    dx, dx_dot = plan.backward_jvp(np.ones((2, 5)), np.zeros((2, 5)), cache, tcache)
    assert dx.shape == dx_dot.shape == (2, 4)
