"""Atomic checkpoints: round trips, failure midway, damaged files, state dicts, generators."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanogan import checkpoint as ckpt
from nanogan.checkpoint import (
    CheckpointError,
    flatten_state,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unflatten_state,
)
from nanogan.data import Minibatches
from nanogan.layers import BatchNorm1d, Dense, LeakyReLU, Sequential

BIT_GENERATORS = [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox,
                  np.random.SFC64]


def sample_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {
        "G.0.weight": r.standard_normal((4, 3)).astype(np.float32),
        "G.0.bias": r.standard_normal(4),
        "G.1.num_batches_tracked": np.array(7, dtype=np.int64),
        "D.empty": np.zeros((0, 5), np.float32),
        "D.strided": r.standard_normal((6, 5))[::2, ::-1],
        "D.big_endian": np.arange(5, dtype=">f8"),
        "mask": np.array([True, False, True]),
        "pixels": r.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "extremes": np.array([np.finfo(np.float64).max, np.finfo(np.float64).tiny, -0.0, np.inf,
                              -np.inf, np.nan]),
    }


META = {"step": 1234, "big": 2**100 + 1, "lr": 2e-4, "loss": "nonsaturating",
        "config": {"z_dim": 100, "hidden": [256, 256], "bias": True, "clip": None},
        "text": "ε-π ✓", "losses": [0.693, 1.25e-30]}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------- round trip
def test_round_trip(tmp_path):
    arrays = sample_arrays()
    path = tmp_path / "runs" / "deep" / "ckpt.npz"  # folders are created
    assert save_checkpoint(path, arrays, META) == path
    got, meta = load_checkpoint(str(path))
    assert_same(got, arrays)
    assert meta == META
    assert listing(path.parent) == ["ckpt.npz"]


def test_plain_numpy_can_read_it(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample_arrays(), META)
    with np.load(path, allow_pickle=False) as z:
        assert z.files[-1] == "__meta__"
        assert z["__meta__"].dtype == np.uint8
        assert json.loads(z["__meta__"].tobytes().decode()) == META
        np.testing.assert_array_equal(z["G.0.bias"], sample_arrays()["G.0.bias"])
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None


def test_exact_path_mode_and_numpy_scalars(tmp_path):
    path = save_checkpoint(tmp_path / "model.ckpt", {"w": np.ones(3)},
                           {"step": np.int64(5), "loss": np.float32(0.5), "ok": np.bool_(True)})
    assert listing(tmp_path) == ["model.ckpt"]  # no ".npz" appended
    assert load_checkpoint(path)[1] == {"step": 5, "loss": 0.5, "ok": True}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_overwrite_keeps_one_file(tmp_path):
    path = tmp_path / "c.npz"
    for step in range(3):
        save_checkpoint(path, sample_arrays(step), {"step": step})
    got, meta = load_checkpoint(path)
    assert meta == {"step": 2}
    assert_same(got, sample_arrays(2))
    assert listing(tmp_path) == ["c.npz"]


# ---------------------------------------------------------------------------------- atomicity
def partial_savez(exc: BaseException):
    """An ``np.savez`` that writes half an archive, then fails."""
    real = np.savez

    def fake(file, *args, **kwds):
        real(file, *args, **kwds)
        file.seek(file.tell() // 2)
        file.truncate()
        raise exc

    return fake


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_midway_leaves_old_checkpoint(tmp_path, monkeypatch, exc):
    path = save_checkpoint(tmp_path / "c.npz", sample_arrays(1), {"step": 1})
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", partial_savez(exc))
    with pytest.raises(type(exc)):
        save_checkpoint(path, sample_arrays(2), {"step": 2})
    monkeypatch.undo()
    assert listing(tmp_path) == ["c.npz"]  # no temporary file left behind
    assert path.read_bytes() == before
    got, meta = load_checkpoint(path)
    assert meta == {"step": 1}
    assert_same(got, sample_arrays(1))


def test_failure_midway_without_old_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", partial_savez(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(tmp_path / "c.npz", sample_arrays(), {})
    assert listing(tmp_path) == []


def test_failure_at_rename(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", sample_arrays(1), {"step": 1})

    def fail(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(ckpt.os, "replace", fail)
    with pytest.raises(PermissionError):
        save_checkpoint(path, sample_arrays(2), {"step": 2})
    monkeypatch.undo()
    assert listing(tmp_path) == ["c.npz"]
    assert load_checkpoint(path)[1] == {"step": 1}


@pytest.mark.parametrize(("arrays", "meta", "error", "match"), [
    ({"w": np.ones(2)}, {"bad": object()}, TypeError, "JSON"),
    ({"w": np.ones(2)}, {"arr": np.ones(3)}, TypeError, "arrays"),
    ({"w": np.ones(2)}, [1, 2], TypeError, "dict"),
    ({"w": np.array([None, 1])}, {}, ValueError, "pickle"),
    ({"__meta__": np.ones(2)}, {}, ValueError, "__meta__"),
    ({"file": np.ones(2)}, {}, ValueError, "file"),
    ({"": np.ones(2)}, {}, ValueError, "name"),
])
def test_bad_input_writes_nothing(tmp_path, arrays, meta, error, match):
    path = save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(2)}, {"step": 1})
    with pytest.raises(error, match=match):
        save_checkpoint(path, arrays, meta)
    assert listing(tmp_path) == ["c.npz"]
    assert load_checkpoint(path)[1] == {"step": 1}


# ---------------------------------------------------------------------------------- damage
def check_corrupt_message(err: CheckpointError, path: Path) -> None:
    msg = str(err)
    assert str(path) in msg and "truncated or corrupt" in msg and "untouched" in msg
    assert isinstance(err, ValueError)


def test_truncated_half(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample_arrays(), META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    check_corrupt_message(info.value, path)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    path = save_checkpoint(folder / "ref.npz", sample_arrays(), META)
    return path.read_bytes(), folder


@given(frac=st.floats(0, 1, exclude_max=True))
def test_truncated_anywhere(reference_file, frac):
    data, folder = reference_file
    path = folder / "cut.npz"
    path.write_bytes(data[: int(frac * len(data))])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    check_corrupt_message(info.value, path)


@given(frac=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_flipped_bit_never_gives_wrong_data(reference_file, frac, bit):
    """A flipped bit is caught (zip CRCs, headers) unless it lies in a field that does not
    change the content (a timestamp): then the genuine data comes back."""
    data, folder = reference_file
    damaged = bytearray(data)
    damaged[int(frac * len(data))] ^= 1 << bit
    path = folder / "flip.npz"
    path.write_bytes(bytes(damaged))
    try:
        arrays, meta = load_checkpoint(path)
    except CheckpointError as e:
        check_corrupt_message(e, path)
    else:
        assert_same(arrays, sample_arrays())
        assert meta == META


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.npz")):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="folder"):
        load_checkpoint(tmp_path)


def write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: write_npz(p, w=np.ones(2)), "__meta__"),
    (lambda p: write_npz(p, __meta__=np.frombuffer(b"{not json", np.uint8)), "metadata"),
    (lambda p: write_npz(p, __meta__=np.frombuffer(b"\xff\xfe", np.uint8)), "metadata"),
    (lambda p: write_npz(p, __meta__=np.frombuffer(b"[1, 2]", np.uint8)), "JSON object"),
    (lambda p: write_npz(p, __meta__=np.ones(3)), "uint8"),
    (lambda p: write_npz(p, w=np.array([{}, None], dtype=object),
                         __meta__=np.frombuffer(b"{}", np.uint8)), "pickle"),
    (lambda p: np.save(p.open("wb"), np.ones(3)), ".npy"),
    (lambda p: p.write_text("hello"), "truncated"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
])
def test_not_a_checkpoint(tmp_path, make, why):
    path = tmp_path / "c.npz"
    make(path)
    with pytest.raises(CheckpointError, match=why) as info:
        load_checkpoint(path)
    check_corrupt_message(info.value, path)


# ---------------------------------------------------------------------------------- state dicts
def small_gan(seed: int) -> tuple[Sequential, Sequential]:
    r = np.random.default_rng(seed)
    g = Sequential(Dense(3, 5, rng=r), BatchNorm1d(5), LeakyReLU(0.2), Dense(5, 4, rng=r))
    d = Sequential(Dense(4, 5, rng=r, dtype=np.float64), LeakyReLU(0.2), Dense(5, 1, rng=r))
    return g, d


def test_models_through_a_checkpoint(tmp_path):
    g, d = small_gan(0)
    g.forward(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32))  # BN stats
    arrays = {**flatten_state("G", g.state_dict()), **flatten_state("D", d.state_dict())}
    assert list(arrays)[:3] == ["G.0.weight", "G.0.bias", "G.1.weight"]
    assert "G.1.num_batches_tracked" in arrays and "D.2.bias" in arrays
    path = save_checkpoint(tmp_path / "c.npz", arrays, {"step": 3})
    loaded, _ = load_checkpoint(path)
    g2, d2 = small_gan(5)
    g2.load_state_dict(unflatten_state("G", loaded))
    d2.load_state_dict(unflatten_state("D", loaded))
    assert_same(g2.state_dict(), g.state_dict())
    assert_same(d2.state_dict(), d.state_dict())
    assert list(unflatten_state("G", loaded)) == list(g.state_dict())


def test_torch_state_dict_through_a_checkpoint(tmp_path, torch):
    """A PyTorch state dict converted with ``.numpy()`` comes back bit-exact, dtypes included."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                              torch.nn.Linear(4, 2).double())
    net[:2](torch.randn(6, 3))  # BatchNorm statistics; the last layer is float64
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    path = save_checkpoint(tmp_path / "t.npz", flatten_state("net", sd), {})
    back = unflatten_state("net", load_checkpoint(path)[0])
    net2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                               torch.nn.Linear(4, 2).double())
    net2.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})
    for (k, a), (k2, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b)


def test_nested_state():
    opt = {"step": 3, "lr": 1e-3, "state": {"0": {"exp_avg": np.ones(2), "exp_avg_sq": np.zeros(2)},
                                            "1": {"exp_avg": np.full(3, 2.0)}}}
    flat = flatten_state("g_opt", opt)
    assert list(flat) == ["g_opt.step", "g_opt.lr", "g_opt.state.0.exp_avg",
                          "g_opt.state.0.exp_avg_sq", "g_opt.state.1.exp_avg"]
    assert flat["g_opt.step"].shape == () and int(flat["g_opt.step"]) == 3
    back = unflatten_state("g_opt", {**flat, "G.0.weight": np.ones(1)}, nested=True)
    assert list(back) == ["step", "lr", "state"] and float(back["lr"]) == 1e-3
    np.testing.assert_array_equal(back["state"]["1"]["exp_avg"], np.full(3, 2.0))
    assert unflatten_state("g_opt", flat)["state.0.exp_avg"] is opt["state"]["0"]["exp_avg"]
    assert unflatten_state("g", flat) == {}  # "g_opt" is not under "g"


def test_flatten_errors():
    with pytest.raises(ValueError, match="prefix"):
        flatten_state("a.b", {"w": np.ones(1)})
    with pytest.raises(ValueError, match="prefix"):
        flatten_state("", {"w": np.ones(1)})
    with pytest.raises(ValueError, match="twice"):
        flatten_state("G", {"a.b": np.ones(1), "a": {"b": np.ones(1)}})
    with pytest.raises(ValueError, match="numeric"):
        flatten_state("G", {"w": None})
    with pytest.raises(ValueError, match="clashes"):
        unflatten_state("G", {"G.a": np.ones(1), "G.a.b": np.ones(1)}, nested=True)


# ---------------------------------------------------------------------------------- generators
@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
def test_rng_state_round_trip(tmp_path, bit_generator):
    rng = np.random.Generator(bit_generator(2024))
    rng.standard_normal(7)
    rng.integers(0, 10, 3, dtype=np.uint32)  # leaves a buffered 32-bit half in some generators
    state = rng_state(rng)
    json.dumps(state, allow_nan=False)  # plain JSON
    path = save_checkpoint(tmp_path / "r.npz", {}, {"rng": state})
    expect = rng.standard_normal(5), rng.integers(0, 2**31, 5)
    other = np.random.Generator(bit_generator(1))
    set_rng_state(other, load_checkpoint(path)[1]["rng"])
    got = other.standard_normal(5), other.integers(0, 2**31, 5)
    np.testing.assert_array_equal(got[0], expect[0])
    np.testing.assert_array_equal(got[1], expect[1])


def test_rng_state_errors():
    pcg = rng_state(np.random.default_rng(0))
    with pytest.raises(ValueError, match="PCG64"):
        set_rng_state(np.random.Generator(np.random.MT19937(0)), pcg)
    with pytest.raises(ValueError, match="malformed"):
        set_rng_state(np.random.default_rng(0), {"bit_generator": "PCG64"})
    with pytest.raises(TypeError):
        rng_state(np.random.RandomState(0))
    with pytest.raises(TypeError):
        set_rng_state(np.random.RandomState(0), pcg)


# ---------------------------------------------------------------------------------- resume
def test_resume_training_exactly(tmp_path):
    """Stop after 7 steps, checkpoint everything, resume in fresh objects: the next 7 steps match
    the uninterrupted run bit for bit."""
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)

    def make():
        g, d = small_gan(0)
        rng = np.random.default_rng(42)
        return g, d, rng, Minibatches(x, 8, rng)

    def step(g, d, rng, batches):
        real = next(batches)
        z = rng.standard_normal((8, 3)).astype(np.float32)
        fake, cache = g.forward(z)
        out, dcache = d.forward(np.concatenate([real, fake]).astype(np.float64))
        dx = d.backward(np.ones_like(out), dcache)
        g.backward(dx[8:].astype(np.float32), cache)
        for m in (g, d):
            for k, p in m.params.items():
                p -= 1e-2 * m.grads[k]
            m.zero_grad()
        return out

    g, d, rng, batches = make()
    for _ in range(7):
        step(g, d, rng, batches)
    arrays = {**flatten_state("G", g.state_dict()), **flatten_state("D", d.state_dict())}
    save_checkpoint(tmp_path / "c.npz", arrays,
                    {"step": 7, "rng": rng_state(rng), "batches": batches.state()})
    expect = [step(g, d, rng, batches) for _ in range(7)]

    g2, d2, rng2, batches2 = make()
    next(batches2)
    arrays, meta = load_checkpoint(tmp_path / "c.npz")
    g2.load_state_dict(unflatten_state("G", arrays))
    d2.load_state_dict(unflatten_state("D", arrays))
    batches2.set_state(meta["batches"])
    set_rng_state(rng2, meta["rng"])
    got = [step(g2, d2, rng2, batches2) for _ in range(7)]
    for a, b in zip(got, expect):
        np.testing.assert_array_equal(a, b)
