"""nanogan.penalties: WGAN-GP and R1 parameter gradients against PyTorch and central differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dense,
    Flatten,
    LayerNorm,
    LeakyReLU,
    Module,
    ReLU,
    Sequential,
    Tanh,
    numerical_gradient,
    rel_error,
)
from nanogan.penalties import gradient_penalty, input_gradient, interpolate, r1_penalty

F64 = np.float64
FIXTURE_OK = settings(max_examples=10, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
TOL = 1e-8


def dense_critic(seed=0, dtype=F64):
    return Sequential(Dense(6, 8, dtype=dtype, rng=seed), LeakyReLU(0.2),
                      Dense(8, 8, dtype=dtype, rng=seed + 1), Tanh(),
                      Dense(8, 1, dtype=dtype, rng=seed + 2))


def conv_critic(seed=0, dtype=F64):
    """Conv2d + LeakyReLU + LayerNorm + Flatten + Dense (WGAN-GP's critic in miniature)."""
    m = Sequential(Conv2d(1, 3, 4, stride=2, padding=1, dtype=dtype, rng=seed), LeakyReLU(0.2),
                   Conv2d(3, 4, 3, stride=2, padding=1, dtype=dtype, rng=seed + 1),
                   LayerNorm((4, 2, 2), dtype=dtype), LeakyReLU(0.2),
                   Flatten(), Dense(16, 1, dtype=dtype, rng=seed + 2))
    g = np.random.default_rng(seed)
    for k in ("3.weight", "3.bias"):  # off PyTorch's ones and zeros
        m.params[k][...] += 0.3 * g.standard_normal(m.params[k].shape)
    return m


CRITICS = {"dense": (dense_critic, (6,)), "conv": (conv_critic, (1, 8, 8))}


def torch_critic(torch, m):
    nn = torch.nn
    mods = []
    for c in m.layers:
        if isinstance(c, Dense):
            mods.append(nn.Linear(c.in_features, c.out_features))
        elif isinstance(c, Conv2d):
            mods.append(nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride,
                                  c.padding))
        elif isinstance(c, LayerNorm):
            mods.append(nn.LayerNorm(c.normalized_shape, c.eps))
        elif isinstance(c, LeakyReLU):
            mods.append(nn.LeakyReLU(c.negative_slope))
        elif isinstance(c, Tanh):
            mods.append(nn.Tanh())
        elif isinstance(c, Flatten):
            mods.append(nn.Flatten())
    t = nn.Sequential(*mods).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    return t


def torch_penalty(torch, t, x, kind, coef, target=1.0):
    """The penalty and its parameter gradients, the way WGAN-GP's and R1's authors wrote them."""
    xt = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(t(xt).sum(), xt, create_graph=True)
    norms = g.reshape(len(x), -1).norm(2, dim=1)
    p = coef * ((norms - target) ** 2).mean() if kind == "gp" else coef / 2 * (norms**2).mean()
    t.zero_grad()
    p.backward()
    grads = {k: (v.grad.numpy() if v.grad is not None else np.zeros(tuple(v.shape)))
             for k, v in t.named_parameters()}
    return p.item(), grads


def ours(m, x, kind, coef, target=1.0):
    m.zero_grad()
    if kind == "gp":
        value = gradient_penalty(m, x, weight=coef, target=target)
    else:
        value = r1_penalty(m, x, gamma=coef)
    return value, {k: g.copy() for k, g in m.grads.items()}


@given(st.sampled_from(sorted(CRITICS)), st.sampled_from(["gp", "r1"]), st.integers(1, 5),
       st.sampled_from([10.0, 1.0, 0.1]), st.sampled_from([1.0, 0.5]), st.integers(0, 2**16))
@FIXTURE_OK
def test_matches_torch(torch, critic, kind, N, coef, target, seed):
    make, shape = CRITICS[critic]
    m = make(seed)
    x = np.random.default_rng(seed).standard_normal((N, *shape))
    value, grads = ours(m, x, kind, coef, target)
    tvalue, tgrads = torch_penalty(torch, torch_critic(torch, m), x, kind, coef, target)
    assert isinstance(value, float)
    assert abs(value - tvalue) <= TOL * abs(tvalue)
    assert set(grads) == set(tgrads)
    errs = {k: rel_error(grads[k], tgrads[k]) for k in grads}
    assert max(errs.values()) < TOL, errs
    assert not grads[f"{len(m) - 1}.bias"].any()  # the last bias does not move dD/dx


@pytest.mark.parametrize("critic", sorted(CRITICS))
@pytest.mark.parametrize("kind", ["gp", "r1"])
def test_central_differences(critic, kind):
    """dP/dtheta against central differences of the penalty's value, without PyTorch."""
    make, shape = CRITICS[critic]
    m = make(3)
    x = np.random.default_rng(3).standard_normal((3, *shape))
    _, grads = ours(m, x, kind, 10.0, 0.5)

    def value() -> float:
        saved = {k: g.copy() for k, g in m.grads.items()}
        v = ours(m, x, kind, 10.0, 0.5)[0]
        for k, g in m.grads.items():
            g[...] = saved[k]
        return v

    for k, p in m.params.items():
        err = rel_error(grads[k], numerical_gradient(value, p, h=1e-6))
        assert err < 1e-6, (k, err)


def test_adds_into_grads():
    m = conv_critic(1)
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8))
    _, once = ours(m, x, "gp", 10.0)
    for g in m.grads.values():
        g[...] = 1.0
    gradient_penalty(m, x)
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, once[k] + 1.0, rtol=1e-13)


def test_fused_plan_is_penalised_as_its_network():
    """A critic compiled by nanogan.fast (as GAN trains it) gives the plain network's numbers."""
    from nanogan import fast

    m = conv_critic(6)
    x = np.random.default_rng(6).standard_normal((3, 1, 8, 8))
    for kind in ("gp", "r1"):
        value, grads = ours(m, x, kind, 10.0)
        plan = fast.compile(m)
        plan.zero_grad()
        pv = gradient_penalty(plan, x) if kind == "gp" else r1_penalty(plan, x)
        assert pv == value
        for k, g in plan.grads.items():
            np.testing.assert_array_equal(g, grads[k])
        np.testing.assert_array_equal(input_gradient(plan, x), input_gradient(m, x))


def test_input_gradient_matches_torch(torch):
    m = conv_critic(2)
    x = np.random.default_rng(2).standard_normal((3, 1, 8, 8))
    m.zero_grad()
    g = input_gradient(m, x)
    xt = torch.tensor(x, requires_grad=True)
    (gt,) = torch.autograd.grad(torch_critic(torch, m)(xt).sum(), xt)
    assert rel_error(g, gt.numpy()) < 1e-12
    assert all(not v.any() for v in m.grads.values())


def test_zero_input_gradient_is_finite(torch):
    """A sample whose gradient is exactly 0 (every unit dead): the norm's derivative is taken as 0,
    as PyTorch does."""
    m = Sequential(Dense(3, 4, dtype=F64, rng=0), ReLU(), Dense(4, 1, dtype=F64, rng=1))
    m.params["0.weight"][...] = np.abs(m.params["0.weight"])
    x = np.array([[1.0, 2.0, -1.0], [-100.0, -100.0, -100.0]])
    assert input_gradient(m, x)[1].tolist() == [0.0, 0.0, 0.0]
    value, grads = ours(m, x, "gp", 10.0)
    tvalue, tgrads = torch_penalty(torch, torch_critic(torch, m), x, "gp", 10.0)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads.values())
    assert abs(value - tvalue) <= TOL * tvalue
    assert max(rel_error(grads[k], tgrads[k]) for k in grads) < TOL


def test_batchnorm_is_refused():
    x = np.zeros((4, 6))
    for m in (Sequential(Dense(6, 4, dtype=F64), BatchNorm1d(4, dtype=F64), LeakyReLU(0.2),
                         Dense(4, 1, dtype=F64)),
              Sequential(Sequential(Conv2d(1, 2, 3, dtype=F64), BatchNorm2d(2, dtype=F64)),
                         Flatten(), Dense(2, 1, dtype=F64))):
        xi = x if isinstance(m[0], Dense) else np.zeros((2, 1, 3, 3))
        before = {k: v.copy() for k, v in m.state_dict().items()}
        for penalty in (gradient_penalty, r1_penalty):
            with pytest.raises(ValueError, match=r"BatchNorm[12]d.*per-sample.*LayerNorm") as e:
                penalty(m, xi)
            assert penalty.__name__ in str(e.value)
            assert "'1'" in str(e.value) or "'0.1'" in str(e.value)  # names the layer
        # nothing moved: neither the gradients nor the running statistics
        assert all(not g.any() for g in m.grads.values())
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v, before[k])


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match=r"r1_penalty: argument 'x' expected.*N >= 1.*\(0, 6\)"):
        r1_penalty(dense_critic(), np.zeros((0, 6)))


def test_layer_without_second_order_is_refused():
    class Square(Module):
        """A user's layer with a first-order backward only."""

        def forward(self, x, train=True):
            return x * x, x

        def backward(self, dy, cache, *, param_grads=True, input_grad=True):
            return 2 * cache * dy

    m = Sequential(Dense(4, 4, dtype=F64), Square(), Dense(4, 1, dtype=F64))
    with pytest.raises(NotImplementedError,
                       match=r"layer '1' \(Square\).*second-order.*Conv2d, ConvTranspose2d"):
        gradient_penalty(m, np.zeros((2, 4)))


def test_float32_critic():
    m = conv_critic(0, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    v1 = gradient_penalty(m, x)
    v2 = r1_penalty(m, x)
    assert np.isfinite(v1) and np.isfinite(v2)
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in m.grads.values())
    # and the same numbers as the float64 critic, to float32 precision
    m64 = conv_critic(0)
    m64.load_state_dict(m.state_dict())
    assert abs(gradient_penalty(m64, x.astype(F64)) - v1) < 1e-4 * abs(v1)


def test_interpolate():
    g = np.random.default_rng(0)
    real, fake = g.standard_normal((5, 1, 4, 4)), g.standard_normal((5, 1, 4, 4))
    x = interpolate(real, fake, np.random.default_rng(7))
    assert x.shape == real.shape and x.dtype == real.dtype
    np.testing.assert_array_equal(x, interpolate(real, fake, 7))  # a seed, the same draws
    # each sample on its own segment: x_n = fake_n + e_n (real_n - fake_n), one e_n in [0, 1)
    e = ((x - fake) / (real - fake)).reshape(5, -1)
    np.testing.assert_allclose(e, e[:, :1] * np.ones_like(e), rtol=1e-9)
    assert np.all((e >= 0) & (e < 1)) and np.ptp(e[:, 0]) > 0
    assert interpolate(real.astype(np.float32), fake.astype(np.float32), 0).dtype == np.float32
    with pytest.raises(ValueError, match=r"same shape.*\(5, 1, 4, 4\).*\(4, 1, 4, 4\)"):
        interpolate(real, fake[:4], 0)


def test_wgan_gp_step_lowers_the_penalty():
    """Descending the penalty alone pulls the input-gradient norms towards the target."""
    from nanogan.optim import Adam

    m = dense_critic(4)
    x = np.random.default_rng(4).standard_normal((16, 6))
    opt = Adam(m, lr=3e-2)
    first = None
    for _ in range(60):
        m.zero_grad()
        v = gradient_penalty(m, x, weight=1.0, target=2.0)
        first = v if first is None else first
        opt.step()
    assert v < 0.1 * first


def test_docs_example_runs(capsys):
    """The critic step of docs/gradient-penalties.md runs as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "gradient-penalties.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    exec(compile(code, "docs/gradient-penalties.md", "exec"), {})
    out = capsys.readouterr().out
    assert "critic loss" in out and "gradient penalty" in out
