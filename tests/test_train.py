"""The training loop: exact resume, self-contained checkpoints, the NaN guard, the outputs.

Tiny MLP GANs on a small fake data set keep every test fast; the example script is run in-process
on real MNIST with a small network and few steps.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanogan.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint
from nanogan.data import Minibatches
from nanogan.gan import GAN, NonFiniteError
from nanogan.layers.serialize import module_to_config
from nanogan.models import mlp_discriminator, mlp_generator
from nanogan.optim import SGD, Adam, RMSprop
from nanogan.train import HISTORY_KEYS, load_training_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "vanilla_mnist.py"
Z_DIM, HIDDEN, FEATURES = 4, 8, 16
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- helpers
def fake_data(n: int = 60, seed: int = 0) -> np.ndarray:
    """(n, FEATURES) float32 in [-1, 1]: a stand-in for flattened images."""
    return np.tanh(np.random.default_rng(seed).standard_normal((n, FEATURES))).astype(np.float32)


def make_run(seed: int = 0, *, opts: str = "adam", loss: str = "nonsaturating", k: int = 1,
             clip: float | None = None, noise: str = "normal", lr: float = 1e-3,
             data: np.ndarray | None = None) -> tuple[GAN, Minibatches, np.random.Generator]:
    """A fresh tiny GAN, its minibatch iterator (own generator) and the training generator."""
    rng = np.random.default_rng(seed)
    G = mlp_generator(Z_DIM, HIDDEN, FEATURES, rng=rng)
    D = mlp_discriminator(FEATURES, HIDDEN, rng=rng)
    if opts == "adam":
        g_opt, d_opt = Adam(G, lr=lr, betas=(0.5, 0.999)), Adam(D, lr=lr, betas=(0.5, 0.999))
    elif opts == "mixed":
        g_opt = Adam(G, lr=3e-4, betas=(0.4, 0.9), eps=1e-7, weight_decay=1e-3)
        d_opt = SGD(D, lr=2e-2, momentum=0.5, nesterov=True, weight_decay=1e-4)
    else:
        g_opt, d_opt = RMSprop(G, lr=lr, alpha=0.9, eps=1e-6), SGD(D, lr=1e-2, momentum=0.9)
    gan = GAN(G, D, loss=loss, g_opt=g_opt, d_opt=d_opt, k=k, clip=clip, noise=noise)
    batches = Minibatches(fake_data() if data is None else data, 8, np.random.default_rng(seed + 1))
    return gan, batches, rng


def run_train(gan, batches, rng, steps, out=None, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("sample_every", 0)
    return train(gan, batches, steps, rng, out=out, **kw)


def assert_arrays_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)


def assert_same_training_state(g1: GAN, g2: GAN) -> None:
    """Every parameter, buffer, optimizer state entry and the step count, bit for bit."""
    assert_arrays_identical(g1.state_dict(), g2.state_dict())
    assert g1.steps == g2.steps


def load_example():
    spec = importlib.util.spec_from_file_location("vanilla_mnist_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------------------- 1. exact resume
@pytest.mark.parametrize("opts, loss, k, clip, noise", [
    ("adam", "nonsaturating", 1, None, "normal"),
    ("rms", "wasserstein", 2, 0.1, "uniform"),
])
def test_resume_is_bit_identical(tmp_path, opts, loss, k, clip, noise):
    """2N steps in one go == N steps, checkpoint, reload into fresh objects, N more steps."""
    n = 6
    cfg = dict(opts=opts, loss=loss, k=k, clip=clip, noise=noise)
    gan_a, batches_a, rng_a = make_run(0, **cfg)
    hist_a = run_train(gan_a, batches_a, rng_a, 2 * n, out=tmp_path / "a", checkpoint_every=4)

    gan_b, batches_b, rng_b = make_run(0, **cfg)
    run_train(gan_b, batches_b, rng_b, n, out=tmp_path / "b", checkpoint_every=4)
    del gan_b, batches_b, rng_b
    state = load_training_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert state["gan"].steps == n
    # the iterator is rebuilt with a different seed: set_state must restore everything
    batches_c = Minibatches(fake_data(), 8, np.random.default_rng(999))
    batches_c.set_state(state["batches_state"])
    hist_c = run_train(state["gan"], batches_c, state["rng"], 2 * n, out=tmp_path / "b",
                       checkpoint_every=4, fixed_z=state["fixed_z"], history=state["history"])

    assert_same_training_state(gan_a, state["gan"])
    assert rng_state(rng_a) == rng_state(state["rng"])
    assert batches_a.state() == batches_c.state()
    assert list(hist_a) == list(hist_c) == ["step", *HISTORY_KEYS]
    for key in hist_a:
        assert len(hist_a[key]) == 2 * n
        np.testing.assert_array_equal(np.asarray(hist_a[key]), np.asarray(hist_c[key]),
                                      err_msg=key, strict=True)
    # the files written at the end agree too
    arrays_a, meta_a = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    arrays_b, meta_b = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert_arrays_identical(arrays_a, arrays_b)
    assert meta_a == meta_b
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == \
        (tmp_path / "b" / "metrics.csv").read_bytes()


def test_resume_can_fail_if_state_is_lost(tmp_path):
    """Control for the test above: resuming without restoring the noise generator diverges."""
    gan_a, batches_a, rng_a = make_run(0)
    run_train(gan_a, batches_a, rng_a, 8)
    gan_b, batches_b, rng_b = make_run(0)
    run_train(gan_b, batches_b, rng_b, 4, out=tmp_path)
    state = load_training_checkpoint(tmp_path / "checkpoint.npz")
    batches_b.set_state(state["batches_state"])
    run_train(state["gan"], batches_b, np.random.default_rng(123), 8)
    assert not np.array_equal(gan_a.G.params["0.weight"], state["gan"].G.params["0.weight"])


def test_resume_through_the_example_script(tmp_path, capsys):
    """``--steps 40`` == ``--steps 20`` then ``--steps 40 --resume``: identical checkpoints."""
    example = load_example()
    common = ["--batch-size", "16", "--hidden", "32", "--no-progress", "--sample-every", "10",
              "--checkpoint-every", "15"]
    a, b = tmp_path / "A", tmp_path / "B"
    assert example.main(["--steps", "40", "--out", str(a), *common]) == 0
    assert example.main(["--steps", "20", "--out", str(b), *common]) == 0
    first_half, _ = load_checkpoint(b / "checkpoint.npz")
    assert int(first_half["gan.steps"]) == 20
    assert example.main(["--steps", "40", "--resume", "--out", str(b), *common]) == 0
    assert "resuming from step 20 of 40" in capsys.readouterr().out

    arrays_a, meta_a = load_checkpoint(a / "checkpoint.npz")
    arrays_b, meta_b = load_checkpoint(b / "checkpoint.npz")
    assert int(arrays_a["gan.steps"]) == 40
    assert_arrays_identical(arrays_a, arrays_b)
    assert meta_a == meta_b
    assert len(arrays_a["history.d_loss"]) == 40
    assert not np.array_equal(arrays_a["G.0.weight"], first_half["G.0.weight"])
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


def test_example_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    example = load_example()
    rc = example.main(["--steps", "2", "--resume", "--out", str(tmp_path / "none"),
                       "--no-progress"])
    assert rc != 0
    err = capsys.readouterr().err
    assert str(tmp_path / "none" / "checkpoint.npz") in err


# ---------------------------------------------------------------------------- 2. checkpoints
def test_checkpoint_rebuilds_the_gan_without_code(tmp_path):
    """The loaded GAN is built from the stored config: same architecture, same outputs, same
    optimizer types and hyper-parameters, same loss, k, clip, noise and z shape."""
    gan, batches, rng = make_run(3, opts="mixed", loss="hinge", k=2, clip=0.5, noise="uniform")
    fixed_z = gan.sample_noise(5, np.random.default_rng(7))
    hist = run_train(gan, batches, rng, 3, out=tmp_path, fixed_z=fixed_z,
                     extra={"note": "tiny", "n": 3})
    state = load_training_checkpoint(tmp_path / "checkpoint.npz")
    new = state["gan"]
    assert new is not gan and new.G is not gan.G
    assert module_to_config(new.G) == module_to_config(gan.G)
    assert module_to_config(new.D) == module_to_config(gan.D)
    assert (new.loss_name, new.k, new.clip, new.noise, new.z_shape, new.steps) == \
        ("hinge", 2, 0.5, "uniform", (Z_DIM,), 3)
    for old_opt, new_opt in ((gan.g_opt, new.g_opt), (gan.d_opt, new.d_opt)):
        assert type(new_opt) is type(old_opt)
        assert new_opt.hyperparameters() == old_opt.hyperparameters()
        assert new_opt.model is not old_opt.model
    assert new.g_opt.hyperparameters() == {"lr": 3e-4, "betas": (0.4, 0.9), "eps": 1e-7,
                                           "weight_decay": 1e-3}
    d_hyper = new.d_opt.hyperparameters()
    assert {k: d_hyper[k] for k in ("lr", "momentum", "nesterov", "weight_decay")} == \
        {"lr": 2e-2, "momentum": 0.5, "nesterov": True, "weight_decay": 1e-4}
    assert new.g_opt.model is new.G and new.d_opt.model is new.D
    assert_same_training_state(gan, new)
    # same outputs, in both modes
    z = gan.sample_noise(6, np.random.default_rng(1))
    x = fake_data(6, seed=5)
    for train_mode in (True, False):
        np.testing.assert_array_equal(new.G.forward(z, train=train_mode)[0],
                                      gan.G.forward(z, train=train_mode)[0], strict=True)
        np.testing.assert_array_equal(new.D.forward(x, train=train_mode)[0],
                                      gan.D.forward(x, train=train_mode)[0], strict=True)
    np.testing.assert_array_equal(state["fixed_z"], fixed_z, strict=True)
    assert state["history"] == hist
    assert state["extra"] == {"note": "tiny", "n": 3}
    assert rng_state(state["rng"]) == rng_state(rng)
    assert state["batches_state"] == batches.state()
    # and one more step of each gives the same result
    gan.step(batches, rng)
    batches.set_state(state["batches_state"])
    new.step(batches, state["rng"])
    assert_same_training_state(gan, new)


def test_checkpoint_in_float64(tmp_path):
    rng = np.random.default_rng(0)
    G = mlp_generator(Z_DIM, HIDDEN, FEATURES, rng=rng, dtype=np.float64)
    D = mlp_discriminator(FEATURES, HIDDEN, rng=rng, dtype=np.float64)
    gan = GAN(G, D)
    batches = Minibatches(fake_data().astype(np.float64), 8, 1)
    run_train(gan, batches, rng, 2, out=tmp_path)
    new = load_training_checkpoint(tmp_path / "checkpoint.npz")["gan"]
    assert all(p.dtype == np.float64 for p in new.G.params.values())
    assert_same_training_state(gan, new)
    assert new.sample_noise(2, rng).dtype == np.float64


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("good")
    gan, batches, rng = make_run(0)
    run_train(gan, batches, rng, 2, out=folder)
    return (folder / "checkpoint.npz").read_bytes()


@given(frac=st.floats(0.0, 0.999))
def test_truncated_checkpoint_is_a_clear_error(good_checkpoint, tmp_path_factory, frac):
    path = tmp_path_factory.mktemp("trunc") / "checkpoint.npz"
    path.write_bytes(good_checkpoint[:int(frac * len(good_checkpoint))])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_training_checkpoint(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("what", ["garbage", "zeroed_middle", "npy"])
def test_corrupt_checkpoint_is_a_clear_error(good_checkpoint, tmp_path, what):
    path = tmp_path / "checkpoint.npz"
    if what == "garbage":
        path.write_bytes(b"this is not a checkpoint at all" * 10)
    elif what == "zeroed_middle":
        data = bytearray(good_checkpoint)
        mid = len(data) // 2
        data[mid:mid + 4096] = bytes(4096)
        path.write_bytes(bytes(data))
    else:
        np.save(open(path, "wb"), np.zeros(3))
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_training_checkpoint(path)
    assert str(path) in str(err.value)


def test_other_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.npz", {"w": np.zeros(2)}, {"step": 1})
    with pytest.raises(ValueError, match="not a nanogan training checkpoint") as err:
        load_training_checkpoint(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match=re.escape("missing.npz")):
        load_training_checkpoint(tmp_path / "missing.npz")


# ---------------------------------------------------------------------------- 3. NaN guard
class NaNAfter:
    """Minibatches that turn into NaN from the ``after + 1``-th batch on (keeps ``state()``)."""

    def __init__(self, batches: Minibatches, after: int) -> None:
        self.batches, self.after, self.served = batches, after, 0

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        x = next(self.batches)
        self.served += 1
        return np.full_like(x, np.nan) if self.served > self.after else x

    def state(self):
        return self.batches.state()


@pytest.mark.parametrize("k", [1, 2])
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, k):
    """NaN real data from iteration 8 on: the run stops there, naming the step and d_loss; the
    checkpoint of step 5 is intact, loads, and equals a clean 5-step run."""
    gan, batches, rng = make_run(0, k=k)
    with pytest.raises(NonFiniteError, match=r"step 8: d_loss is nan"):
        run_train(gan, NaNAfter(batches, 7 * k), rng, 20, out=tmp_path, checkpoint_every=5)
    assert gan.steps == 8
    state = load_training_checkpoint(tmp_path / "checkpoint.npz")
    saved = state["gan"]
    assert saved.steps == 5
    for model in (saved.G, saved.D):
        for p in model.params.values():
            assert np.isfinite(p).all()
    clean, clean_batches, clean_rng = make_run(0, k=k)
    run_train(clean, clean_batches, clean_rng, 5)
    assert_same_training_state(clean, saved)
    assert len(state["history"]["d_loss"]) == 5
    rows = read_csv(tmp_path / "metrics.csv")
    assert [int(r[0]) for r in rows[1:]] == [1, 2, 3, 4, 5]
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_absurd_learning_rate_stops_with_a_named_quantity(tmp_path):
    """4 good steps (checkpointed), then lr = 1e20: D's logits overflow at step 5."""
    gan, batches, rng = make_run(0)
    run_train(gan, batches, rng, 4, out=tmp_path)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    gan.d_opt.lr = gan.g_opt.lr = 1e20
    with pytest.raises(NonFiniteError, match=r"training step 5: (d|g)_loss is nan"):
        run_train(gan, batches, rng, 50, out=tmp_path, checkpoint_every=1)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    saved = load_training_checkpoint(tmp_path / "checkpoint.npz")["gan"]
    assert saved.steps == 4 and saved.d_opt.lr == 1e-3
    assert all(np.isfinite(p).all() for p in saved.D.params.values())


def test_nan_in_weights_is_never_checkpointed(tmp_path):
    gan, batches, rng = make_run(0)
    run_train(gan, batches, rng, 2, out=tmp_path)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    gan.D.params["2.bias"][0] = np.nan
    with pytest.raises(NonFiniteError, match=r"D\.2\.bias"):
        run_train(gan, batches, rng, 2, out=tmp_path)  # nothing to do but the final checkpoint
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_example_script_exits_1_on_nan(tmp_path, capsys, monkeypatch):
    """Real batches turn into NaN at iteration 13: exit code 1, a one-line error naming the step
    and the quantity, and the checkpoint of step 10 intact."""
    example = load_example()

    class NaNMinibatches(Minibatches):
        served = 0

        def __next__(self) -> np.ndarray:
            x = super().__next__()
            NaNMinibatches.served += 1
            return x if NaNMinibatches.served <= 12 else np.full_like(x, np.nan)

    monkeypatch.setattr(example, "Minibatches", NaNMinibatches)
    rc = example.main(["--steps", "30", "--batch-size", "16", "--hidden", "16", "--out",
                       str(tmp_path), "--no-progress", "--checkpoint-every", "5"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training step 13: d_loss is nan (not finite)"), err
    saved = load_training_checkpoint(tmp_path / "checkpoint.npz")
    assert saved["gan"].steps == 10
    assert all(np.isfinite(p).all() for p in saved["gan"].G.params.values())
    assert all(np.isfinite(p).all() for p in saved["gan"].D.params.values())


# ---------------------------------------------------------------------------- 4. outputs
def test_outputs_of_a_short_run(tmp_path):
    # 28x28 "images" so that samples.png is a real 8x8 grid
    rng = np.random.default_rng(0)
    gan = GAN(mlp_generator(Z_DIM, HIDDEN, 784, rng=rng), mlp_discriminator(784, HIDDEN, rng=rng))
    data = np.tanh(np.random.default_rng(1).standard_normal((40, 784))).astype(np.float32)
    batches = Minibatches(data, 8, 2)
    hist = run_train(gan, batches, rng, 7, out=tmp_path, sample_every=3, checkpoint_every=4)
    for name in ("samples.png", "losses.png", "metrics.csv", "checkpoint.npz"):
        assert (tmp_path / name).is_file(), name
    for name in ("samples.png", "losses.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["checkpoint.npz", "losses.png", "metrics.csv", "samples.png"]
    import matplotlib.image

    grid = matplotlib.image.imread(tmp_path / "samples.png")
    assert grid.shape[:2] == (3 * (8 * 30 + 2), 3 * (8 * 30 + 2))
    rows = read_csv(tmp_path / "metrics.csv")
    assert rows[0] == ["step", *HISTORY_KEYS]
    assert len(rows) == 1 + 7
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 8)) == hist["step"]
    for j, key in enumerate(HISTORY_KEYS, start=1):
        got = np.array([float(r[j]) for r in rows[1:]])
        np.testing.assert_allclose(got, hist[key], rtol=1e-5)
        assert np.isfinite(got).all()
    assert set(float(r[5]) for r in rows[1:]) <= {i / 16 for i in range(17)}  # D_acc of 16 scores
    assert int(load_checkpoint(tmp_path / "checkpoint.npz")[0]["gan.steps"]) == 7


def test_same_seed_same_metrics(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        gan, batches, rng = make_run(seed)
        run_train(gan, batches, rng, 5, out=tmp_path / name)
    a, b, c = ((tmp_path / n / "metrics.csv").read_bytes() for n in "abc")
    assert a == b
    assert a != c


def test_history_without_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gan, batches, rng = make_run(0)
    hist = run_train(gan, batches, rng, 3, progress=True)
    assert hist["step"] == [1, 2, 3]
    assert all(len(hist[k]) == 3 for k in HISTORY_KEYS)
    assert list(tmp_path.iterdir()) == []
    # already there: nothing more to do
    w = gan.D.params["0.weight"].copy()
    assert run_train(gan, batches, rng, 3, history=hist) is hist
    assert hist["step"] == [1, 2, 3]
    np.testing.assert_array_equal(gan.D.params["0.weight"], w)
