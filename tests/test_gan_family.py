"""The GAN family's examples and the classes behind them: DCGAN, conditional GAN, WGAN,
WGAN-GP/R1, latent walks.

Each example runs end to end in-process on real MNIST for a few steps at a small batch size and
must write its files; the conditional path is checked by recording what the networks are fed;
weight clipping after every critic step by a spy on ``GAN.d_step``; resume bit for bit.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from nanogan.conditional import ConditionalGAN, LabeledMinibatches, one_hot
from nanogan.data import Minibatches
from nanogan.gan import GAN
from nanogan.layers import BatchNorm1d, Dense, LeakyReLU, Sequential
from nanogan.models import mlp_critic, mlp_discriminator, mlp_generator
from nanogan.optim import SGD, Adam
from nanogan.penalized import PenalizedGAN
from nanogan.penalties import gradient_penalty, interpolate, r1_penalty
from nanogan.train import load_training_checkpoint, save_training_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK = ["--no-progress", "--sample-every", "2", "--checkpoint-every", "2"]
Z, C, F, H = 5, 10, 16, 8  # noise, classes, features, hidden width of the tiny nets


def load(name: str):
    """Import ``examples/<name>.py`` as a module (examples/ on sys.path for ``_gan_example``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_pngs(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        assert path.is_file(), path
        assert path.read_bytes()[:8] == PNG_MAGIC, path


def assert_same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)


class Recorder:
    """Wraps a module's ``forward`` and keeps a copy of every input it is given."""

    def __init__(self, module) -> None:
        self.inputs: list[np.ndarray] = []
        forward = module.forward

        def spy(x, train=True):
            self.inputs.append(np.array(x, copy=True))
            return forward(x, train)

        module.forward = spy


def tiny_cgan(seed: int = 0, **kw) -> ConditionalGAN:
    rng = np.random.default_rng(seed)
    G = mlp_generator(Z + C, H, F, rng=rng)
    D = mlp_discriminator(F + C, H, rng=rng)
    return ConditionalGAN(G, D, C, g_opt=Adam(G, lr=1e-3), d_opt=Adam(D, lr=1e-3), **kw)


# ---------------------------------------------------------------------------- DCGAN
@pytest.mark.slow
def test_dcgan_example_quick_run_writes_its_files(tmp_path):
    dcgan = load("dcgan_mnist")
    out = tmp_path / "dcgan"
    assert dcgan.main(["--steps", "4", "--batch-size", "8", "--loss", "hinge", "--out", str(out),
                       *QUICK]) == 0
    assert_pngs(out, "samples.png", "losses.png")
    state = load_training_checkpoint(out / "checkpoint.npz")
    gan = state["gan"]
    assert gan.steps == 4 and gan.loss_name == "hinge"
    assert state["config"]["g_opt"]["kwargs"]["betas"] == [0.5, 0.999]
    assert state["config"]["g_opt"]["kwargs"]["lr"] == 2e-4
    assert gan.z_shape == (100, 1, 1)
    with open(out / "metrics.csv") as f:
        assert len(list(csv.reader(f))) == 5


def test_dcgan_example_uses_dcgan_init():
    dcgan = load("dcgan_mnist")
    gan = dcgan.build(dcgan.parse_args([]), np.random.default_rng(0))
    for net in (gan.G, gan.D):
        for name, p in net.params.items():
            if p.ndim == 4:  # conv weights ~ N(0, 0.02)
                assert abs(p.std() - 0.02) < 0.002 and abs(p.mean()) < 0.002, name
            else:  # BatchNorm scales ~ N(1, 0.02), shifts 0
                target = 1.0 if name.endswith("weight") else 0.0
                assert abs(p.mean() - target) < 0.01, name


# ---------------------------------------------------------------------------- conditional GAN
def test_one_hot_and_its_errors():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels"):
        one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="labels"):
        one_hot(np.array([0.5]), 3)


def test_conditional_steps_feed_the_requested_labels_to_both_networks():
    gan = tiny_cgan()
    g_in, d_in = Recorder(gan.G), Recorder(gan.D)
    rng = np.random.default_rng(1)
    x = np.tanh(rng.standard_normal((6, F))).astype(np.float32)
    y_real, y_fake = np.array([0, 1, 2, 3, 4, 5]), np.array([9, 8, 7, 7, 8, 9])
    z = gan.sample_z(6, rng)
    gan.d_step(x, y_real, z, y_fake)
    (gz,), (dr, df) = g_in.inputs, d_in.inputs
    np.testing.assert_array_equal(gz[:, :Z], z)
    np.testing.assert_array_equal(gz[:, Z:], one_hot(y_fake, C))
    np.testing.assert_array_equal(dr[:, :F], x)
    np.testing.assert_array_equal(dr[:, F:], one_hot(y_real, C))
    np.testing.assert_array_equal(df[:, F:], one_hot(y_fake, C))
    g_in.inputs.clear()
    d_in.inputs.clear()
    y = np.array([3, 3, 1, 1, 0, 2])
    gan.g_step(z, y)
    (gz,), (df,) = g_in.inputs, d_in.inputs
    np.testing.assert_array_equal(gz[:, Z:], one_hot(y, C))
    np.testing.assert_array_equal(df[:, F:], one_hot(y, C))


def test_conditional_step_pairs_real_images_with_their_own_labels():
    gan = tiny_cgan()
    d_in = Recorder(gan.D)
    rng = np.random.default_rng(2)
    x = np.tanh(rng.standard_normal((40, F))).astype(np.float32)
    x[:, 0] = np.arange(40)  # the row index, to find each real image's label in D's input
    y = rng.integers(0, C, 40)
    gan.step(LabeledMinibatches(x, y, 8, np.random.default_rng(3)), np.random.default_rng(4))
    real = d_in.inputs[0]
    rows = real[:, 0].astype(int)
    np.testing.assert_array_equal(real[:, F:], one_hot(y[rows], C))


def test_conditional_g_step_gradient_matches_a_finite_difference():
    """g_step's update (SGD, lr = 1) is minus the central-difference gradient of the generator's
    loss, for weights reading the noise and weights reading the label code."""
    rng = np.random.default_rng(5)
    G = mlp_generator(Z + C, H, F, rng=rng, dtype=np.float64)
    D = mlp_discriminator(F + C, H, rng=rng, dtype=np.float64)
    gan = ConditionalGAN(G, D, C, g_opt=SGD(G, lr=1.0), d_opt=SGD(D, lr=1.0))
    z, y = gan.sample_z(4, rng), np.array([1, 2, 2, 4])
    w = G.params["0.weight"]

    def g_loss() -> float:
        fake = G(gan.generator_input(z, y))
        return float(gan.loss.g_loss(D(gan.discriminator_input(fake, y)))[0])

    eps, numeric = 1e-6, {}
    for j in (0, Z + 2):  # a noise column, label 2's column
        w[3, j] += eps
        up = g_loss()
        w[3, j] -= 2 * eps
        numeric[j] = (up - g_loss()) / (2 * eps)
        w[3, j] += eps
    before = w.copy()
    d_before = {k: v.copy() for k, v in D.params.items()}
    gan.g_step(z, y)
    for j, g in numeric.items():
        assert before[3, j] - w[3, j] == pytest.approx(g, rel=1e-6, abs=1e-10)
    assert numeric[Z + 2] != 0
    assert_same_state(d_before, D.params)  # D untouched


@pytest.mark.slow
def test_cgan_example_runs_and_resumes_bit_for_bit(tmp_path, capsys):
    cgan = load("cgan_mnist")
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--batch-size", "8", "--hidden", "16", "--eval-per-class", "2", *QUICK]
    assert cgan.main(["--steps", "6", "--out", str(a), *common]) == 0
    assert "conditional accuracy:" in capsys.readouterr().out
    assert cgan.main(["--steps", "4", "--out", str(b), *common]) == 0
    assert cgan.main(["--steps", "6", "--resume", "--out", str(b), *common]) == 0
    sa, sb = (load_training_checkpoint(p / "checkpoint.npz") for p in (a, b))
    assert isinstance(sa["gan"], ConditionalGAN) and sa["gan"].steps == 6
    assert_same_state(sa["gan"].state_dict(), sb["gan"].state_dict())
    assert sa["rng"].bit_generator.state == sb["rng"].bit_generator.state
    assert sa["history"] == sb["history"]
    assert_pngs(a, "samples.png", "losses.png")
    # the sample grid: 10 rows of 10, row d asking for digit d
    np.testing.assert_array_equal(sa["fixed_z"][:, -C:], one_hot(np.repeat(np.arange(C), C), C))


def test_sample_command_feeds_the_requested_label(tmp_path, monkeypatch):
    from nanogan.__main__ import main

    gan = tiny_cgan()
    ckpt = tmp_path / "cgan.npz"
    save_training_checkpoint(ckpt, gan, np.random.default_rng(0))
    seen: list[np.ndarray] = []
    forward = Sequential.forward

    def spy(self, x, train=True):
        if x.shape[1] == Z + C:  # the generator's input
            seen.append(np.array(x, copy=True))
        return forward(self, x, train)

    monkeypatch.setattr(Sequential, "forward", spy)
    out = tmp_path / "sevens.npy"
    assert main(["sample", str(ckpt), "--label", "7", "--n", "5", "--out", str(out)]) == 0
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0][:, Z:], one_hot(np.full(5, 7), C))
    assert np.load(out).shape == (5, 1, 4, 4)  # F = 16 pixels: 4x4 images
    seen.clear()
    assert main(["sample", str(ckpt), "--n", "50", "--out", str(out)]) == 0
    assert len(set(seen[0][:, Z:].argmax(1))) > 1  # without --label: several classes


def test_sample_label_errors(tmp_path, capsys):
    from nanogan.__main__ import main

    cgan = tiny_cgan()
    ckpt = tmp_path / "c.npz"
    save_training_checkpoint(ckpt, cgan, np.random.default_rng(0))
    assert main(["sample", str(ckpt), "--label", "10", "--n", "2"]) == 1
    assert "--label must be in [0, 10)" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    plain = GAN(mlp_generator(Z, H, F, rng=rng), mlp_discriminator(F, H, rng=rng))
    save_training_checkpoint(tmp_path / "p.npz", plain, rng)
    assert main(["sample", str(tmp_path / "p.npz"), "--label", "3", "--n", "2"]) == 1
    assert "conditional" in capsys.readouterr().err


def test_conditional_accuracy_counts_the_asked_label():
    from nanogan.conditional import conditional_accuracy

    gan = tiny_cgan()

    class Oracle:  # "classifies" every sample as the label G was asked for, except label 0 -> 1
        def __call__(self, x, pixel_range):
            probs = np.zeros((len(x), C))
            probs[np.arange(len(x)), asked] = 1
            return None, probs

    asked: list[int] = []
    generate = gan.generate

    def spy(z, labels, train=False):
        asked[:] = [max(int(v), 1) for v in np.broadcast_to(labels, (len(z),))]
        return generate(z, labels, train)

    gan.generate = spy
    acc = conditional_accuracy(gan, 3, features=Oracle(), batch=7)
    assert acc["n"] == 30 and acc["per_class"][0] == 0.0 and acc["per_class"][1:] == [1.0] * 9
    assert acc["accuracy"] == pytest.approx(0.9)


# ---------------------------------------------------------------------------- WGAN
@pytest.mark.slow
def test_wgan_example_clips_every_critic_step(tmp_path, monkeypatch):
    wgan = load("wgan_mnist")
    seen: list[float] = []
    d_step = GAN.d_step

    def spy(self, x_real, z):
        stats = d_step(self, x_real, z)
        seen.append(max(float(np.abs(p).max()) for p in self.D.params.values()))
        return stats

    monkeypatch.setattr(GAN, "d_step", spy)
    out = tmp_path / "wgan"
    assert wgan.main(["--steps", "4", "--batch-size", "8", "--hidden", "16", "--lr", "0.05",
                      "--out", str(out), *QUICK]) == 0
    assert len(seen) == 4 * 5  # 5 critic steps per generator step
    assert max(seen) <= 0.01
    assert max(seen) == pytest.approx(0.01)  # lr 0.05 pushes weights to the bound: it clips
    assert_pngs(out, "samples.png", "losses.png", "wasserstein.png")
    gan = load_training_checkpoint(out / "checkpoint.npz")["gan"]
    assert gan.clip == 0.01 and gan.loss_name == "wasserstein" and gan.k == 5
    assert type(gan.d_opt).__name__ == "RMSprop"


# ---------------------------------------------------------------------------- penalties
def test_penalized_d_step_adds_the_penalty_gradient_before_the_update():
    """One SGD(lr=1) critic step moves D by exactly -(loss gradient + penalty gradient)."""
    for penalty in ("gp", "r1"):
        rng = np.random.default_rng(0)
        G = mlp_generator(Z, H, F, rng=rng, dtype=np.float64)
        D = mlp_critic(F, H, rng=rng, dtype=np.float64)
        gan = PenalizedGAN(G, D, loss="wasserstein", penalty=penalty, penalty_weight=3.0,
                           g_opt=SGD(G, lr=1.0), d_opt=SGD(D, lr=1.0))
        x = np.tanh(rng.standard_normal((6, F)))
        z = gan.sample_noise(6, rng)
        before = {k: v.copy() for k, v in D.params.items()}
        # the expected gradient, by hand
        D.zero_grad()
        fake = G(z)
        s_r, c_r = D.forward(x)
        s_f, c_f = D.forward(fake)
        value, d_r, d_f = gan.loss.d_loss(s_r, s_f)
        D.backward(d_r, c_r)
        D.backward(d_f, c_f)
        if penalty == "gp":
            p = gradient_penalty(D, interpolate(x, fake, np.random.default_rng(7)), 3.0)
        else:
            p = r1_penalty(D, x, 3.0)
        expected = {k: before[k] - g for k, g in D.grads.items()}
        for k, v in D.params.items():
            v[...] = before[k]
        stats = gan.d_step(x, z, rng=np.random.default_rng(7))
        for k, v in D.params.items():
            np.testing.assert_allclose(v, expected[k], rtol=1e-12, atol=1e-14, err_msg=k)
        assert stats["penalty"] == pytest.approx(p) and p > 0
        assert stats["d_loss"] == pytest.approx(value + p)


def test_penalized_gan_refuses_a_batchnorm_critic():
    rng = np.random.default_rng(0)
    D = Sequential(Dense(F, H, rng=rng), BatchNorm1d(H), LeakyReLU(0.2), Dense(H, 1, rng=rng))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        PenalizedGAN(mlp_generator(Z, H, F, rng=rng), D)
    with pytest.raises(ValueError, match="penalty"):
        PenalizedGAN(mlp_generator(Z, H, F, rng=rng), mlp_critic(F, H, rng=rng), penalty="l2")


def test_penalized_gan_resumes_bit_for_bit(tmp_path):
    def run(steps, resume_at=None):
        rng = np.random.default_rng(0)
        G, D = mlp_generator(Z, H, F, rng=rng), mlp_critic(F, H, rng=rng)
        gan = PenalizedGAN(G, D, k=2, g_opt=Adam(G, 1e-3, (0.0, 0.9)),
                           d_opt=Adam(D, 1e-3, (0.0, 0.9)))
        data = np.tanh(np.random.default_rng(9).standard_normal((40, F))).astype(np.float32)
        batches = Minibatches(data, 8, np.random.default_rng(1))
        if resume_at is None:
            train(gan, batches, steps, rng, out=tmp_path / "a", progress=False, sample_every=0)
            return gan
        train(gan, batches, resume_at, rng, out=tmp_path / "b", progress=False, sample_every=0)
        state = load_training_checkpoint(tmp_path / "b" / "checkpoint.npz")
        batches.set_state(state["batches_state"])
        gan2 = state["gan"]
        assert isinstance(gan2, PenalizedGAN) and gan2.penalty == "gp"
        hist = train(gan2, batches, steps, state["rng"], history=state["history"],
                     progress=False, sample_every=0)
        assert len(hist["penalty"]) == steps
        return gan2

    a, b = run(5), run(5, resume_at=3)
    assert_same_state(a.state_dict(), b.state_dict())


@pytest.mark.slow
def test_wgan_gp_example_quick_runs(tmp_path):
    wgan_gp = load("wgan_gp_mnist")
    for penalty in ("gp", "r1"):
        out = tmp_path / penalty
        assert wgan_gp.main(["--steps", "3", "--k", "2", "--batch-size", "8", "--hidden", "16",
                             "--penalty", penalty, "--out", str(out), *QUICK]) == 0
        assert_pngs(out, "samples.png", "losses.png", "wasserstein.png")
        with open(out / "metrics.csv") as f:
            rows = list(csv.reader(f))
        assert rows[0][-2:] == ["critic_loss", "penalty"] and len(rows) == 4
        assert all(float(r[-1]) > 0 for r in rows[1:])
        gan = load_training_checkpoint(out / "checkpoint.npz")["gan"]
        assert gan.penalty == penalty and gan.penalty_weight == 10.0


@pytest.mark.slow
def test_vanilla_example_takes_a_penalty(tmp_path):
    vanilla = load("vanilla_mnist")
    out = tmp_path / "v"
    assert vanilla.main(["--steps", "2", "--batch-size", "8", "--hidden", "16", "--penalty",
                         "r1", "--penalty-weight", "2", "--loss", "hinge", "--out", str(out),
                         "--no-progress"]) == 0
    gan = load_training_checkpoint(out / "checkpoint.npz")["gan"]
    assert (gan.penalty, gan.penalty_weight, gan.loss_name) == ("r1", 2.0, "hinge")


# ---------------------------------------------------------------------------- latent walks
def test_lerp_and_slerp():
    walk = load("latent_walk")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 50))
    t = np.linspace(0, 1, 5)
    for f in (walk.lerp, walk.slerp):
        path = f(a, b, t)
        np.testing.assert_allclose(path[0], a, atol=1e-12)
        np.testing.assert_allclose(path[-1], b, atol=1e-12)
    np.testing.assert_allclose(walk.lerp(a, b, t)[2], (a + b) / 2)
    u, v = np.eye(50)[0] * 3, np.eye(50)[1] * 3  # orthogonal, equal norms: a quarter circle
    np.testing.assert_allclose(np.linalg.norm(walk.slerp(u, v, t), axis=1), 3.0)
    np.testing.assert_allclose(walk.slerp(u, u, t), np.tile(u, (5, 1)))  # parallel: no NaN


@pytest.mark.slow
def test_latent_walk_writes_its_pngs(tmp_path, monkeypatch, capsys):
    from nanogan.metrics import features

    walk = load("latent_walk")
    rng = np.random.default_rng(0)
    for kind in ("plain", "conditional"):
        if kind == "plain":
            gan = GAN(mlp_generator(Z, H, 784, rng=rng), mlp_discriminator(784, H, rng=rng))
        else:
            gan = ConditionalGAN(mlp_generator(Z + C, H, 784, rng=rng),
                                 mlp_discriminator(784 + C, H, rng=rng))
        ckpt = tmp_path / f"{kind}.npz"
        save_training_checkpoint(ckpt, gan, rng)

        class Fake:  # classifies by brightness, so every digit has its samples
            def __call__(self, x, pixel_range):
                rank = np.argsort(np.argsort(x.reshape(len(x), -1).sum(1)))
                probs = np.full((len(x), 10), 0.0)
                probs[np.arange(len(x)), rank * 10 // len(x)] = 1.0
                return None, probs

        monkeypatch.setattr(features, "load_classifier", lambda: Fake())
        monkeypatch.setattr(walk, "load_classifier", lambda: Fake())
        out = tmp_path / f"walk_{kind}"
        assert walk.main([str(ckpt), "--out", str(out), "--rows", "3", "--steps", "4",
                          "--pool", "200", "--arith", "1:7,0:6", "--results", "2"]) == 0
        assert_pngs(out, "linear.png", "slerp.png", "arithmetic.png")
        assert "thick 1 - thin 1 + thin 7" in capsys.readouterr().out
