"""Every example runs unchanged on a device array backend, and gives the NumPy backend's results.

Each example's ``main(argv)`` runs in-process in its smallest configuration under conftest's
``device_backend`` (CuPy under ``NANOGAN_BACKEND=cupy`` on a GPU, else the strict test arrays,
which refuse NumPy's functions and implicit conversion as CuPy's do) and must write its outputs.
Where it is cheap, the same run on the NumPy backend (with the reference kernels, which the strict
backend runs too) must give the same checkpoint arrays (or samples), to float32 round-off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from nanogan import _kernels, backend

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str):
    """Import ``examples/<name>.py`` as a module (examples/ on sys.path for its helpers)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"backend_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def numpy_backend():
    """The NumPy backend with the reference kernels inside the block (the kernels the strict
    backend runs, so that the two agree to the bit but for BLAS), the device backend after it."""
    previous = backend.get_backend()
    backend.set_backend("numpy")
    kernels = _kernels.get_backend()
    _kernels.set_backend("reference")
    try:
        yield
    finally:
        _kernels.set_backend(kernels)
        backend.set_backend(previous)


def arrays(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of an ``.npz`` checkpoint (metadata and timings left out)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files
                if not k.startswith("__") and "second" not in k and z[k].dtype.kind in "biuf"}


def assert_same_arrays(got: dict, want: dict) -> None:
    assert got.keys() == want.keys() and got
    for k in want:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6, err_msg=k)


def assert_files(out: Path, *names: str) -> None:
    for name in names:
        assert (out / name).stat().st_size > 0, name


def run_both(tmp_path: Path, name: str, args: list[str], *files: str) -> tuple[Path, Path]:
    """``examples/<name>.py`` with ``args`` on the device backend, then on NumPy; both outputs
    must hold ``files``, and their checkpoints the same arrays."""
    module = example(name)
    dev, host = tmp_path / "device", tmp_path / "numpy"
    assert module.main([*args, "--out", str(dev)]) == 0
    with numpy_backend():
        assert module.main([*args, "--out", str(host)]) == 0
    for out in (dev, host):
        assert_files(out, *files)
    assert_same_arrays(arrays(dev / "checkpoint.npz"), arrays(host / "checkpoint.npz"))
    return dev, host


QUIET = ["--steps", "2", "--no-progress"]


@pytest.mark.parametrize("name,args,files", [
    ("ebgan_mnist", [*QUIET, "--batch-size", "16", "--n-samples", "100"],
     ("samples.png", "reconstructions.png", "losses.png", "metrics.csv", "samples.npy")),
    ("gmn_mnist", [*QUIET, "--batch-size", "16", "--n-samples", "100"],
     ("samples.png", "losses.png", "metrics.csv", "samples.npy", "summary.json")),
    ("gmn_mnist", [*QUIET, "--data", "ring", "--batch-size", "32", "--eval-every", "1"],
     ("ring.png", "losses.png", "summary.json")),
    ("dann_mnist", [*QUIET, "--quick", "--eval-every", "1"],
     ("dann.png", "accuracy.csv", "summary.json")),
    ("vanilla_mnist", [*QUIET, "--batch-size", "8", "--hidden", "32"],
     ("samples.png", "losses.png")),
    ("dcgan_mnist", [*QUIET, "--batch-size", "4"], ("samples.png", "losses.png")),
    ("wgan_gp_mnist", [*QUIET, "--batch-size", "4", "--k", "1"], ("samples.png", "losses.png")),
])
def test_training_example_on_the_device_backend(device_backend, tmp_path, name, args, files):
    dev, host = run_both(tmp_path, name, args, "checkpoint.npz", *files)
    if (dev / "samples.npy").exists():
        np.testing.assert_allclose(np.load(dev / "samples.npy"), np.load(host / "samples.npy"),
                                   rtol=1e-4, atol=1e-5)


def test_goodfellow2014_on_the_device_backend(device_backend, tmp_path):
    small = ["--epochs", "1", "--steps-per-epoch", "3", "--g-hidden", "16", "--d-units", "8",
             "--d-pieces", "2", "--parzen-every", "0"]
    run_both(tmp_path, "goodfellow2014_mnist", small)


def test_ring_2d_on_the_device_backend(device_backend, tmp_path):
    module = example("ring_2d")
    args = ["--steps", "2", "--eval-every", "1", "--seeds", "1", "--losses", "nonsaturating",
            "--remedies", "none", "noise", "ensemble"]
    got = module.main([*args, "--out", str(tmp_path / "device")])
    with numpy_backend():
        want = module.main([*args, "--out", str(tmp_path / "numpy")])
    assert_files(tmp_path / "device", "overview.png", "curves.png", "nonsaturating_ensemble.png",
                 "ring_table.md", "results.json")
    for key, runs in want.items():
        assert type(got[key][0]["samples"]) is np.ndarray  # back on the host for the plots
        np.testing.assert_allclose(got[key][0]["samples"], runs[0]["samples"], rtol=1e-4,
                                   atol=1e-5)


def test_toy_1d_pieces_on_the_device_backend(device_backend):
    """The toy's experiments in miniature (its ``--quick`` run takes half a minute on the
    strict arrays): Proposition 1 for a trained D and an ensemble, the MLP GAN with its JSD and
    loss profile; host curves, and the NumPy backend's numbers."""
    toy_1d = example("toy_1d")
    from nanogan import toy
    from nanogan.remedies import increasing_capacity_ensemble

    grid = np.linspace(-4.0, 6.0, 201)

    def experiment() -> tuple:
        rng = np.random.default_rng(0)
        D = toy_1d.mlp(8, 2, rng)
        toy_1d.train_discriminator(D, toy_1d.normal_sampler(2.0, rng),
                                   toy_1d.normal_sampler(0.5, rng), 3, batch=32)
        p1 = toy_1d.proposition1(D, toy.normal_pdf(grid, 2.0), toy.normal_pdf(grid, 0.5), grid)
        ens = increasing_capacity_ensemble(1, (0, 4), rng=rng, dtype=toy_1d.F64)
        d_ens = toy_1d.d_prob(ens, grid)
        shift = toy_1d.shift_grad(D, 0.5, "minimax", rng.standard_normal((16, 1)))
        mg = toy_1d.mlp_gan(2.0, 2, 1, 2, 2, rng)
        return p1, d_ens, shift, mg

    got = experiment()
    with numpy_backend():
        want = experiment()
    (p1, d_ens, shift, mg), (p1_np, d_ens_np, shift_np, mg_np) = got, want
    for key in ("d", "max_dev", "mean_dev", "V_trained"):
        np.testing.assert_allclose(p1[key], p1_np[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert type(p1["d"]) is np.ndarray and type(d_ens) is np.ndarray
    np.testing.assert_allclose(d_ens, d_ens_np, rtol=1e-9)
    assert shift == pytest.approx(shift_np, rel=1e-9)
    np.testing.assert_allclose(mg["p_g"], mg_np["p_g"], atol=1e-9)
    for key in ("jsd", "profile_score"):
        np.testing.assert_allclose(mg["history"][key], mg_np["history"][key], rtol=1e-7)


def test_latent_walk_on_a_cgan_trained_on_the_device_backend(device_backend, tmp_path):
    cgan = example("cgan_mnist")
    ckpt = tmp_path / "cgan" / "checkpoint.npz"
    assert cgan.main([*QUIET, "--batch-size", "8", "--hidden", "16", "--eval-per-class", "1",
                      "--out", str(ckpt.parent)]) == 0
    walk = example("latent_walk")
    out = tmp_path / "walk"
    assert walk.main([str(ckpt), "--out", str(out), "--rows", "2", "--steps", "3", "--pool", "20",
                      "--arith", "1:7", "--results", "2"]) == 0
    assert_files(out, "linear.png", "slerp.png", "arithmetic.png")

    def strips() -> np.ndarray:
        gan = walk.load_training_checkpoint(ckpt)["gan"]
        return walk.strips(walk.Decoder(gan), np.random.default_rng(0), 2, 3, walk.slerp)

    got = strips()
    with numpy_backend():
        want = strips()
    assert type(got) is np.ndarray and got.shape == (6, 1, 28, 28)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_anatomy_of_a_step_on_the_device_backend(device_backend, arch):
    anatomy = example("anatomy_of_a_step")
    got, want = io.StringIO(), io.StringIO()
    # lands where GAN.step does, within what Adam's first step makes of BLAS's summation order
    # near zero gradients (see tests/test_anatomy.py); a wrong gradient moves it by lr = 2e-4
    assert anatomy.main(["--arch", arch, "--batch-size", "4"], out=got) < 1e-4
    with numpy_backend():
        anatomy.main(["--arch", arch, "--batch-size", "4"], out=want)
    # the same printout, norms to 4 decimals, but the last line (a difference of ~1e-9)
    assert got.getvalue().splitlines()[:-1] == want.getvalue().splitlines()[:-1]


def test_nanogan_train_on_the_device_backend(device_backend, tmp_path):
    from PIL import Image

    from nanogan.__main__ import main

    folder = tmp_path / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(folder / f"{i}.png")
    runs = {"vanilla": ["--batch-size", "8"],
            "dcgan": ["--data", str(folder), "--image-size", "16", "--batch-size", "4"]}
    for model, extra in runs.items():
        for name, ctx in (("device", contextlib.nullcontext()), ("numpy", numpy_backend())):
            with ctx:
                assert main(["train", model, *extra, "--steps", "2", "--no-progress",
                             "--out", str(tmp_path / model / name)]) == 0
        dev, host = (sorted((tmp_path / model / n).rglob("*.npz")) for n in ("device", "numpy"))
        assert dev and [p.name for p in dev] == [p.name for p in host]
        assert_same_arrays(arrays(dev[-1]), arrays(host[-1]))
