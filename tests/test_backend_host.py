"""Host-side code takes arrays of any backend: metrics, sample grids, data, the classifier.

Each function is given the same data once as NumPy arrays and once as arrays of a device backend
(CuPy's under ``NANOGAN_BACKEND=cupy`` on a GPU, else the strict test arrays, which refuse
implicit conversion as CuPy's do) and must give the same result, on the host.
"""

from __future__ import annotations

import numpy as np
import pytest

from nanogan import Dense, Flatten, ReLU, Sequential, backend
from nanogan.data import Minibatches, scale_images, unscale_images
from nanogan.metrics import (
    class_histogram,
    fid,
    inception_score,
    mmd2_unbiased,
    parzen_log_likelihood,
    precision_recall,
    subset_mmd2,
)
from nanogan.metrics.classifier import (
    log_softmax,
    run_classifier,
    softmax_cross_entropy,
)
from nanogan.metrics.evaluate import check_samples
from nanogan.metrics.features import MnistFeatures, to_classifier_input
from nanogan.metrics.mmd import kernel_matrix, median_bandwidth
from nanogan.metrics.pixel import pixel_metrics
from nanogan.plot import image_grid, save_grid, save_loss_plot, save_wasserstein_plot

DEVICE = backend.get_backend() if backend.get_backend() != "numpy" else "strict"


@pytest.fixture
def device(device_backend):
    """The device backend of conftest's ``device_backend`` for one test; yields ``asarray``."""
    assert device_backend == DEVICE
    yield backend.asarray


def on_device(value):
    return backend.is_array(value) and not isinstance(value, np.ndarray)


def test_the_fixture_gives_device_arrays(device):
    x = device(np.ones(3))
    assert on_device(x)
    with pytest.raises(TypeError):
        np.asarray(x)


def test_image_grid_and_png(device, tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 6, 6))
    want = image_grid(x, nrow=3)
    got = image_grid(device(x), nrow=3)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, want)
    colour = np.random.default_rng(1).uniform(-1, 1, (3, 3, 4, 4))
    np.testing.assert_array_equal(image_grid(device(colour)), image_grid(colour))
    save_grid(device(x), tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_loss_plots_take_device_scalars(device, tmp_path):
    """A history whose losses are 0-d device arrays (not yet converted to floats) plots."""
    losses = [device(np.array(v)) for v in (0.7, 0.6, 0.65, 0.5)]
    history = {"step": [1, 2, 3, 4], "d_loss": losses, "g_loss": losses[::-1]}
    save_loss_plot(history, tmp_path / "loss.png", smooth=2)
    save_wasserstein_plot(history, tmp_path / "w.png", smooth=2)
    assert (tmp_path / "loss.png").stat().st_size > 0 and (tmp_path / "w.png").stat().st_size > 0


def test_feature_metrics_equal_on_device_inputs(device):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((40, 5)), rng.standard_normal((30, 5)) + 0.3
    da, db = device(a), device(b)
    assert fid(da, db) == pytest.approx(fid(a, b), rel=1e-12)
    assert median_bandwidth(da, db) == median_bandwidth(a, b)
    for kernel, sigma in (("poly", None), ("rbf", 1.5)):
        np.testing.assert_array_equal(kernel_matrix(da, db, kernel, sigma),
                                      kernel_matrix(a, b, kernel, sigma))
        assert mmd2_unbiased(da, db, kernel, sigma) == mmd2_unbiased(a, b, kernel, sigma)
        assert subset_mmd2(da, db, kernel, 5, 10, 0, sigma) == subset_mmd2(a, b, kernel, 5, 10,
                                                                           0, sigma)
    assert precision_recall(da, db, k=3) == precision_recall(a, b, k=3)
    assert parzen_log_likelihood(da, db, 0.5).tolist() == parzen_log_likelihood(a, b,
                                                                                0.5).tolist()
    p = np.exp(log_softmax(rng.standard_normal((20, 10))))
    assert inception_score(device(p), splits=2) == inception_score(p, splits=2)
    assert class_histogram(device(p)) == class_histogram(p)


def test_squared_distances_stay_on_the_device(device):
    """The distances of the MMD metric also serve the MMD generator loss, on device arrays."""
    from nanogan.metrics.mmd import _sq_dist

    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    got = _sq_dist(device(a), device(b))
    assert on_device(got)
    np.testing.assert_allclose(backend.to_numpy(got), _sq_dist(a, b), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(_sq_dist(a, b), ((a[:, None] - b[None]) ** 2).sum(-1), rtol=1e-12)


def test_pixel_metrics_and_sample_checks(device):
    rng = np.random.default_rng(3)
    x, real = rng.uniform(-1, 1, (12, 1, 4, 4)), rng.uniform(-1, 1, (14, 1, 4, 4))
    assert pixel_metrics(device(x), device(real), subset_size=8, n_subsets=3) == \
        pixel_metrics(x, real, subset_size=8, n_subsets=3)
    assert check_samples(device(x), None) == (-1.0, 1.0)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_samples(device(bad), None)
    imgs = rng.uniform(-1, 1, (3, 784)).astype(np.float32)
    np.testing.assert_array_equal(to_classifier_input(device(imgs)), to_classifier_input(imgs))


def test_scaling_takes_device_arrays(device):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (3, 5, 5), dtype=np.uint8)
    np.testing.assert_array_equal(scale_images(device(images)), scale_images(images))
    x = rng.uniform(-1.2, 1.2, (3, 1, 5, 5))
    got = unscale_images(device(x))
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, unscale_images(x))


def test_minibatches_of_device_data_stay_on_the_device(device):
    x = np.arange(30.0).reshape(10, 3)
    host, dev = Minibatches(x, 4, rng=5), Minibatches(device(x), 4, rng=5)
    for _ in range(6):  # across epoch boundaries
        want, got = next(host), next(dev)
        assert on_device(got)
        np.testing.assert_array_equal(backend.to_numpy(got), want)
    assert dev.state() == host.state()


def test_softmax_cross_entropy_on_device_logits(device):
    rng = np.random.default_rng(6)
    s = rng.standard_normal((7, 10)) * 5
    y = rng.integers(0, 10, 7)
    loss, grad = softmax_cross_entropy(s, y)
    dloss, dgrad = softmax_cross_entropy(device(s), y)
    assert on_device(dgrad)
    assert dloss == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(backend.to_numpy(dgrad), grad, rtol=1e-13, atol=1e-16)
    dloss2, _ = softmax_cross_entropy(device(s), device(y))  # labels on the device too
    assert dloss2 == dloss
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        softmax_cross_entropy(device(s), y + 10)
    lp = log_softmax(device(s))
    assert on_device(lp)
    np.testing.assert_allclose(backend.to_numpy(lp), log_softmax(s), rtol=1e-14)


def _mlp_classifier(seed: int) -> Sequential:
    """A classifier with the MNIST classifier's layout (features after layer 9), Dense only."""
    rng = np.random.default_rng(seed)
    return Sequential(Flatten(), Dense(784, 16, rng=rng), ReLU(), Dense(16, 16, rng=rng), ReLU(),
                      Dense(16, 16, rng=rng), ReLU(), Dense(16, 128, rng=rng), ReLU(),
                      Dense(128, 10, rng=rng))


def test_run_classifier_moves_batches_and_returns_host_arrays(device):
    x = np.random.default_rng(7).uniform(-1, 1, (11, 1, 28, 28)).astype(np.float32)
    previous = backend.get_backend()
    backend.set_backend("numpy")
    want = run_classifier(_mlp_classifier(0), x, batch_size=4)
    backend.set_backend(previous)
    model = _mlp_classifier(0)  # built on the device backend
    assert on_device(next(iter(model.params.values())))
    for inp in (x, device(x)):
        feats, logits = run_classifier(model, inp, batch_size=4)
        assert type(feats) is np.ndarray and type(logits) is np.ndarray
        np.testing.assert_allclose(feats, want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(logits, want[1], rtol=1e-4, atol=1e-5)


def test_mnist_features_move_a_host_model_to_the_device():
    """MnistFeatures loaded under NumPy, called under a device backend: a copy of its model
    moves to the device and gives the same features (the original model is left as it was)."""
    x = np.random.default_rng(8).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    previous = backend.get_backend()
    backend.set_backend("numpy")
    model = _mlp_classifier(1)
    features = MnistFeatures(model)
    want = features(x)
    backend.set_backend(DEVICE)
    try:
        got = features(x)
        assert features.model is not model
        assert all(on_device(p) for p in features.model.params.values())
        assert all(type(p) is np.ndarray for p in model.params.values())
        for g, w in zip(got, want):
            assert type(g) is np.ndarray
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        assert features(x)[0].tolist() == got[0].tolist()  # moved once, then used as it is
    finally:
        backend.set_backend(previous)


def test_the_mnist_classifier_on_the_device_backend(device):
    """The shipped classifier (convolutions included), loaded under NumPy, gives the same
    features and probabilities on the device backend."""
    from nanogan.metrics.features import load_classifier

    x = np.random.default_rng(10).uniform(-1, 1, (5, 1, 28, 28)).astype(np.float32)
    previous = backend.get_backend()
    backend.set_backend("numpy")
    try:
        features = load_classifier(log=None)
        want = features(x)
    finally:
        backend.set_backend(previous)
    got = features(device(x))
    assert all(on_device(p) for p in features.model.params.values())
    for g, w in zip(got, want):
        assert type(g) is np.ndarray
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_example_sample_and_evaluate_end_to_end_on_the_device_backend(tmp_path):
    """An example trains on the device backend (a session's cupy, else strict) and writes its
    grid, plot and checkpoint; ``nanogan sample`` and ``nanogan evaluate`` on that checkpoint
    give the same samples and metrics as on NumPy."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(backend_name, *args):
        env = {**os.environ, "NANOGAN_BACKEND": backend_name,
               "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                             cwd=root, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout

    out = tmp_path / "run"
    run(DEVICE, "examples/dcgan_mnist.py", "--steps", "3", "--batch-size", "8", "--out",
        str(out), "--no-progress", "--sample-every", "2", "--checkpoint-every", "3")
    for name in ("samples.png", "losses.png", "checkpoint.npz"):
        assert (out / name).stat().st_size > 0, name
    ckpt = str(out / "checkpoint.npz")
    samples, metrics = {}, {}
    for b in (DEVICE, "numpy"):
        run(b, "-m", "nanogan", "sample", ckpt, "--n", "12", "--out", str(tmp_path / f"{b}.npy"),
            "--png", str(tmp_path / f"{b}.png"))
        samples[b] = np.load(tmp_path / f"{b}.npy")
        metrics[b] = json.loads(run(b, "-m", "nanogan", "evaluate", ckpt, "--n", "40",
                                    "--reference", "40", "--no-parzen", "--json"))
    np.testing.assert_allclose(samples[DEVICE], samples["numpy"], rtol=1e-4, atol=1e-5)
    for key in ("fid", "is", "precision", "recall", "mmd"):
        assert metrics[DEVICE][key] == pytest.approx(metrics["numpy"][key], rel=1e-4, abs=1e-6)
