"""Optimizers: step for step equal to torch.optim on the same model and the same gradients."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan import Dense, LeakyReLU, Sequential, optim
from nanogan.gradcheck import rel_error

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

#: (optimizer, keyword arguments) pairs, the same names in nanogan and torch.optim.
CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 2e-4, "betas": (0.5, 0.999)}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.003, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.05}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CONFIGS]


def make_model(dtype=np.float64, seed=0) -> Sequential:
    return Sequential(Dense(4, 6, rng=seed, dtype=dtype), LeakyReLU(0.2),
                      Dense(6, 3, rng=seed + 1, dtype=dtype))


def torch_twin(torch, model):
    """The same architecture in PyTorch, holding our parameters."""
    nn = torch.nn
    dtype = torch.float64 if model[0].dtype == np.float64 else torch.float32
    tm = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 3)).to(dtype)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return tm


def feed(torch, model, tm, grads):
    """Set the same gradients in both models."""
    model.zero_grad()
    for k, g in model.grads.items():
        g += grads[k]
    for k, p in tm.named_parameters():
        p.grad = torch.tensor(grads[k], dtype=p.dtype)


def random_grads(model, rng, scale=1.0):
    return {k: (scale * rng.standard_normal(p.shape)).astype(p.dtype)
            for k, p in model.params.items()}


def max_param_error(model, tm):
    ref = {k: v.detach().numpy() for k, v in tm.named_parameters()}
    return max(rel_error(p, ref[k]) for k, p in model.params.items())


# ---------------------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=IDS)
def test_same_gradients_same_steps_as_torch(kernel_set, torch, name, kw, rng):
    model = make_model()
    tm = torch_twin(torch, model)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tm.parameters(), **kw)
    for _ in range(6):
        feed(torch, model, tm, random_grads(model, rng))
        opt.step()
        topt.step()
        assert max_param_error(model, tm) < 1e-13
    assert opt.step_count == 6


@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=IDS)
def test_backprop_training_matches_torch(kernel_set, torch, name, kw, rng):
    """A few real training steps: backward of the same loss in both, then step."""
    model = make_model(seed=3)
    tm = torch_twin(torch, model)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tm.parameters(), **kw)
    for _ in range(5):
        x, w = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
        opt.zero_grad()
        _, cache = model.forward(x)
        model.backward(w, cache)  # L = sum(y * w)
        opt.step()
        topt.zero_grad()
        (tm(torch.from_numpy(x)) * torch.from_numpy(w)).sum().backward()
        topt.step()
        assert max_param_error(model, tm) < 1e-12


@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=IDS)
def test_float32_matches_torch(kernel_set, torch, name, kw, rng):
    model = make_model(np.float32)
    tm = torch_twin(torch, model)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tm.parameters(), **kw)
    for _ in range(4):
        feed(torch, model, tm, random_grads(model, rng))
        opt.step()
        topt.step()
        assert max_param_error(model, tm) < 1e-5
    for k, p in model.params.items():
        assert p.dtype == np.float32
        for arr in opt.state[k].values():
            assert arr.dtype == np.float32 and arr.shape == p.shape


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
@given(lr=st.floats(0, 1), momentum=st.floats(0, 0.99), dampening=st.floats(0, 1),
       nesterov=st.booleans(), beta1=st.floats(0, 0.99), beta2=st.floats(0, 0.9999),
       eps=st.sampled_from([1e-8, 1e-3, 0.0]), weight_decay=st.sampled_from([0.0, 1e-3, 0.5]),
       gscale=st.sampled_from([1e-6, 1.0, 1e3]), seed=st.integers(0, 2**16))
def test_hyper_parameters_match_torch(kernel_set, torch, name, lr, momentum, dampening, nesterov,
                                      beta1, beta2, eps, weight_decay, gscale, seed):
    if name == "SGD":
        if nesterov:
            momentum, dampening = max(momentum, 0.1), 0.0
        kw = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                  weight_decay=weight_decay)
    elif name == "Adam":
        kw = dict(lr=lr, betas=(beta1, beta2), eps=eps or 1e-12, weight_decay=weight_decay)
    else:
        kw = dict(lr=lr, alpha=beta2, eps=eps or 1e-12, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    model = make_model(seed=seed)
    tm = torch_twin(torch, model)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tm.parameters(), **kw)
    for _ in range(3):
        feed(torch, model, tm, random_grads(model, rng, gscale))
        opt.step()
        topt.step()
        assert max_param_error(model, tm) < 1e-12


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_lr_schedule_between_steps(kernel_set, torch, name, rng):
    kw = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {"lr": 0.1}
    model = make_model()
    tm = torch_twin(torch, model)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tm.parameters(), **kw)
    for lr in (0.1, 0.03, 0.0, 0.01):
        opt.lr = lr
        topt.param_groups[0]["lr"] = lr
        before = {k: p.copy() for k, p in model.params.items()}
        feed(torch, model, tm, random_grads(model, rng))
        opt.step()
        topt.step()
        assert max_param_error(model, tm) < 1e-13
        if lr == 0.0:
            for k, p in model.params.items():
                np.testing.assert_array_equal(p, before[k])
    assert opt.state_dict()["lr"] == 0.01


def test_params_updated_in_place_and_zero_grad(kernel_set, rng):
    model = make_model()
    arrays = {k: p for k, p in model.params.items()}
    opt = optim.Adam(model, lr=0.1)
    before = {k: p.copy() for k, p in arrays.items()}
    for g in model.grads.values():
        g += rng.standard_normal(g.shape)
    opt.step()
    for k, p in model.params.items():
        assert p is arrays[k]
        assert not np.array_equal(p, before[k])
    opt.zero_grad()
    assert all(not g.any() for g in model.grads.values())


# ---------------------------------------------------------------------------- state dict
@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=IDS)
def test_state_dict_round_trip_is_bit_identical(kernel_set, name, kw):
    grads = [random_grads(make_model(), np.random.default_rng(i)) for i in range(6)]

    def run(model, opt, gs):
        for g in gs:
            opt.zero_grad()
            for k, a in model.grads.items():
                a += g[k]
            opt.step()

    straight = make_model()
    opt = getattr(optim, name)(straight, **kw)
    run(straight, opt, grads)

    first = make_model()
    opt1 = getattr(optim, name)(first, **kw)
    run(first, opt1, grads[:3])
    buf = io.BytesIO()
    np.savez(buf, **{f"model.{k}": v for k, v in first.state_dict().items()},
             **{f"optim.{k}": v for k, v in opt1.state_dict().items()})
    buf.seek(0)
    with np.load(buf) as saved:
        model_state = {k[6:]: saved[k] for k in saved.files if k.startswith("model.")}
        optim_state = {k[6:]: saved[k] for k in saved.files if k.startswith("optim.")}

    resumed = make_model(seed=7)  # different weights until loaded
    resumed.load_state_dict(model_state)
    other = {k: v for k, v in kw.items() if k in ("momentum", "nesterov", "dampening")}
    opt2 = getattr(optim, name)(resumed, lr=123.0, **other)  # lr etc. come from the state
    opt2.load_state_dict(optim_state)
    assert opt2.lr == kw["lr"] and opt2.step_count == 3
    run(resumed, opt2, grads[3:])

    for k, p in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], p)
    s_straight, s_resumed = opt.state_dict(), opt2.state_dict()
    assert list(s_straight) == list(s_resumed)
    for k, v in s_straight.items():
        np.testing.assert_array_equal(s_resumed[k], v)


def test_state_dict_layout():
    model = make_model()
    adam = optim.Adam(model, lr=0.5, betas=(0.5, 0.9))
    sd = adam.state_dict()
    assert list(sd)[:6] == ["step", "lr", "beta1", "beta2", "eps", "weight_decay"]
    for k in ("step", "lr", "beta1", "beta2", "eps", "weight_decay"):
        assert sd[k].shape == ()
    assert sd["step"].dtype == np.int64 and sd["lr"] == 0.5 and sd["beta2"] == 0.9
    assert sd["state.0.weight.exp_avg"].shape == (6, 4)
    assert sd["state.2.bias.exp_avg_sq"].shape == (3,)
    assert {k for k in sd if k.startswith("state.")} == {
        f"state.{p}.{b}" for p in model.params for b in ("exp_avg", "exp_avg_sq")}
    assert not any(k.startswith("state.") for k in optim.SGD(model, lr=0.1).state_dict())
    assert "state.0.bias.momentum_buffer" in optim.SGD(model, 0.1, momentum=0.5).state_dict()
    assert "state.2.weight.square_avg" in optim.RMSprop(model).state_dict()
    sd["state.0.weight.exp_avg"][...] = 1  # a copy: the optimizer's state is untouched
    assert not adam.state["0.weight"]["exp_avg"].any()
    adam.load_state_dict(dict(sd, step=np.array(5), lr=np.array(0.25)))
    assert adam.step_count == 5 and adam.lr == 0.25
    assert adam.state["0.weight"]["exp_avg"].all()


def test_load_state_dict_errors_name_the_key():
    model = make_model()
    adam = optim.Adam(model)
    sd = adam.state_dict()
    with pytest.raises(ValueError, match=r"state\.0\.weight\.momentum_buffer"):
        optim.SGD(model, 0.1, momentum=0.9).load_state_dict(sd)
    bad = dict(sd)
    bad["state.2.weight.exp_avg"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"state\.2\.weight\.exp_avg.*\(3, 6\).*\(3, 5\)"):
        adam.load_state_dict(bad)
    missing = dict(sd)
    del missing["step"]
    with pytest.raises(ValueError, match=r"missing keys.*'step'"):
        adam.load_state_dict(missing)
    extra = dict(sd, foo=np.zeros(()))
    with pytest.raises(ValueError, match=r"unexpected keys.*'foo'"):
        adam.load_state_dict(extra)
    invalid = dict(sd, beta1=np.array(1.5))
    with pytest.raises(ValueError, match="beta"):
        adam.load_state_dict(invalid)
    assert adam.beta1 == 0.9  # an invalid state leaves the optimizer as it was


# ---------------------------------------------------------------------------- validation
INVALID = [
    ("SGD", {"lr": -0.1}),
    ("SGD", {"lr": float("nan")}),
    ("SGD", {"lr": 0.1, "momentum": -0.5}),
    ("SGD", {"lr": 0.1, "weight_decay": -1e-4}),
    ("SGD", {"lr": 0.1, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}),
    ("Adam", {"lr": -1e-3}),
    ("Adam", {"betas": (1.0, 0.999)}),
    ("Adam", {"betas": (0.9, -0.1)}),
    ("Adam", {"eps": -1e-8}),
    ("Adam", {"weight_decay": -0.1}),
    ("RMSprop", {"lr": -0.01}),
    ("RMSprop", {"alpha": -0.1}),
    ("RMSprop", {"eps": -1.0}),
    ("RMSprop", {"weight_decay": -1.0}),
]


@pytest.mark.parametrize(("name", "kw"), INVALID,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                              for n, kw in INVALID])
def test_invalid_hyper_parameters_raise_as_torch(torch, name, kw):
    with pytest.raises(ValueError, match=name):
        getattr(optim, name)(make_model(), **kw)
    if np.isnan(kw.get("lr", 0.0)):
        return  # nanogan also rejects a NaN learning rate, which torch lets through
    with pytest.raises(ValueError):
        getattr(torch.optim, name)(torch.nn.Linear(2, 2).parameters(), **kw)


def test_lr_setter_and_model_checks():
    opt = optim.SGD(make_model(), lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = -1.0
    assert opt.lr == 0.1
    with pytest.raises(ValueError, match="no parameters"):
        optim.Adam(Sequential(LeakyReLU()))
    with pytest.raises(TypeError, match="Module"):
        optim.Adam([np.zeros(3)])
    assert "lr=0.1" in repr(opt)


@pytest.mark.parametrize("kernel_set", ["reference", "numba", "cython"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_steps_all_parameters_in_one_call_with_the_same_values(kernel_set, dtype,
                                                                    monkeypatch):
    """``Adam.step`` hands every parameter to one ``ops.adam_update_many`` call; the values are
    bit for bit those of one ``adam_update`` per parameter (a subclass with its own ``_update``
    is stepped that way, through the base class)."""
    from nanogan import _kernels

    if kernel_set not in _kernels.available():
        pytest.skip(f"kernel set {kernel_set!r} not available")
    before = _kernels.get_backend()
    _kernels.set_backend(kernel_set)
    try:
        class PerParameter(optim.Adam):
            def _update(self, p, g, state):
                super()._update(p, g, state)

        runs = []
        for cls in (optim.Adam, PerParameter):
            model = make_model(dtype, seed=3)
            opt = cls(model, lr=1e-2, betas=(0.5, 0.999), weight_decay=1e-3)
            calls: list[int] = []

            def spy(*a, _calls=calls, _many=_kernels.ops.adam_update_many, **k):
                _calls.append(len(a[0]))
                return _many(*a, **k)

            monkeypatch.setattr(_kernels.ops, "adam_update_many", spy)
            rng = np.random.default_rng(1)
            for _ in range(3):
                for g in model.grads.values():
                    g[...] = rng.standard_normal(g.shape)
                opt.step()
            monkeypatch.undo()
            runs.append((model, calls))
        (fused, calls), (single, none) = runs
        assert calls == [len(fused.params)] * 3 and none == []
        for k in fused.params:
            np.testing.assert_array_equal(fused.params[k], single.params[k], err_msg=k)
    finally:
        _kernels.set_backend(before)
