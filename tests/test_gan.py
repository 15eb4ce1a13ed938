"""Algorithm 1 end to end: gradients through G and D, equality with PyTorch, k, clipping, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from nanogan import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    LeakyReLU,
    Module,
    ReLU,
    Sequential,
    Tanh,
    losses,
    optim,
)
from nanogan.gan import GAN, NonFiniteError
from nanogan.gradcheck import numerical_gradient, rel_error
from nanogan.noise import standard_normal

F64 = np.float64
LOSSES = ["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"]
OPTIMIZERS = ["sgd", "adam", "rmsprop"]


def small_dcgan(seed: int = 0, dtype=F64, z_dim: int = 6) -> tuple[Sequential, Sequential]:
    """A DCGAN in miniature: z (N, z_dim, 1, 1) -> (N, 1, 8, 8) -> logits (N, 1)."""
    rng = np.random.default_rng(seed)
    G = Sequential(
        ConvTranspose2d(z_dim, 4, 4, 1, 0, bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(4, dtype=dtype), ReLU(),
        ConvTranspose2d(4, 1, 4, 2, 1, rng=rng, dtype=dtype), Tanh(),
    )
    D = Sequential(
        Conv2d(1, 4, 4, 2, 1, rng=rng, dtype=dtype), LeakyReLU(0.2),
        Conv2d(4, 4, 3, 1, 1, bias=False, rng=rng, dtype=dtype), BatchNorm2d(4, dtype=dtype),
        LeakyReLU(0.2),
        Conv2d(4, 1, 4, 1, 0, rng=rng, dtype=dtype), Flatten(),
    )
    return G, D


def small_mlp(seed: int = 0, dtype=F64) -> tuple[Sequential, Sequential]:
    rng = np.random.default_rng(seed)
    G = Sequential(Dense(4, 8, rng=rng, dtype=dtype), LeakyReLU(0.2),
                   Dense(8, 6, rng=rng, dtype=dtype), Tanh())
    D = Sequential(Dense(6, 8, rng=rng, dtype=dtype), LeakyReLU(0.2),
                   Dense(8, 1, rng=rng, dtype=dtype))
    return G, D


def make_opt(kind: str, model, weight_decay: float = 0.0):
    if kind == "sgd":
        return optim.SGD(model, lr=0.05, momentum=0.9, weight_decay=weight_decay)
    if kind == "adam":
        return optim.Adam(model, lr=2e-3, betas=(0.5, 0.999), weight_decay=weight_decay)
    return optim.RMSprop(model, lr=1e-3, weight_decay=weight_decay)


# ------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_generator_gradient_end_to_end(loss_name, arch, fast, kernel_set):
    """dL_G/dtheta_G through D equals central differences; D's gradients stay zero (on the fast
    path and on the plain one)."""
    G, D = small_mlp() if arch == "mlp" else small_dcgan()
    gan = GAN(G, D, loss=loss_name, fast=fast)
    z = gan.sample_noise(3, np.random.default_rng(1))
    loss = losses.get(loss_name)

    D.zero_grad()
    G.zero_grad()
    run_g, run_d = gan._run(G), gan._run(D)
    fake, c_g = run_g.forward(z)
    s, c_d = run_d.forward(fake)
    _, ds = loss.g_loss(s)
    run_g.backward(run_d.backward(ds, c_d, param_grads=False), c_g)

    def g_loss() -> float:
        return loss.g_loss(D.forward(G.forward(z)[0])[0])[0]

    for name, p in G.params.items():
        num = numerical_gradient(g_loss, p)
        assert np.abs(num).max() > 1e-6, f"G.{name} has no influence on the loss"
        err = rel_error(G.grads[name], num)
        assert err < 1e-6, f"G.{name}: relative error {err:.2e}"
    for name, g in D.grads.items():
        assert not g.any(), f"the generator step wrote a gradient into D.{name}"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("loss_name", LOSSES)
def test_discriminator_gradient_end_to_end(loss_name, fast, kernel_set):
    """d_step's dL_D/dtheta_D equals central differences, and G receives no gradient."""
    G, D = small_dcgan(1)
    gan = GAN(G, D, loss=loss_name, d_opt=optim.SGD(D, lr=0.0), fast=fast)
    rng = np.random.default_rng(2)
    x = np.tanh(rng.standard_normal((3, 1, 8, 8)))
    z = gan.sample_noise(3, rng)
    G.zero_grad()
    gan.d_step(x, z)  # lr = 0: only the gradients are left behind
    loss = losses.get(loss_name)
    fake = G.forward(z)[0]

    def d_loss() -> float:
        return loss.d_loss(D.forward(x)[0], D.forward(fake)[0])[0]

    for name, p in D.params.items():
        num = numerical_gradient(d_loss, p)
        err = rel_error(D.grads[name], num)
        # the Wasserstein loss is blind to D's last bias (+b on real and on fake cancels): there
        # both gradients are zero up to rounding, and the relative error means nothing
        assert err < 1e-6 or np.abs(D.grads[name] - num).max() < 1e-8, \
            f"D.{name}: relative error {err:.2e}"
    for name, g in G.grads.items():
        assert not g.any(), f"the discriminator step wrote a gradient into G.{name}"


def test_generator_step_leaves_discriminator_unchanged():
    G, D = small_dcgan(3)
    gan = GAN(G, D)
    before = D.state_dict()
    g_before = G.state_dict()
    D.zero_grad()
    gan.g_step(gan.sample_noise(4, np.random.default_rng(0)))
    for k, g in D.grads.items():  # D's gradients untouched too, not only its parameters
        assert not g.any(), f"g_step wrote a gradient into D.{k}"
    after = D.state_dict()
    for k in before:
        if "running" in k or "num_batches" in k:
            continue  # training-mode BatchNorm statistics move, as in PyTorch
        np.testing.assert_array_equal(before[k], after[k], err_msg=f"D.{k} changed in g_step")
    changed = [k for k in g_before if not np.array_equal(g_before[k], G.state_dict()[k])]
    assert any(k.endswith("weight") for k in changed), "g_step did not update G"


# ------------------------------------------------------------------------------- vs PyTorch
def _torch_losses(torch, name):
    F = torch.nn.functional

    def bce(s, t):
        return F.binary_cross_entropy_with_logits(s, torch.full_like(s, t))

    d = {
        "minimax": (lambda r, f: bce(r, 1.0) + bce(f, 0.0), lambda f: -bce(f, 0.0)),
        "nonsaturating": (lambda r, f: bce(r, 1.0) + bce(f, 0.0), lambda f: bce(f, 1.0)),
        "wasserstein": (lambda r, f: f.mean() - r.mean(), lambda f: -f.mean()),
        "lsgan": (lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean(),
                  lambda f: 0.5 * ((f - 1) ** 2).mean()),
        "hinge": (lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(), lambda f: -f.mean()),
    }
    return d[name]


def _torch_twin(torch, model):
    """The PyTorch module with the same architecture and weights as a nanogan Sequential."""
    nn = torch.nn
    mods = []
    for m in model.layers:
        name = type(m).__name__
        if name == "Dense":
            mods.append(nn.Linear(m.in_features, m.out_features, bias=m.bias is not None))
        elif name == "Conv2d":
            mods.append(nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                  m.padding, bias=m.bias is not None))
        elif name == "ConvTranspose2d":
            mods.append(nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size,
                                           m.stride, m.padding, m.output_padding,
                                           bias=m.bias is not None))
        elif name == "BatchNorm2d":
            mods.append(nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum))
        elif name == "LeakyReLU":
            mods.append(nn.LeakyReLU(m.negative_slope) if m.negative_slope else nn.ReLU())
        elif name == "ReLU":
            mods.append(nn.ReLU())
        elif name == "Tanh":
            mods.append(nn.Tanh())
        elif name == "Flatten":
            mods.append(nn.Flatten())
        else:
            raise AssertionError(name)
    tm = nn.Sequential(*mods).double()
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    return tm


def _torch_opt(torch, kind, module, weight_decay=0.0):
    if kind == "sgd":
        return torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9,
                               weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(module.parameters(), lr=2e-3, betas=(0.5, 0.999),
                                weight_decay=weight_decay)
    return torch.optim.RMSprop(module.parameters(), lr=1e-3, weight_decay=weight_decay)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("opt_kind", OPTIMIZERS)
@pytest.mark.parametrize("loss_name", LOSSES)
def test_algorithm1_matches_pytorch(torch, loss_name, opt_kind, fast, kernel_set):
    """Two full iterations (k = 2, so 4 D steps and 2 G steps) equal PyTorch, every parameter
    and every BatchNorm buffer, in float64, on the fast path and on the plain one."""
    G, D = small_dcgan(7)
    tG, tD = _torch_twin(torch, G), _torch_twin(torch, D)
    wd = 1e-3 if opt_kind == "adam" else 0.0
    clip = 0.5 if loss_name == "wasserstein" else None
    gan = GAN(G, D, loss=loss_name, g_opt=make_opt(opt_kind, G, wd),
              d_opt=make_opt(opt_kind, D, wd), k=2, clip=clip, fast=fast)
    tg_opt, td_opt = _torch_opt(torch, opt_kind, tG, wd), _torch_opt(torch, opt_kind, tD, wd)
    t_dloss, t_gloss = _torch_losses(torch, loss_name)

    data_rng = np.random.default_rng(11)
    real = [np.tanh(data_rng.standard_normal((4, 1, 8, 8))) for _ in range(4)]
    rng, twin_rng = np.random.default_rng(5), np.random.default_rng(5)
    batches = iter(real)
    t_batches = iter(real)
    for _ in range(2):
        stats = gan.step(batches, rng)
        for _ in range(2):  # the same iteration in PyTorch
            x = torch.from_numpy(next(t_batches))
            z1 = torch.from_numpy(standard_normal(twin_rng, (4, 6, 1, 1), np.float64))
            fake = tG(z1)
            d_loss = t_dloss(tD(x), tD(fake.detach()))
            td_opt.zero_grad()
            d_loss.backward()
            td_opt.step()
            if clip is not None:
                with torch.no_grad():
                    for p in tD.parameters():
                        p.clamp_(-clip, clip)
        z2 = torch.from_numpy(standard_normal(twin_rng, (4, 6, 1, 1), np.float64))
        g_loss = t_gloss(tD(tG(z2)))
        tg_opt.zero_grad()
        g_loss.backward()
        tg_opt.step()
        assert abs(stats["g_loss"] - g_loss.item()) <= 1e-9 * max(1.0, abs(g_loss.item()))
        assert abs(stats["d_loss"] - d_loss.item()) <= 1e-9 * max(1.0, abs(d_loss.item()))

    for net, ours, theirs in (("G", G, tG), ("D", D, tD)):
        tstate = theirs.state_dict()
        for k, v in ours.state_dict().items():
            err = rel_error(v, tstate[k].numpy())
            assert err < 1e-8, f"{net}.{k}: relative error {err:.2e} after two iterations"


# ------------------------------------------------------------------------------- Algorithm 1
class CountingBatches:
    def __init__(self, batch):
        self.batch, self.count = batch, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.count += 1
        return self.batch


@pytest.mark.parametrize("k", [1, 3])
def test_k_discriminator_steps_consume_k_batches(k):
    G, D = small_mlp(0)
    gan = GAN(G, D, k=k)
    batches = CountingBatches(np.zeros((5, 6)))
    gan.step(batches, np.random.default_rng(0))
    gan.step(batches, np.random.default_rng(1))
    assert batches.count == 2 * k
    assert gan.steps == 2


def test_clipping_holds_after_every_step():
    G, D = small_mlp(0)
    gan = GAN(G, D, loss="wasserstein", d_opt=optim.RMSprop(D, lr=0.5), clip=0.01)
    batches = CountingBatches(np.ones((5, 6)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        gan.step(batches, rng)
        for name, p in D.params.items():
            assert np.abs(p).max() <= 0.01, name
            assert np.isclose(np.abs(p).max(), 0.01), "lr 0.5 should push weights to the bound"


def test_nan_loss_stops_with_step_and_quantity():
    G, D = small_mlp(0)
    gan = GAN(G, D)
    batches = CountingBatches(np.full((5, 6), np.nan))
    with pytest.raises(NonFiniteError, match=r"step 1: d_loss"):
        gan.step(batches, np.random.default_rng(0))
    G, D = small_mlp(0)
    gan = GAN(G, D)
    gan.check_finite(params=True)
    D.params["0.weight"][0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"D\.0\.weight"):
        gan.check_finite(params=True)


def test_bad_configuration_errors():
    G, D = small_mlp(0)
    with pytest.raises(ValueError, match="k"):
        GAN(G, D, k=0)
    with pytest.raises(ValueError, match="clip"):
        GAN(G, D, clip=-1.0)
    with pytest.raises(ValueError, match="hinge"):
        GAN(G, D, loss="no-such-loss")
    assert GAN(G, D).z_shape == (4,)
    assert GAN(*small_dcgan()).z_shape == (6, 1, 1)


class _Plain(Module):
    """A user-written wrapper whose backward lacks the ``input_grad`` keyword."""

    def __init__(self, inner: Module) -> None:
        super().__init__()
        self.add_module("inner", inner)
        self.calls: list[dict] = []

    def forward(self, x, train=True):
        return self._children["inner"].forward(x, train)

    def backward(self, dy, cache, *, param_grads=True):
        self.calls.append({"param_grads": param_grads})
        return self._children["inner"].backward(dy, cache, param_grads=param_grads)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_steps_skip_input_grads_and_accept_modules_without_the_keyword(arch, fast, monkeypatch):
    """d_step backprops D and g_step backprops G with ``input_grad=False`` (the D step's and the
    noise's input gradients are never used); the result equals a run that computes them, and a
    module whose backward lacks the keyword is called without it."""
    from nanogan.fast import Plan

    make = small_mlp if arch == "mlp" else small_dcgan
    real = np.random.default_rng(9).uniform(-1, 1, (4, 6) if arch == "mlp" else (4, 1, 8, 8))
    seen: list[tuple[int, bool]] = []
    runner = Plan if fast else Sequential  # what runs a Sequential inside GAN
    original = runner.backward

    def spy(self, dy, cache, *, param_grads=True, input_grad=True, **kw):
        seen.append((id(getattr(self, "model", self)), input_grad))
        return original(self, dy, cache, param_grads=param_grads, input_grad=input_grad, **kw)

    runs = []
    for wrap in (False, True):
        G, D = make(seed=3)
        if wrap:
            G, D = _Plain(G), _Plain(D)
        gan = GAN(G, D, z_shape=(4,) if arch == "mlp" else (6, 1, 1), fast=fast)
        monkeypatch.setattr(runner, "backward", spy)
        seen.clear()
        gan.step([real], np.random.default_rng(1))
        monkeypatch.setattr(runner, "backward", original)
        if not wrap:
            ids = {"G": id(G), "D": id(D)}
            assert (ids["D"], False) in seen and (ids["G"], False) in seen
            assert (ids["D"], True) in seen  # g_step: dL/dG(z) through D
        elif not fast:
            assert all(v for _, v in seen)
            assert G.calls and D.calls
        runs.append({**G.state_dict(), **{"D." + k: v for k, v in D.state_dict().items()}})
    for (k, v), w in zip(runs[0].items(), runs[1].values()):
        if fast:  # the plan against the wrapped (plain) layers: equal up to the order of sums
            np.testing.assert_allclose(v, w, rtol=1e-12, atol=1e-15, err_msg=k)
        else:
            np.testing.assert_array_equal(v, w, err_msg=k)
