"""Bad inputs through the public entry points: each ends in one clear line, nothing is lost.

Classes: (1) silent divergence, (2) flags, (3) checkpoints from elsewhere, (4) ``evaluate``
inputs, (5) partial state, (6) leftovers. The examples and ``python -m nanogan`` are run in a
subprocess where the exit status, signals or file permissions matter, and through ``main(argv)``
in-process where the behaviour is the same (argparse exits with status 2 either way).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanogan.__main__ import main as cli_main
from nanogan.checkpoint import (
    CheckpointError,
    clean_stale_temps,
    load_checkpoint,
    save_checkpoint,
)
from nanogan.data import Minibatches
from nanogan.gan import GAN, NonFiniteError
from nanogan.layers import (
    BatchNorm1d,
    BatchNorm2d,
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
)
from nanogan.models import mlp_discriminator, mlp_generator
from nanogan.optim import SGD, Adam
from nanogan.train import load_training_checkpoint, save_training_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(args: list[str], cwd: Path | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env(), timeout=timeout)


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}",
                                                  ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def one_line_error(text: str) -> str:
    """The last line of stderr; asserts there is no traceback."""
    assert "Traceback" not in text, text
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert lines, "no error message"
    return lines[-1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def tiny_gan(seed: int = 0, hidden: int = 8, lr: float = 1e-3) -> GAN:
    rng = np.random.default_rng(seed)
    G, D = mlp_generator(4, hidden, 784, rng=rng), mlp_discriminator(784, hidden, rng=rng)
    return GAN(G, D, g_opt=Adam(G, lr=lr), d_opt=Adam(D, lr=lr))


def data(n: int = 32) -> np.ndarray:
    return np.tanh(np.random.default_rng(1).standard_normal((n, 784))).astype(np.float32)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    """A training checkpoint of a tiny MLP GAN making 28x28 images (3 steps)."""
    folder = tmp_path_factory.mktemp("good")
    gan = tiny_gan()
    train(gan, Minibatches(data(), 8, 2), 3, np.random.default_rng(0), out=folder,
          progress=False, sample_every=0)
    return folder / "checkpoint.npz"


def rewrite(src: Path, dst: Path, arrays=None, meta=None, drop=()) -> Path:
    """A copy of checkpoint ``src`` at ``dst`` with arrays / metadata replaced (no checks)."""
    a, m = load_checkpoint(src)
    a.update(arrays or {})
    m.update(meta or {})
    for k in drop:
        a.pop(k, None)
    return save_checkpoint(dst, a, m)


# =============================================================================== 1. divergence
@pytest.mark.parametrize("where", ["optimizer state", "buffer", "parameter", "gradient"])
def test_divergence_the_losses_do_not_show_is_found_by_the_periodic_scan(where):
    """An infinity in Adam's second moment (the lsgan --lr 10 failure: the weights just stop
    moving), a NaN in BatchNorm's running statistics (unused in training), a NaN weight, a NaN
    gradient: stopped within ``finite_check_every`` steps (or at once, by the losses), naming
    the step, the array and the fix."""
    rng = np.random.default_rng(0)
    G = Sequential(Dense(4, 8, rng=rng), BatchNorm1d(8), ReLU(), Dense(8, 784, rng=rng), Tanh())
    D = mlp_discriminator(784, 8, rng=rng)
    gan = GAN(G, D, g_opt=Adam(G, lr=1e-3), d_opt=Adam(D, lr=1e-3))
    batches = Minibatches(data(), 8, 2)
    gan.finite_check_every = 5
    gan.step(batches, rng)
    if where == "gradient":  # gradients are rebuilt every step: the scan itself is tested
        gan.D.grads["4.bias"][0] = np.nan
        with pytest.raises(NonFiniteError, match=r"step 1: D gradient 4\.bias contains NaN"):
            gan.check_finite(params=True)
        return
    if where == "optimizer state":
        gan.d_opt.state["2.weight"]["exp_avg_sq"][0, 0] = np.inf
        name = r"step 5: d_opt state 2\.weight\.exp_avg_sq contains infinity"
    elif where == "buffer":
        gan.G.buffers["1.running_var"][3] = np.nan
        name = r"step 5: G\.1\.running_var contains NaN"
    else:  # reaches the losses first
        gan.G.params["3.bias"][1] = np.nan
        name = r"step 2: (g|d)_loss is nan \(not finite\)"
    with pytest.raises(NonFiniteError, match=name) as err:
        for _ in range(5):
            gan.step(batches, rng)
    assert err.value.step == gan.steps
    assert "lower the learning rate (now G 0.001, D 0.001)" in str(err.value)


def test_diverging_example_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tmp_path):
    """``--loss lsgan`` with a huge learning rate: exit 1, one line naming the step, the quantity,
    the fix and the last good checkpoint, which loads and holds finite weights."""
    res = run(["examples/vanilla_mnist.py", "--loss", "lsgan", "--lr", "1000", "--hidden", "16",
               "--batch-size", "16", "--steps", "400", "--checkpoint-every", "1",
               "--sample-every", "0", "--no-progress", "--out", str(tmp_path)])
    assert res.returncode == 1, res.stdout + res.stderr
    line = one_line_error(res.stderr)
    assert res.stderr.count("\n") == 1 and "Warning" not in res.stderr, res.stderr
    assert line.startswith("error: training step ") and "not finite" not in line[:15]
    assert "lower the learning rate (now G 1000, D 1000)" in line
    assert "Last good checkpoint: " in line and "done" not in res.stdout
    step = int(line.split("(step ")[-1].split(")")[0])
    saved = load_training_checkpoint(tmp_path / "checkpoint.npz")["gan"]
    assert saved.steps == step and not saved.nonfinite_arrays()


def test_sample_and_evaluate_refuse_a_generator_with_nan_weights(good_checkpoint, tmp_path):
    bad = rewrite(good_checkpoint, tmp_path / "nan.npz",
                  {"G.0.weight": np.full((8, 4), np.nan, np.float32)})
    out = tmp_path / "s.npy"
    res = run(["-m", "nanogan", "sample", str(bad), "--n", "8", "--out", str(out)])
    assert res.returncode == 1
    line = one_line_error(res.stderr)
    assert "G.0.weight contains NaN" in line and "refusing to sample" in line
    assert not out.exists()
    assert cli_main(["evaluate", str(bad), "--n", "8", "--reference", "8"]) == 1


# =============================================================================== 2. flags
VANILLA_BAD = [
    (["--steps", "0"], "--steps", "'0'"), (["--steps", "-1"], "--steps", "'-1'"),
    (["--steps", "1e3"], "--steps", "'1e3'"), (["--batch-size", "0"], "--batch-size", "'0'"),
    (["--batch-size", "60001"], "--batch-size", "[1, 60000]"),
    (["--lr", "-1"], "--lr", "'-1'"), (["--lr", "nan"], "--lr", "'nan'"),
    (["--lr", "inf"], "--lr", "'inf'"), (["--lr", "0"], "--lr", "> 0"),
    (["--k", "0"], "--k", "'0'"), (["--hidden", "0"], "--hidden", "'0'"),
    (["--hidden", "100000"], "--hidden", "[1, 8192]"), (["--seed", "-1"], "--seed", ">= 0"),
    (["--sample-every", "-1"], "--sample-every", "'-1'"),
    (["--checkpoint-every", "x"], "--checkpoint-every", "'x'"),
    (["--loss", "wgan"], "--loss", "'wgan'"),
]
GOODFELLOW_BAD = [
    (["--epochs", "0"], "--epochs", "'0'"), (["--minutes", "0"], "--minutes", "'0'"),
    (["--minutes", "nan"], "--minutes", "'nan'"),
    (["--parzen-every", "-1"], "--parzen-every", "'-1'"), (["--seed", "-2"], "--seed", "'-2'"),
    (["--steps-per-epoch", "0"], "--steps-per-epoch", "'0'"),
    (["--g-hidden", "0"], "--g-hidden", "'0'"), (["--d-units", "-3"], "--d-units", "'-3'"),
    (["--d-pieces", "0"], "--d-pieces", "'0'"), (["--update", "both"], "--update", "'both'"),
    (["--init", "zeros"], "--init", "'zeros'"), (["--noise", "cauchy"], "--noise", "'cauchy'"),
]
CLI_BAD = [
    (["sample", "{ckpt}", "--n", "0"], "--n", "'0'"),
    (["sample", "{ckpt}", "--n", "-5"], "--n", "'-5'"),
    (["sample", "{ckpt}", "--n", "10000001"], "--n", "[1, 1000000]"),
    (["sample", "{ckpt}", "--seed", "-1"], "--seed", "'-1'"),
    (["sample", "{ckpt}", "--out", "{tmp}"], "--out", "which is a folder"),
    (["sample", "{ckpt}", "--png", "{tmp}/"], "--png", "which is a folder"),
    (["sample", "{ckpt}", "--out", "{file}/x.npy"], "--out", "is a file, not a folder"),
    (["sample", "{tmp}/missing.npz"], "checkpoint", "(not found)"),
    (["sample", "{tmp}"], "checkpoint", "which is a folder"),
    (["sample", "{empty}"], "checkpoint", "(0 bytes)"),
    (["evaluate", "{tmp}/missing.npy"], "path", "(not found)"),
    (["evaluate", "{ckpt}", "--n", "3"], "--n", "[4, 1000000]"),
    (["evaluate", "{ckpt}", "--reference", "0"], "--reference", "[4, 10000]"),
    (["evaluate", "{ckpt}", "--reference", "10001"], "--reference", "[4, 10000]"),
    (["evaluate", "{ckpt}", "--range", "0,255"], "--range", "'0,255'"),
    (["evaluate", "{ckpt}", "--seed", "one"], "--seed", "'one'"),
    (["frobnicate"], "command", "'frobnicate'"),
]


def check_exit_2(capsys, call, flag: str, expect: str) -> None:
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.split(": error: ")[1].startswith(f"argument {flag}"), line
    assert expect in line, line


@pytest.mark.parametrize("argv,flag,expect", VANILLA_BAD)
def test_vanilla_example_flags(argv, flag, expect, tmp_path, capsys):
    example = load_example("vanilla_mnist")
    out = tmp_path / "run"
    check_exit_2(capsys, lambda: example.main([*argv, "--out", str(out)]), flag, expect)
    assert not out.exists()  # refused before any work started


@pytest.mark.parametrize("argv,flag,expect", GOODFELLOW_BAD)
def test_goodfellow_example_flags(argv, flag, expect, tmp_path, capsys):
    example = load_example("goodfellow2014_mnist")
    out = tmp_path / "run"
    check_exit_2(capsys, lambda: example.main([*argv, "--out", str(out)]), flag, expect)
    assert not out.exists()


@pytest.mark.parametrize("argv,flag,expect", CLI_BAD)
def test_cli_flags(argv, flag, expect, good_checkpoint, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty.npz").write_bytes(b"")
    fill = {"{ckpt}": str(good_checkpoint), "{tmp}": str(tmp_path),
            "{file}": str(tmp_path / "a_file"), "{empty}": str(tmp_path / "empty.npz")}
    for k, v in fill.items():
        argv = [a.replace(k, v) for a in argv]
    before = snapshot(tmp_path)
    check_exit_2(capsys, lambda: cli_main(argv), flag, expect)
    assert snapshot(tmp_path) == before


def test_output_folder_that_is_a_file_subprocess(tmp_path):
    """Both examples and ``sample``, as a user runs them: status 2, one line, file untouched."""
    target = tmp_path / "taken"
    target.write_text("mine")
    for args in (["examples/vanilla_mnist.py", "--out", str(target)],
                 ["examples/goodfellow2014_mnist.py", "--out", str(target / "sub")]):
        res = run(args)
        assert res.returncode == 2, res.stderr
        line = one_line_error(res.stderr)
        assert "error: argument --out:" in line and str(target) in line
    assert target.read_text() == "mine"


@pytest.fixture(scope="module")
def vanilla_run(tmp_path_factory) -> Path:
    """A 4-step run of the vanilla example (tiny sizes) to resume from."""
    out = tmp_path_factory.mktemp("vanilla")
    rc = load_example("vanilla_mnist").main(
        ["--steps", "4", "--hidden", "8", "--batch-size", "8", "--lr", "0.001", "--loss",
         "lsgan", "--sample-every", "0", "--no-progress", "--out", str(out)])
    assert rc == 0
    return out


@pytest.mark.parametrize("argv,expect", [
    (["--lr", "0.01", "--k", "2", "--hidden", "4"], "--k 2 (the checkpoint has 1), --hidden 4 "
                                                    "(the checkpoint has 8)"),
    (["--loss", "hinge"], "--loss hinge (the checkpoint has lsgan)"),
    (["--hidden", "16", "--batch-size", "8"], "--hidden 16 (the checkpoint has 8)"),
    (["--steps", "4"], "--steps: must be more than the checkpoint's 4 steps"),
])
def test_resume_refuses_contradicting_flags(vanilla_run, argv, expect, capsys):
    before = snapshot(vanilla_run)
    example = load_example("vanilla_mnist")
    with pytest.raises(SystemExit) as exc:
        example.main(["--resume", "--steps", "6", "--out", str(vanilla_run), *argv])
    assert exc.value.code == 2
    line = one_line_error(capsys.readouterr().err)
    assert expect in line, line
    assert "--batch-size" not in line  # agrees with the checkpoint
    assert snapshot(vanilla_run) == before


def test_resume_with_agreeing_flags_continues(vanilla_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(vanilla_run, run_dir)
    example = load_example("vanilla_mnist")
    assert example.main(["--resume", "--steps", "5", "--lr", "1e-3", "--loss", "lsgan",
                         "--seed", "3", "--no-progress", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "resuming from step 4 of 5" in out and "--seed is not used when resuming" in out
    assert "--lr" not in out.replace("--seed", "")  # the same learning rate: no note
    assert load_training_checkpoint(run_dir / "checkpoint.npz")["gan"].steps == 5
    # a new learning rate wins, and says so (the fix a diverged run's message suggests)
    assert example.main(["--resume", "--steps", "6", "--lr", "2e-4", "--no-progress", "--out",
                         str(run_dir)]) == 0
    assert "note: --lr 0.0002 replaces the checkpoint's 0.001" in capsys.readouterr().out
    resumed = load_training_checkpoint(run_dir / "checkpoint.npz")["gan"]
    assert resumed.steps == 6 and resumed.g_opt.lr == resumed.d_opt.lr == 2e-4


@pytest.mark.parametrize("name", ["vanilla_mnist", "goodfellow2014_mnist"])
def test_resume_without_a_checkpoint(name, tmp_path, capsys):
    assert load_example(name).main(["--resume", "--out", str(tmp_path)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("error: cannot resume from") and "not found" in line
    assert list(tmp_path.iterdir()) == []


# =============================================================================== 3. checkpoints
def _dense_cfg(i: int, o: int) -> dict:
    return {"type": "Dense", "args": [i, o], "kwargs": {"dtype": {"dtype": "float32"}}}


def config_with(good: Path, **changes) -> dict:
    _, meta = load_checkpoint(good)
    cfg = json.loads(json.dumps(meta["config"]))
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is KeyError:
            del node[leaf]
        elif isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return cfg


CHECKPOINT_BAD = {
    # name: (arrays to replace, meta to replace, arrays to drop, expected text)
    "no config": ({}, {"config": None}, (), "config expected a dict"),
    "no generator": ({}, {"config": ("generator", KeyError)}, (),
                     "config is missing the key 'generator'"),
    "k as text": ({}, {"config": ("k", "2")}, (), "config.k expected"),
    "k huge": ({}, {"config": ("k", 10**12)}, (), "config.k expected"),
    "clip nan-like": ({}, {"config": ("clip", -1)}, (), "config.clip expected"),
    "z_shape huge": ({}, {"config": ("z_shape", [10**12])}, (), "config.z_shape expected"),
    "noise": ({}, {"config": ("noise", 3)}, (), "config.noise expected"),
    "absurd Dense": ({}, {"config": ("generator__args__0", _dense_cfg(10**6, 10**6))}, (),
                     "larger than the"),
    "absurd width as text": ({}, {"config": ("generator__args__0", _dense_cfg("4", 8))}, (),
                             "in_features must be a positive integer"),
    "layer type Module": ({}, {"config": ("discriminator__type", "Module")}, (),
                          "unknown layer type 'Module'"),
    "optimizer type": ({}, {"config": ("g_opt__type", "Optimizer")}, (),
                       "unknown optimizer type"),
    "optimizer kwargs": ({}, {"config": ("g_opt__kwargs", {"lr": "fast"})}, (), "'config'"),
    "loss": ({}, {"config": ("loss", "mystery")}, (), "'config'"),
    "int weights": ({"G.0.weight": np.ones((8, 4), np.int32)}, {}, (),
                    "array 'G.0.weight' expected floating-point values (not cast)"),
    "bool weights": ({"D.4.bias": np.ones(1, bool)}, {}, (),
                     "array 'D.4.bias' expected floating-point values"),
    "misshapen weight": ({"G.0.weight": np.ones((4, 8), np.float32)}, {}, (),
                         "entry '0.weight' expected shape (8, 4), got (4, 8)"),
    "missing weight": ({}, {}, ("D.2.weight",), "missing keys ['2.weight']"),
    "steps float": ({"gan.steps": np.array(3.0)}, {}, (), "array 'gan.steps' expected"),
    "history 2-D": ({"history.d_loss": np.ones((3, 2))}, {}, (), "array 'history.d_loss'"),
    "rng": ({}, {"rng": {"bit_generator": "PCG64", "state": "x"}}, (), "bad 'rng'"),
    "format": ({}, {"format": "other"}, (), "not a nanogan training checkpoint"),
    "no rng": ({}, {"rng": KeyError}, (), "missing the key 'rng'"),
}


@pytest.mark.parametrize("name", list(CHECKPOINT_BAD))
def test_checkpoint_from_elsewhere(name, good_checkpoint, tmp_path):
    arrays, meta, drop, expect = CHECKPOINT_BAD[name]
    meta = dict(meta)
    if isinstance(meta.get("config"), tuple):
        key, value = meta["config"]
        meta["config"] = config_with(good_checkpoint, **{key: value})
    a, m = load_checkpoint(good_checkpoint)
    a.update(arrays)
    for k in drop:
        a.pop(k)
    for k, v in meta.items():
        if v is KeyError:
            m.pop(k)
        else:
            m[k] = v
    path = save_checkpoint(tmp_path / "c.npz", a, m)
    with pytest.raises(CheckpointError) as err:
        load_training_checkpoint(path)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_npy_header_declaring_a_huge_array_is_refused_before_allocating(good_checkpoint,
                                                                        tmp_path):
    """An entry whose header says (10^11,) float64 (800 GB) but holds a few bytes."""
    from numpy.lib import format as npformat

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(good_checkpoint) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if info.filename != "fixed_z.npy":
                dst.writestr(info.filename, src.read(info))
        import io

        buf = io.BytesIO()
        npformat.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                              "shape": (10**11,)})
        dst.writestr("fixed_z.npy", buf.getvalue() + b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"entry 'fixed_z' declares float64 "
                                              r"\(100000000000,\)"):
        load_checkpoint(path)
    res = run(["-m", "nanogan", "sample", str(path), "--n", "4", "--out",
               str(tmp_path / "s.npy")])
    assert res.returncode == 1 and "declares float64" in one_line_error(res.stderr)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all\n", b"PK\x03\x04junk"])
def test_checkpoint_that_is_not_an_archive(content, tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_training_checkpoint(path)


def _mutations(draw_kind: str, data_obj, arrays: dict, meta: dict, raw: bytes) -> bytes | None:
    """Apply one drawn mutation; returns file bytes for byte-level mutations, else None."""
    d = data_obj.draw
    names = sorted(arrays)
    if draw_kind == "bytes":
        b = bytearray(raw)
        for _ in range(d(st.integers(1, 8))):
            b[d(st.integers(0, len(b) - 1))] = d(st.integers(0, 255))
        if d(st.booleans()):
            b = b[:d(st.integers(0, len(b)))]
        return bytes(b)
    if draw_kind == "drop":
        arrays.pop(d(st.sampled_from(names)))
    elif draw_kind == "rename":
        k = d(st.sampled_from(names))
        arrays[k + d(st.sampled_from(["x", ".y", "_"]))] = arrays.pop(k)
    elif draw_kind == "shape":
        k = d(st.sampled_from(names))
        arrays[k] = np.zeros(d(st.lists(st.integers(0, 5), max_size=3)), arrays[k].dtype)
    elif draw_kind == "dtype":
        k = d(st.sampled_from(names))
        dt = d(st.sampled_from(["int8", "int64", "uint8", "bool", "float16", "complex64", "U3",
                                "S2"]))
        arrays[k] = np.zeros(arrays[k].shape, dt)
    elif draw_kind == "value":
        k = d(st.sampled_from(names))
        arrays[k] = np.full(arrays[k].shape, d(st.sampled_from([np.nan, np.inf, -1e38, 0.0])),
                            arrays[k].dtype if arrays[k].dtype.kind == "f" else np.float64)
    else:  # metadata: replace a value somewhere in the JSON tree
        junk = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                         st.floats(allow_nan=False), st.text(max_size=5),
                         st.lists(st.integers(-3, 3), max_size=3), st.just({}))
        node, path = meta, []
        for _ in range(d(st.integers(1, 6))):
            keys = (list(node) if isinstance(node, dict) else list(range(len(node)))
                    if isinstance(node, list) else [])
            if not keys:
                break
            key = d(st.sampled_from(keys))
            path.append((node, key))
            node = node[key]
        if path:
            parent, key = path[-1]
            if isinstance(parent, dict) and d(st.booleans()):
                del parent[key]
            else:
                parent[key] = d(junk)
    return None


@settings(max_examples=int(os.environ.get("NANOGAN_FUZZ_EXAMPLES", "30")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kind=st.sampled_from(["bytes", "drop", "rename", "shape", "dtype", "value", "meta",
                             "meta", "meta"]), data_obj=st.data())
def test_fuzz_a_valid_checkpoint_loads_or_raises_checkpoint_error(kind, data_obj,
                                                                  good_checkpoint,
                                                                  tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    arrays, meta = load_checkpoint(good_checkpoint)
    raw = good_checkpoint.read_bytes()
    blob = _mutations(kind, data_obj, arrays, meta, raw)
    path = folder / "c.npz"
    if blob is not None:
        path.write_bytes(blob)
    else:
        save_checkpoint(path, arrays, meta)
    try:
        state = load_training_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(state["gan"], GAN)  # it loaded: then it is usable
    z = state["gan"].sample_noise(2, np.random.default_rng(0))
    with np.errstate(all="ignore"):
        state["gan"].G(z, train=False)


# =============================================================================== 4. evaluate
EVAL_BAD = [
    ("nan", lambda: np.full((8, 784), np.nan, np.float32), [], "are NaN (not finite)"),
    ("inf", lambda: np.where(np.eye(8, 784) > 0, np.inf, 0).astype(np.float32), [],
     "are infinity (not finite)"),
    ("empty", lambda: np.zeros((0, 784), np.float32), [], "the array is empty"),
    ("too few", lambda: np.zeros((3, 784), np.float32), [], "3 images, the metrics need at "
                                                            "least 4"),
    ("0-255 floats", lambda: np.full((8, 784), 200.0, np.float32), [],
     "outside both [0, 1] and [-1, 1]"),
    ("outside declared", lambda: np.full((8, 784), -0.5, np.float32), ["--range", "0,1"],
     "outside the declared pixel range [0, 1]"),
    ("wrong size", lambda: np.zeros((8, 783), np.float32), [], "expected MNIST images"),
    ("strings", lambda: np.array([["a"] * 784] * 8), [], "expected MNIST images"),
    ("uint8 with range", lambda: np.zeros((8, 784), np.uint8), ["--range=-1,1"],
     "uint8 images are in [0, 255]"),
]


@pytest.mark.parametrize("name,make,extra,expect", EVAL_BAD, ids=[e[0] for e in EVAL_BAD])
def test_evaluate_bad_samples(name, make, extra, expect, tmp_path, capsys):
    path = tmp_path / "s.npy"
    np.save(path, make())
    assert cli_main(["evaluate", str(path), "--reference", "8", "--no-parzen", *extra]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"error: {path}") and expect in line, line


def test_evaluate_subprocess_zero_byte_and_corrupt_files(tmp_path):
    (tmp_path / "zero.npy").write_bytes(b"")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY junk")
    res = run(["-m", "nanogan", "evaluate", str(tmp_path / "zero.npy")])
    assert res.returncode == 2 and "(0 bytes)" in one_line_error(res.stderr)
    res = run(["-m", "nanogan", "evaluate", str(tmp_path / "junk.npy")])
    assert res.returncode == 1 and "not a readable .npy file" in one_line_error(res.stderr)


def test_evaluate_api_refuses_what_the_cli_refuses():
    from nanogan.metrics.evaluate import evaluate

    x = np.zeros((8, 784), np.float32)
    with pytest.raises(ValueError, match=r"n_reference must be in \[4, 10000\]"):
        evaluate(x, (0, 1), n_reference=20000, features=object())
    with pytest.raises(ValueError, match=r"outside the declared pixel range \[0, 1\]"):
        evaluate(x - 1, (0, 1), features=object())


# =============================================================================== 5. partial state
def test_load_state_dict_is_all_or_nothing_when_a_value_cannot_be_converted():
    layer = Dense(3, 2, rng=0)
    before = layer.state_dict()
    bad = {"weight": np.zeros((2, 3), np.float32), "bias": np.array(["a", "b"])}
    with pytest.raises(ValueError, match=r"entry 'bias' expected floating-point values"):
        layer.load_state_dict(bad)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    for value in (np.array([1, 2]), np.array([True, False]), [[0.0, 1.0]], "ab"):
        with pytest.raises(ValueError, match="entry 'bias'"):
            layer.load_state_dict({"weight": np.zeros((2, 3)), "bias": value})
        np.testing.assert_array_equal(layer.weight, before["weight"])


def test_optimizer_and_gan_loads_are_all_or_nothing():
    gan = tiny_gan()
    gan.step(Minibatches(data(), 8, 2), np.random.default_rng(0))
    good = gan.state_dict()
    before = {k: v.copy() for k, v in good.items()}
    for key, value in (("d_opt.state.4.bias.exp_avg_sq", np.array(["x"])),
                       ("d_opt.lr", np.array(-1.0)), ("g_opt.step", np.array(1.5)),
                       ("gan.steps", np.array(-3))):
        bad = dict(good)
        bad["G.0.weight"] = np.zeros_like(good["G.0.weight"])  # a good entry first
        bad[key] = value
        with pytest.raises(ValueError, match=re.escape(key.split(".", 1)[1] + "'")):
            gan.load_state_dict(bad)
        after = gan.state_dict()
        for k in before:
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    sgd = SGD(Dense(2, 2, rng=0), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="invalid momentum"):
        sgd.load_state_dict({**sgd.state_dict(), "momentum": np.array(-1.0)})
    assert sgd.momentum == 0.9


CONSTRUCTOR_BAD = [
    (lambda: Dense(0, 3), "Dense: in_features must be a positive integer, got 0"),
    (lambda: Dense(3, -1), "Dense: out_features must be a positive integer, got -1"),
    (lambda: Dense(2.5, 3), "Dense: in_features must be a positive integer, got 2.5"),
    (lambda: Dense("3", 3), "Dense: in_features must be a positive integer, got '3'"),
    (lambda: Dense(True, 3), "Dense: in_features must be a positive integer, got True"),
    (lambda: Dense(3, 3, dtype="int32"), "dtype must be float32 or float64, got int32"),
    (lambda: Dense(3, 3, dtype="nonsense"), "dtype must be float32 or float64"),
    (lambda: Maxout(4, 3, 0), "Maxout: pieces must be a positive integer, got 0"),
    (lambda: BatchNorm1d(0), "BatchNorm1d: num_features must be a positive integer"),
    (lambda: BatchNorm2d(3, eps=-1e-5), "BatchNorm2d: eps must be a finite number in [0, inf)"),
    (lambda: LayerNorm(4, eps=float("inf")), "LayerNorm: eps must be a finite number in [0, inf)"),
    (lambda: BatchNorm2d(3, momentum=1.5), "BatchNorm2d: momentum must be a finite number in "
                                           "[0, 1]"),
    (lambda: LeakyReLU(float("nan")), "LeakyReLU: negative_slope must be a finite number"),
    (lambda: Dropout(1.5), "Dropout: p must be a finite number in [0, 1]"),
    (lambda: Dropout("half"), "Dropout: p must be a finite number in [0, 1], got 'half'"),
    (lambda: Reshape(0, 3), "Reshape: shape[0] must be a positive integer, got 0"),
    (lambda: Conv2d(1, 0, 3), "Conv2d: out_channels must be a positive int"),
    (lambda: ConvTranspose2d(1, 1, 3, stride=0), "ConvTranspose2d: stride must be positive"),
]


@pytest.mark.parametrize("make,expect", CONSTRUCTOR_BAD)
def test_layer_constructors_validate(make, expect):
    with pytest.raises(ValueError) as err:
        make()
    assert expect in str(err.value)


BACKWARD_CASES = [
    (lambda: Dense(6, 5, rng=0), (4, 6)), (lambda: LeakyReLU(0.2), (4, 6)),
    (lambda: ReLU(), (4, 6)), (lambda: Tanh(), (4, 6)), (lambda: Sigmoid(), (4, 6)),
    (lambda: Dropout(0.5, rng=0), (4, 6)), (lambda: Maxout(6, 5, 2, rng=0), (4, 6)),
    (lambda: BatchNorm1d(6), (4, 6)), (lambda: BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: Conv2d(3, 4, 3, rng=0), (2, 3, 5, 5)),
    (lambda: ConvTranspose2d(3, 4, 3, rng=0), (2, 3, 5, 5)),
    (lambda: Flatten(), (2, 3, 4, 4)), (lambda: Reshape(3, 16), (2, 3, 4, 4)),
    (lambda: Sequential(Dense(6, 5, rng=0), LeakyReLU(0.2)), (4, 6)),  # fused pair
    (lambda: Sequential(BatchNorm1d(6), ReLU()), (4, 6)),  # fused pair
]


@pytest.mark.parametrize("make,shape", BACKWARD_CASES)
def test_backward_checks_dy_against_the_cache(make, shape):
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y, cache = layer.forward(x, train=True)
    bad = np.ones((*y.shape[:-1], y.shape[-1] + 1), np.float32)
    with pytest.raises(ValueError, match=r"argument 'dy' expected shape") as err:
        layer.backward(bad, cache)
    shown = "(" + ", ".join(map(str, y.shape)) + ("," if y.ndim == 1 else "") + ")"
    assert shown in str(err.value)
    assert type(layer).__name__ in str(err.value) or "Sequential" in type(layer).__name__
    layer.backward(np.ones_like(y), cache)  # the right shape still works


# =============================================================================== 6. leftovers
def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_killed_writers_are_removed_and_nothing_else(good_checkpoint,
                                                                         tmp_path):
    pid = dead_pid()
    stale = [tmp_path / f".checkpoint.npz.nanogan-{pid}-0a1b2c3d.tmp",
             tmp_path / f".samples.npy.nanogan-{pid}-deadbeef.tmp"]
    alive = tmp_path / f".checkpoint.npz.nanogan-{os.getpid()}-00000000.tmp"
    foreign = [tmp_path / "notes.tmp", tmp_path / ".checkpoint.npz.abc.tmp",
               tmp_path / f".x.nanogan-{pid}-zz.tmp"]
    for p in (*stale, alive, *foreign):
        p.write_bytes(b"x" * 100)
    res = run(["-m", "nanogan", "sample", str(good_checkpoint), "--n", "4", "--out",
               str(tmp_path / "samples.npy")])
    assert res.returncode == 0, res.stderr
    assert not any(p.exists() for p in stale)
    assert alive.exists() and all(p.exists() for p in foreign)
    assert clean_stale_temps(tmp_path) == []


def test_outputs_get_umask_permissions(good_checkpoint, tmp_path):
    """``sample --out`` and ``--png``, and a training checkpoint, as ``open`` would create them
    (0o644 under umask 022), not mkstemp's 0o600."""
    code = ("import os, sys; os.umask(0o022); from nanogan.__main__ import main; "
            "sys.exit(main(sys.argv[1:]))")
    res = run(["-c", code, "sample", str(good_checkpoint), "--n", "4", "--out",
               str(tmp_path / "s.npy"), "--png", str(tmp_path / "g.png")])
    assert res.returncode == 0, res.stderr
    old = os.umask(0o022)
    try:
        save_training_checkpoint(tmp_path / "c.npz", tiny_gan(), np.random.default_rng(0))
    finally:
        os.umask(old)
    for name in ("s.npy", "g.png", "c.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "examples/vanilla_mnist.py", "--steps", "1000000", "--hidden", "8",
         "--batch-size", "8", "--sample-every", "0", "--checkpoint-every", "0", "--no-progress",
         "--out", str(tmp_path)], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the header: training starts right after it
        assert first.startswith("nanogan "), first
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    line = one_line_error(err)
    assert line.startswith("interrupted at step ") and "continue with --resume" in line
    step = int(line.split()[3].rstrip(";"))
    state = load_training_checkpoint(tmp_path / "checkpoint.npz")
    assert state["gan"].steps == step > 0 and len(state["history"]["step"]) == step
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
