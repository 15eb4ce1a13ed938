"""``nanogan train`` / ``resume`` / ``bench`` and ``evaluate`` on any data: short runs (2-4 steps,
tiny networks) on image folders, IDX files and arrays generated here, in-process through
``nanogan.__main__.main``; subprocesses only where a signal is needed."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nanogan.__main__ import main
from nanogan.runconfig import load_toml
from nanogan.runs import checkpoints
from nanogan.train import load_training_checkpoint

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "2", "--batch-size", "4", "--z-dim", "8", "--eval-samples", "8",
        "--sample-every", "1", "--checkpoint-every", "1", "--keep", "1", "--no-progress"]


# ---------------------------------------------------------------------------------- data
def _shape_image(rng: np.random.Generator, h: int, w: int, colour: bool) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), h // 5
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    if not colour:
        return np.where(mask, 230, 20).astype(np.uint8)
    a = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 60, 3).astype(np.uint8)
    a[mask] = rng.integers(120, 256, 3)
    return a


def _write_idx(path: Path, a: np.ndarray) -> None:
    header = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">i4").tobytes()
    path.write_bytes(gzip.compress(header + a.astype(np.uint8).tobytes()))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Grey images in one subfolder per class (non-square, PNG), colour images without classes
    (PNG, JPEG, one RGBA), an IDX pair in the Fashion-MNIST layout, an .npz with labels, an
    .npy of floats in [-1, 1]."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    grey = root / "grey"
    for cls in ("circle", "dot"):
        (grey / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(_shape_image(rng, 20, 24, False), "L").save(grey / cls / f"{i}.png")
    colour = root / "colour"
    colour.mkdir()
    for i in range(8):
        img = Image.fromarray(_shape_image(rng, 30, 36, True), "RGB")
        img.save(colour / (f"{i}.jpg" if i % 2 else f"{i}.png"))
    Image.fromarray(_shape_image(rng, 30, 30, True)).convert("RGBA").save(colour / "alpha.png")
    idx = root / "fashion"
    idx.mkdir()
    imgs = np.stack([_shape_image(rng, 28, 28, False) for _ in range(12)])
    _write_idx(idx / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(idx / "train-labels-idx1-ubyte.gz", np.arange(12) % 3)
    npz = root / "arrays.npz"
    np.savez(npz, x=np.stack([_shape_image(rng, 16, 16, False) for _ in range(12)]),
             y=np.arange(12) % 3)
    npy = root / "floats.npy"
    np.save(npy, np.tanh(rng.standard_normal((12, 3, 8, 8))).astype(np.float32))
    return {"grey": grey, "colour": colour, "idx": idx, "npz": npz, "npy": npy, "root": root}


def train(*args: str) -> int:
    return main(["train", *map(str, args)])


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------- smoke
SMOKE = [  # model, data, image size (0: the data's), expected (C, S), width, more flags
    ("vanilla", "mnist", 0, (1, 28), 8, ["--max-images", "64"]),
    ("vanilla", "npy", 0, (3, 8), 8, []),
    ("dcgan", "grey", 16, (1, 16), 4, []),
    ("dcgan", "colour", 32, (3, 32), 4, ["--d-norm", "none"]),
    ("dcgan", "idx", 0, (1, 28), 4, ["--d-norm", "layer"]),
    ("cgan", "grey", 12, (1, 12), 8, []),
    ("cgan", "npz", 0, (1, 16), 8, []),
    ("wgan", "npz", 16, (1, 16), 4, []),
    ("wgan-gp", "colour", 16, (3, 16), 4, []),
    ("r1", "grey", 16, (1, 16), 4, []),
    ("goodfellow2014", "idx", 0, (1, 28), 8, []),
]


@pytest.mark.parametrize("model,kind,size,expected,width,extra", SMOKE,
                         ids=[f"{m}-{k}-{s}" for m, k, s, *_ in SMOKE])
def test_train_every_model_and_data_kind(data, tmp_path, capsys, model, kind, size, expected,
                                         width, extra):
    src = "mnist" if kind == "mnist" else data[kind]
    out = tmp_path / "run"
    status = train(model, "--data", src, "--image-size", size, "--width", width, "--out", out,
                   *TINY, *extra)
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "done: step 2" in printed.out
    for name in ("config.toml", "metrics.csv", "samples.png", "progress.gif", "losses.png",
                 "checkpoints/best.npz", "samples/step-0000001.png", "samples/step-0000002.png"):
        assert (out / name).is_file(), name
    assert [s for s, _ in checkpoints(out)] == [2]  # --keep 1
    assert (out / "progress.gif").read_bytes()[:6] == b"GIF89a"
    config = load_toml(out / "config.toml")
    assert config["model"] == model and config["steps"] == 2 and config["width"] == width
    assert (config["channels"], config["image_size"]) == expected
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,d_loss") and [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    state = load_training_checkpoint(out / "checkpoints" / "step-0000002.npz")
    gan = state["gan"]
    assert gan.steps == 2 and state["extra"]["run"]["model"] == model
    c, s = expected
    assert gan.G(state["fixed_z"][:2], train=False).shape == (2, c, s, s)


def test_help_explains_every_option_with_its_default(capsys):
    from nanogan.runconfig import KEYS

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for key in KEYS:
        if key not in ("model", "progress"):
            assert "--" + key.replace("_", "-") in text, key
    assert "--no-progress" in text and text.count("default") >= len(KEYS)
    for model in ("vanilla", "dcgan", "cgan", "wgan", "wgan-gp", "r1", "goodfellow2014"):
        assert f"\n  {model} " in text


# ---------------------------------------------------------------------------------- resume
def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k not in ("__meta__", "history.mmd")}


@pytest.mark.parametrize("model,kind,size", [("dcgan", "grey", 16), ("goodfellow2014", "idx", 0),
                                             ("wgan-gp", "colour", 16)])
def test_resume_continues_bit_for_bit(data, tmp_path, capsys, model, kind, size):
    width = 8 if model in ("cgan", "goodfellow2014") else 4
    common = ["--data", data[kind], "--image-size", size, "--width", width,
              "--batch-size", "4", "--z-dim", "8", "--eval-samples", "8",
              "--no-progress", "--sample-every", "2"]
    assert train(model, "--out", tmp_path / "straight", "--steps", 4, *common) == 0
    assert train(model, "--out", tmp_path / "split", "--steps", 2, *common) == 0
    assert main(["resume", str(tmp_path / "split"), "--steps", "4"]) == 0
    assert "resuming" in capsys.readouterr().out
    a = _arrays(tmp_path / "straight" / "checkpoints" / "step-0000004.npz")
    b = _arrays(tmp_path / "split" / "checkpoints" / "step-0000004.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    grid_a = (tmp_path / "straight" / "samples" / "step-0000004.png").read_bytes()
    assert grid_a == (tmp_path / "split" / "samples" / "step-0000004.png").read_bytes()
    assert load_toml(tmp_path / "split" / "config.toml")["steps"] == 4  # the new total


def test_config_file_is_equivalent_to_the_flags(data, tmp_path):
    assert train("dcgan", "--data", data["grey"], "--image-size", 16, "--width", 4,
                 "--out", tmp_path / "a", *TINY) == 0
    config = tmp_path / "a" / "config.toml"
    assert train("--config", config, "--out", tmp_path / "b") == 0
    for name in ("step-0000002.npz", "best.npz"):
        a = _arrays(tmp_path / "a" / "checkpoints" / name)
        b = _arrays(tmp_path / "b" / "checkpoints" / name)
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    # a flag given on the command line wins over the file
    assert train("--config", config, "--out", tmp_path / "c", "--steps", 1) == 0
    assert [s for s, _ in checkpoints(tmp_path / "c")] == [1]


# ---------------------------------------------------------------------------------- signals
def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_exits_130(data, tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanogan", "train", "dcgan", "--data", str(data["grey"]),
         "--image-size", "16", "--width", "4", "--z-dim", "8", "--batch-size", "4",
         "--steps", "1000000", "--checkpoint-every", "0", "--sample-every", "0",
         "--eval-samples", "8", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # training starts after this line
            if line.startswith("run folder:"):
                break
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped by Ctrl-C at step" in rest and f"nanogan resume {out}" in rest
    assert "Traceback" not in err
    (step, path), = checkpoints(out)
    state = load_training_checkpoint(path)
    assert state["gan"].steps == step
    assert main(["resume", str(out), "--steps", str(step + 1), "--no-progress"]) == 0
    assert load_training_checkpoint(latest(out))["gan"].steps == step + 1


def latest(out: Path) -> Path:
    return checkpoints(out)[-1][1]


_KILL_DURING_WRITE = """
import os, signal, sys
import numpy as np
def savez(f, **arrays):  # the process dies halfway through writing the new checkpoint
    f.write(b"PK\\x03\\x04 half a checkpoint"); f.flush(); os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
np.savez = savez
from nanogan.__main__ import main
sys.exit(main(["resume", sys.argv[1], "--steps", "4", "--no-progress"]))
"""


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one(data, tmp_path):
    out = tmp_path / "run"
    assert train("dcgan", "--data", data["grey"], "--image-size", 16, "--width", 4, "--out", out,
                 *TINY) == 0
    before = files_of(out)
    proc = subprocess.run([sys.executable, "-c", _KILL_DURING_WRITE, str(out)], env=_env(),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    after = files_of(out)
    saved = {k: v for k, v in after.items() if k.startswith("checkpoints/")}
    assert {k: v for k, v in saved.items() if not k.endswith(".tmp")} == \
        {k: v for k, v in before.items() if k.startswith("checkpoints/")}  # untouched
    assert [k for k in saved if k.endswith(".tmp")]  # the dead process's half-written file
    assert after["metrics.csv"] == before["metrics.csv"]
    assert load_training_checkpoint(out / "checkpoints" / "step-0000002.npz")["gan"].steps == 2
    assert main(["resume", str(out), "--steps", "3", "--no-progress"]) == 0
    assert load_training_checkpoint(latest(out))["gan"].steps == 3


# ---------------------------------------------------------------------------------- errors
def _error(capsys, *argv: str) -> str:
    status = main([*map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_errors_are_one_line_and_write_nothing(data, tmp_path, capsys):
    out = tmp_path / "never"
    base = ["--out", out, *TINY]
    err = _error(capsys, "train", "dcgan", "--data", tmp_path / "missing", *base)
    assert "no such file or folder" in err
    (tmp_path / "empty").mkdir()
    err = _error(capsys, "train", "dcgan", "--data", tmp_path / "empty", *base)
    assert "no PNG or JPEG images" in err and "put .png/.jpg files there" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad / "good.png")
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    err = _error(capsys, "train", "vanilla", "--data", bad, *base)
    assert "broken.png" in err and "cannot read this image" in err and "delete" in err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(mixed / "grey.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "colour.png")
    err = _error(capsys, "train", "vanilla", "--data", mixed, *base)
    assert "mixes greyscale" in err and "--channels 1 or --channels 3" in err
    err = _error(capsys, "train", "dcgan", "--data", data["grey"], "--image-size", 48, *base)
    assert "48 is impossible" in err and "power of two" in err and "--image-size" in err
    err = _error(capsys, "train", "cgan", "--data", data["colour"], "--image-size", 8, *base)
    assert "needs labels" in err
    err = _error(capsys, "train", "r1", "--data", data["grey"], "--image-size", 16,
                 "--d-norm", "batch", *base)
    assert "BatchNorm2d" in err and "LayerNorm" in err
    toml = tmp_path / "run.toml"
    toml.write_text('model = "dcgan"\nlrate = 0.001\n')
    err = _error(capsys, "train", "--config", toml, *base)
    assert "unknown key 'lrate'" in err and "did you mean 'lr'" in err
    assert not out.exists()


def test_resume_refuses_other_models_data_and_folders(data, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train("dcgan", "--data", data["grey"], "--image-size", 16, "--width", 4, "--out", a,
                 *TINY) == 0
    assert train("vanilla", "--data", data["grey"], "--image-size", 16, "--width", 8, "--out", b,
                 *TINY) == 0
    capsys.readouterr()
    before = files_of(a)
    err = _error(capsys, "resume", a, "--checkpoint", latest(b), "--steps", 3)
    assert "checkpoint of model 'vanilla'" in err and "trains 'dcgan'" in err
    err = _error(capsys, "resume", a, "--data", data["colour"], "--steps", 3)
    assert "trained on other data" in err and "--data" in err
    err = _error(capsys, "train", "dcgan", "--data", data["grey"], "--image-size", 16,
                 "--out", a, *TINY)
    assert "already holds a run" in err and f"nanogan resume {a}" in err
    err = _error(capsys, "resume", tmp_path)
    assert "not a run folder" in err
    latest(a).write_bytes(b"PK\x03\x04 truncated")  # a corrupt newest checkpoint
    err = _error(capsys, "resume", a, "--checkpoint", latest(a), "--steps", 3)
    assert "truncated or corrupt" in err
    assert {k: v for k, v in files_of(a).items() if "step-" not in k} == \
        {k: v for k, v in before.items() if "step-" not in k}


def test_resume_skips_a_corrupt_newest_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("dcgan", "--data", data["grey"], "--image-size", 16, "--width", 4, "--out", out,
                 *TINY, "--keep", 3) == 0
    assert [s for s, _ in checkpoints(out)] == [1, 2]
    latest(out).write_bytes(b"not a zip")
    assert main(["resume", str(out), "--steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert "skipped unreadable checkpoint step-0000002.npz" in printed
    assert "from step 1" not in printed and "(step 1 of 3)" in printed


# ---------------------------------------------------------------------------------- other commands
def test_bench_sample_and_evaluate_on_colour_images(data, tmp_path, capsys):
    assert main(["bench", "vanilla", "--image-size", "8", "--channels", "3", "--width", "8",
                 "--batch-size", "4", "--steps", "1", "--warmup", "0"]) == 0
    assert "not the published comparison" in capsys.readouterr().out
    out = tmp_path / "run"
    assert train("dcgan", "--data", data["colour"], "--image-size", 16, "--width", 4,
                 "--out", out, *TINY) == 0
    ckpt = latest(out)
    assert main(["sample", str(ckpt), "--n", "5", "--out", str(tmp_path / "s.npy"),
                 "--png", str(tmp_path / "s.png")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (5, 3, 16, 16) and -1 <= x.min() and x.max() <= 1
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode in ("RGB", "RGBA")
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--n", "16", "--json"]) == 0
    pixels = json.loads(capsys.readouterr().out)
    assert pixels["space"] == "pixels" and pixels["dims"] == 3 * 16 * 16
    assert pixels["n"] == 16 and pixels["n_reference"] == 9 and pixels["mmd"] > 0
    feats = tmp_path / "feats.py"
    feats.write_text("def colour_means(x):\n    return x.mean(axis=(2, 3))\n")
    assert main(["evaluate", str(tmp_path / "s.npy"), "--data", str(data["colour"]),
                 "--features", f"{feats}:colour_means", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["space"] == "features" and result["dims"] == 3 and result["n"] == 5
    # the training images themselves score far better than 2 steps of training
    real = tmp_path / "real.npy"
    from nanogan.datasets import load_dataset

    np.save(real, load_dataset(data["colour"], 16).images)
    assert main(["evaluate", str(real), "--data", str(data["colour"]), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["space"] == "pixels" and same["mmd"] < 0.5 * pixels["mmd"]
