"""Losses, optimizers, GAN training, penalties and checkpoints on a device array backend.

The device backend is the session's own when it is not NumPy (CuPy under
``NANOGAN_BACKEND=cupy``, as ``benchmarks/gpu_check.sh`` runs these tests), else the ``strict``
test backend, whose arrays refuse NumPy's own functions and NumPy arrays as operands, as CuPy's
do, so every test here fails on a stray ``np.`` call in the training path. Each result is compared
with the numpy backend's on the same seeds (float64; the numpy side runs the reference kernels,
which the strict kernel set is rebound from, so on strict the two agree bit for bit; on CuPy to
``conftest.DEVICE_TOL``, by ``assert_backend_close``). The tests of the strict harness itself run
on the strict backend by name.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
from conftest import DEVICE_BACKEND, assert_backend_close, on_backend

from nanogan import backend
from nanogan._strict import StrictArray
from nanogan.backend import asarray, to_numpy
from nanogan.conditional import ConditionalGAN, LabeledMinibatches
from nanogan.data import Minibatches
from nanogan.ebgan import margin_d_loss, pull_away, reconstruction_energy
from nanogan.gan import GAN, NonFiniteError
from nanogan.gradcheck import gradcheck
from nanogan.layers import Dense, LeakyReLU, Sequential
from nanogan.losses import LOSSES, bce_with_logits, get
from nanogan.noise import standard_normal
from nanogan.optim import SGD, Adam, RMSprop
from nanogan.penalized import PenalizedGAN
from nanogan.penalties import gradient_penalty, interpolate, r1_penalty
from nanogan.train import load_training_checkpoint, save_training_checkpoint, train

F64 = np.float64


@pytest.fixture
def strict():
    """The strict backend by name (for the tests of the strict harness itself, on any session);
    the previous backend afterwards."""
    with on_backend("strict"):
        yield


@contextlib.contextmanager
def numpy_reference():
    """The numpy backend with the reference kernels (bit-comparable to strict), then back."""
    with on_backend("numpy", kernels="reference"):
        yield


def on_device(value) -> bool:
    """Whether ``value`` is an array of the active backend and that backend is a device one."""
    return backend.get_backend() != "numpy" and backend.is_array(value)


def on_both(fn):
    """``fn()`` under the device backend (the active one) and under numpy: (device result,
    numpy result), arrays brought to the host."""
    assert backend.get_backend() == DEVICE_BACKEND
    got = _host(fn())
    with numpy_reference():
        want = _host(fn())
    return got, want


def _host(obj):
    if isinstance(obj, dict):
        return {k: _host(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_host(v) for v in obj)
    if isinstance(obj, np.ndarray) or backend.is_array(obj):
        return to_numpy(obj)
    return obj


def assert_same(got, want, what="result", rtol=None):
    """Equal structure; equal floats and bit-equal arrays on strict (the device tolerance on
    CuPy, or ``rtol``: ``assert_backend_close``)."""
    assert type(got) is type(want) or (isinstance(got, dict) and isinstance(want, dict)), what
    if isinstance(want, dict):
        assert set(got) == set(want), what
        for k in want:
            assert_same(got[k], want[k], f"{what}[{k!r}]", rtol)
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), what
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{what}[{i}]", rtol)
    else:
        assert_backend_close(got, want, what, rtol=rtol)


def mlp(sizes, seed):
    """Dense layers of ``sizes`` with LeakyReLU between them, float64."""
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(Dense(a, b, rng=seed + i, dtype=F64))
        if i < len(sizes) - 2:
            layers.append(LeakyReLU(0.2))
    return Sequential(*layers)


#: The relative tolerance on CuPy of results after several GAN training steps (bit equality on
#: strict): Adam's m / sqrt(v) magnifies the rounding differences of small gradients, step by step.
TRAINED = 1e-7

DATA = np.random.default_rng(123).standard_normal((96, 4))  # 2x2 images for sample grids


# ---------------------------------------------------------------------------- the backend itself
def test_strict_arrays_refuse_numpy(strict):
    a = asarray(np.ones(3))
    assert isinstance(a, StrictArray)
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        np.mean(a)
    with pytest.raises(TypeError):
        _ = a + np.ones(3)
    with pytest.raises(TypeError):
        np.asarray(a)
    assert backend.get_backend() == "strict"


def test_a_stray_numpy_call_in_a_loss_would_fail(strict, monkeypatch):
    """The comparison tests below can fail: a loss computed with np.where raises here."""
    import nanogan.losses as losses

    monkeypatch.setattr(losses.xp, "where", np.where)
    with pytest.raises(TypeError):
        get("hinge").d_loss(asarray(np.ones((4, 1))), asarray(np.ones((4, 1))))


# ---------------------------------------------------------------------------- losses
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_numpy_backend(device_backend, name):
    rng = np.random.default_rng(len(name))
    real, fake = rng.standard_normal((6, 1)) * 3, rng.standard_normal((5,)) * 3

    def run():
        loss = get(name)
        v, dr, df = loss.d_loss(asarray(real), asarray(fake))
        gv, gf = loss.g_loss(asarray(fake))
        if backend.get_backend() != "numpy":
            assert all(on_device(a) for a in (dr, df, gf))
        assert type(v) is float and type(gv) is float
        return v, dr, df, gv, gf

    got, want = on_both(run)
    assert_same(got, want)
    assert got[1].shape == (6, 1) and got[2].shape == (5,)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_finite_for_huge_logits_float32(device_backend, name):
    s = np.array([[-1e4], [-30.0], [0.0], [30.0], [1e4]], dtype=np.float32)
    loss = get(name)
    v, dr, df = loss.d_loss(asarray(s), asarray(s[::-1].copy()))
    gv, gf = loss.g_loss(asarray(s))
    assert np.isfinite(v) and np.isfinite(gv)
    for g in (dr, df, gf):
        assert on_device(g) and g.dtype == np.float32
        assert np.isfinite(to_numpy(g)).all()


def test_bce_with_logits_matches_numpy_backend(device_backend):
    s = np.random.default_rng(1).standard_normal((7, 1))
    t = np.random.default_rng(2).random((7, 1))
    got, want = on_both(lambda: bce_with_logits(asarray(s), asarray(t)))
    assert_same(got, want)


# ---------------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (SGD, {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01}),
    (Adam, {"lr": 1e-2, "betas": (0.5, 0.999)}),
    (Adam, {"lr": 1e-2, "weight_decay": 0.1}),
    (RMSprop, {"lr": 1e-2}),
    (RMSprop, {"lr": 1e-2, "alpha": 0.9, "weight_decay": 0.05}),
]


@pytest.mark.parametrize("cls, kw", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_optimizer_steps_match_numpy_backend(device_backend, cls, kw):
    grads = np.random.default_rng(5).standard_normal((4, 3 * 2 + 2))

    def run():
        model = Dense(3, 2, rng=0, dtype=F64)
        opt = cls(model, **kw)
        for bufs in opt.state.values():
            for a in bufs.values():
                assert backend.is_array(a)  # created on the parameters' backend
        for g in grads:
            model.grads["weight"][...] = asarray(g[:6].reshape(2, 3))
            model.grads["bias"][...] = asarray(g[6:])
            opt.step()
        state = opt.state_dict()
        assert all(isinstance(v, np.ndarray) for v in state.values())  # NumPy whatever backend
        return model.state_dict(), state

    got, want = on_both(run)
    assert_same(got, want)


def test_optimizer_state_dict_round_trip(device_backend):
    grads = np.random.default_rng(6).standard_normal((4, 2, 3))

    def make():
        model = Dense(3, 2, bias=False, rng=1, dtype=F64)
        return model, Adam(model, lr=0.05)

    model, opt = make()
    for g in grads[:2]:
        model.grads["weight"][...] = asarray(g)
        opt.step()
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    for g in grads[2:]:
        model.grads["weight"][...] = asarray(g)
        opt.step()
    model2, opt2 = make()
    model2.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)  # NumPy arrays in, moved to the backend
    assert on_device(opt2.state["weight"]["exp_avg"])
    for g in grads[2:]:
        model2.grads["weight"][...] = asarray(g)
        opt2.step()
    assert_same(model2.state_dict(), model.state_dict())


# ---------------------------------------------------------------------------- GAN training
def make_gan(k=1, loss="nonsaturating", clip=None, fast=False, cls=GAN, **kw):
    G = mlp((4, 8, 4), 10)
    D = mlp((4, 8, 1), 20)
    gan = cls(G, D, loss=loss, g_opt=Adam(G, lr=1e-2, betas=(0.5, 0.999)),
              d_opt=Adam(D, lr=1e-2, betas=(0.5, 0.999)), k=k, clip=clip, **kw)
    gan.fast = fast
    return gan


def run_steps(gan_kw, iterations=3, simultaneous=False):
    def run():
        gan = make_gan(**gan_kw)
        for p in gan.G.params.values():
            assert backend.is_array(p)
        batches = Minibatches(DATA, 8, rng=3)
        rng = np.random.default_rng(4)
        stats = []
        for _ in range(iterations):
            if simultaneous:
                x = next(batches)
                stats.append(gan.simultaneous_step(x, gan.sample_noise(len(x), rng)))
            else:
                stats.append(gan.step(batches, rng))
        assert all(type(v) is float for s in stats for v in s.values())
        return [dict(s) for s in stats], gan.state_dict()
    return run


@pytest.mark.parametrize("gan_kw", [
    {"k": 1},
    {"k": 2},
    {"k": 2, "loss": "wasserstein", "clip": 0.05},
    {"k": 1, "loss": "hinge", "noise": "uniform"},
], ids=["k1", "k2", "wgan-clip", "hinge-uniform"])
def test_gan_step_matches_numpy_backend(device_backend, gan_kw):
    got, want = on_both(run_steps(gan_kw))
    assert_same(got, want, rtol=TRAINED)
    assert got[1]["gan.steps"] == 3


def test_simultaneous_step_matches_numpy_backend(device_backend):
    got, want = on_both(run_steps({"k": 1}, simultaneous=True))
    assert_same(got, want, rtol=TRAINED)


@pytest.mark.parametrize("k", [1, 2])
def test_gan_step_fast_path_matches_numpy_backend(device_backend, k):
    """The fused plans of nanogan.fast, on the device arrays and on NumPy."""
    got, want = on_both(run_steps({"k": k, "fast": True}))
    assert_same(got, want, rtol=TRAINED)


def test_sample_noise_is_drawn_on_the_host(device_backend):
    gan = make_gan()
    z = gan.sample_noise(5, np.random.default_rng(9))
    assert on_device(z) and z.shape == (5, 4)
    with numpy_reference():  # the same bits as on the NumPy backend
        want = standard_normal(np.random.default_rng(9), (5, 4), gan.z_dtype)
    np.testing.assert_array_equal(to_numpy(z), want)
    gan.normal_sampler = "numpy"
    z = gan.sample_noise(5, np.random.default_rng(9))
    assert on_device(z)
    np.testing.assert_array_equal(to_numpy(z),
                                  np.random.default_rng(9).standard_normal((5, 4)))


def test_nan_stops_training_on_the_device_backend(device_backend, tmp_path):
    gan = make_gan()
    batches, rng = Minibatches(DATA, 8, rng=3), np.random.default_rng(4)
    train(gan, batches, 2, rng, out=tmp_path, progress=False, sample_every=0,
          checkpoint_every=1)
    good = load_training_checkpoint(tmp_path / "checkpoint.npz")["gan"].state_dict()
    gan.D.params["0.weight"][0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="Last good checkpoint") as info:
        train(gan, batches, 4, rng, out=tmp_path, progress=False, sample_every=0,
              checkpoint_every=1)
    assert info.value.step == 3
    after = load_training_checkpoint(tmp_path / "checkpoint.npz")["gan"].state_dict()
    assert_same(after, good)  # the last good checkpoint is intact


def test_full_scan_finds_nan_in_optimizer_state(device_backend):
    gan = make_gan()
    gan.step(Minibatches(DATA, 8, rng=3), np.random.default_rng(4))
    assert gan.nonfinite_arrays() == []
    gan.d_opt.state["2.bias"]["exp_avg_sq"][0] = np.inf
    assert gan.nonfinite_arrays() == [("d_opt state 2.bias.exp_avg_sq", "infinity")]
    with pytest.raises(NonFiniteError, match="exp_avg_sq"):
        gan.check_finite(params=True)


# ---------------------------------------------------------------------------- penalties
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalized_gan_matches_numpy_backend(device_backend, penalty, fast):
    def run():
        gan = make_gan(cls=PenalizedGAN, loss="wasserstein" if penalty == "gp" else
                       "nonsaturating", penalty=penalty, penalty_weight=5.0, fast=fast)
        batches, rng = Minibatches(DATA, 8, rng=3), np.random.default_rng(4)
        stats = [dict(gan.step(batches, rng)) for _ in range(2)]
        assert stats[-1]["penalty"] > 0
        return stats, gan.state_dict()

    got, want = on_both(run)
    assert_same(got, want, rtol=TRAINED)


def test_penalty_functions_match_numpy_backend(device_backend):
    x_real, x_fake = DATA[:6], DATA[6:12]

    def run():
        D = mlp((4, 8, 1), 20)
        x_hat = interpolate(asarray(x_real), asarray(x_fake), np.random.default_rng(0))
        gp = gradient_penalty(D, x_hat, 10.0)
        r1 = r1_penalty(D, asarray(x_real), 3.0)
        return x_hat, gp, r1, {k: v.copy() for k, v in D.grads.items()}

    got, want = on_both(run)
    assert_same(got, want)


# ---------------------------------------------------------------------------- conditional
def test_conditional_gan_matches_numpy_backend(device_backend):
    labels = np.random.default_rng(7).integers(0, 3, len(DATA))

    def run():
        G = mlp((4 + 3, 8, 4), 30)
        D = mlp((4 + 3, 8, 1), 40)
        gan = ConditionalGAN(G, D, num_classes=3, g_opt=Adam(G, lr=1e-2),
                             d_opt=Adam(D, lr=1e-2), k=2)
        gan.fast = False
        batches, rng = LabeledMinibatches(DATA, labels, 8, rng=3), np.random.default_rng(4)
        stats = [dict(gan.step(batches, rng)) for _ in range(2)]
        sample = gan.generate(gan.sample_z(4, rng), 1)
        return stats, gan.state_dict(), sample

    got, want = on_both(run)
    assert_same(got, want, rtol=TRAINED)


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_is_numpy_on_disk_and_resumes_bit_for_bit(device_backend, tmp_path):
    path = tmp_path / "ckpt.npz"
    gan = make_gan(k=2)
    batches, rng = Minibatches(DATA, 8, rng=3), np.random.default_rng(4)
    for _ in range(2):
        gan.step(batches, rng)
    fixed_z = gan.sample_noise(4, np.random.default_rng(0))
    save_training_checkpoint(path, gan, rng, batches, fixed_z, {"step": [1, 2]})
    expected = gan.state_dict()
    with np.load(path, allow_pickle=False) as npz:  # plain NumPy arrays, no pickle
        for k, v in expected.items():
            np.testing.assert_array_equal(npz[k], v)

    # under numpy: the same parameters and optimizer state
    with on_backend("numpy"):
        loaded = load_training_checkpoint(path)
        assert isinstance(loaded["gan"].G.params["0.weight"], np.ndarray)
        assert_same(loaded["gan"].state_dict(), expected)
        np.testing.assert_array_equal(loaded["fixed_z"], to_numpy(fixed_z))

    # under the device backend: resumes bit for bit (to the device tolerance on CuPy)
    for _ in range(2):
        gan.step(batches, rng)
    state = load_training_checkpoint(path)
    resumed = state["gan"]
    resumed.fast = False
    assert on_device(resumed.D.params["0.weight"])
    assert on_device(resumed.d_opt.state["0.weight"]["exp_avg"])
    batches2 = Minibatches(DATA, 8, rng=0)
    batches2.set_state(state["batches_state"])
    for _ in range(2):
        resumed.step(batches2, state["rng"])
    assert_same(resumed.state_dict(), gan.state_dict())


# ---------------------------------------------------------------------------- the rest
def test_ebgan_losses_match_numpy_backend(device_backend):
    rng = np.random.default_rng(8)
    x, x_rec, codes = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), \
        rng.standard_normal((5, 4))

    def run():
        e, g = reconstruction_energy(asarray(x), asarray(x_rec))
        return e, g, margin_d_loss(e, e[::-1] * 2, 1.5), pull_away(asarray(codes))

    got, want = on_both(run)
    assert_same(got, want)


def test_gradcheck_on_the_device_backend(device_backend):
    errors = gradcheck(mlp((3, 5, 2), 50), np.random.default_rng(0).standard_normal((4, 3)))
    assert max(errors.values()) < 1e-7


def test_save_checkpoint_brings_device_arrays_home(device_backend, tmp_path):
    from nanogan.checkpoint import flatten_state, load_checkpoint, save_checkpoint

    w = np.arange(6.0).reshape(2, 3)
    arrays = flatten_state("G", {"w": asarray(w), "n": 3})
    assert isinstance(arrays["G.w"], np.ndarray)
    save_checkpoint(tmp_path / "c.npz", {"w": asarray(w)}, {"note": "x"})
    loaded, meta = load_checkpoint(tmp_path / "c.npz")
    assert isinstance(loaded["w"], np.ndarray) and meta["note"] == "x"
    np.testing.assert_array_equal(loaded["w"], w)


def test_mmd_loss_matches_numpy_backend(device_backend):
    from nanogan.mmd_loss import mmd2_loss

    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((6, 3))
    got, want = on_both(lambda: mmd2_loss(asarray(x), asarray(y), (1.0, 3.0)))
    assert_same(got, want)


def test_generator_file_round_trip_on_the_device_backend(device_backend, tmp_path):
    from nanogan.generator_file import load_generator, save_generator

    gan = make_gan()
    save_generator(tmp_path / "G.npz", gan, dtype=np.float64)
    g = load_generator(tmp_path / "G.npz")
    assert on_device(g.G.params["0.weight"]) and g.nonfinite_arrays() == []
    z = g.sample_noise(3, np.random.default_rng(0))
    assert_same(to_numpy(g.G(z, train=False)), to_numpy(gan.G(z, train=False)))


def test_remedies_train_on_the_device_backend(device_backend):
    """Instance noise (drawn on the host) and a discriminator ensemble in Algorithm 1."""
    from nanogan.remedies import DiscriminatorEnsemble, InstanceNoise

    def run():
        G = mlp((4, 8, 4), 10)
        D = InstanceNoise(DiscriminatorEnsemble(mlp((4, 6, 1), 20), mlp((4, 3, 1), 30)),
                          sigma=0.5, rng=1)
        gan = GAN(G, D, g_opt=Adam(G, lr=1e-2), d_opt=Adam(D, lr=1e-2), fast=False)
        batches, rng = Minibatches(DATA, 8, rng=3), np.random.default_rng(4)
        return [dict(gan.step(batches, rng)) for _ in range(2)], gan.state_dict()

    got, want = on_both(run)
    assert_same(got, want, rtol=TRAINED)
