"""MNIST loading (search order, verification, error messages), image scaling, Minibatches."""

from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nanogan import data
from nanogan.data import DataError, Minibatches, load_mnist, locate_mnist, scale_images

MNIST_DIR = Path(data.CHECKOUT_DATA) / "mnist"
# From data/README.md (digits 0 to 9).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_IMAGES, TEST_LABELS = data.MNIST_FILES["test"]


@functools.cache
def raw_bytes(name: str) -> bytes:
    """Decompressed content of one of the committed MNIST files."""
    return gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes())


def put_test_split(folder: Path, *, gz: bool = True) -> Path:
    """Copy the test split into ``folder`` (gzip as committed, or decompressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (TEST_IMAGES, TEST_LABELS):
        if gz:
            shutil.copyfile(MNIST_DIR / f"{name}.gz", folder / f"{name}.gz")
        else:
            (folder / name).write_bytes(raw_bytes(name))
    return folder


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No NANOGAN_DATA, an empty checkout data folder and an empty user cache."""
    monkeypatch.delenv("NANOGAN_DATA", raising=False)
    monkeypatch.setattr(data, "CHECKOUT_DATA", tmp_path / "checkout")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


@pytest.fixture(scope="module")
def good_images_root(tmp_path_factory):
    """A root folder holding the genuine raw test images (the labels file is written per test)."""
    root = tmp_path_factory.mktemp("root")
    (root / TEST_IMAGES).write_bytes(raw_bytes(TEST_IMAGES))
    return root


# ---------------------------------------------------------------------------------- contents
@pytest.mark.parametrize(("split", "counts"), [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_mnist_contents(split, counts):
    images, labels = load_mnist(split)
    n = sum(counts)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == counts
    assert images.min() == 0 and images.max() == 255
    assert 0.10 < images.mean() / 255 < 0.15  # MNIST's mean intensity is about 0.13


def test_cached_and_read_only():
    a, la = load_mnist("test")
    b, lb = load_mnist("test")
    assert a is b and la is lb
    assert not a.flags.writeable and not la.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0, 0] = 1


@pytest.mark.parametrize("split", ["val", "TRAIN", "", None])
def test_bad_split(split):
    with pytest.raises(ValueError, match="split"):
        load_mnist(split)


# ---------------------------------------------------------------------------------- search
def test_search_order(isolated, monkeypatch):
    monkeypatch.setenv("NANOGAN_DATA", str(isolated / "env"))
    places = data.search_places(isolated / "root")
    assert places == [isolated / "root", isolated / "env", isolated / "checkout",
                      isolated / "xdg" / "nanogan"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert data.search_places()[-1] == isolated / "home" / ".cache" / "nanogan"


def test_root_with_raw_files(isolated):
    root = put_test_split(isolated / "root", gz=False)
    assert locate_mnist("test", root) == (root / TEST_IMAGES, root / TEST_LABELS)
    images, labels = load_mnist("test", root=root)
    ref_images, ref_labels = load_mnist("test", root=MNIST_DIR)
    np.testing.assert_array_equal(images, ref_images)
    np.testing.assert_array_equal(labels, ref_labels)
    assert np.bincount(labels).tolist() == TEST_COUNTS


def test_root_with_mnist_subfolder(isolated):
    put_test_split(isolated / "root" / "mnist")
    images, labels = load_mnist("test", root=str(isolated / "root"))
    assert locate_mnist("test", isolated / "root")[1] == isolated / "root" / "mnist" / (
        TEST_LABELS + ".gz")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == TEST_COUNTS


def test_nanogan_data_env(isolated, monkeypatch):
    env = put_test_split(isolated / "env" / "mnist")
    monkeypatch.setenv("NANOGAN_DATA", str(isolated / "env"))
    assert locate_mnist("test") == (env / f"{TEST_IMAGES}.gz", env / f"{TEST_LABELS}.gz")
    assert np.bincount(load_mnist("test")[1]).tolist() == TEST_COUNTS
    # root comes first
    root = put_test_split(isolated / "root", gz=False)
    assert locate_mnist("test", root)[0] == root / TEST_IMAGES


def test_checkout_then_user_cache(isolated, monkeypatch):
    cache = put_test_split(isolated / "xdg" / "nanogan")
    assert locate_mnist("test")[0] == cache / f"{TEST_IMAGES}.gz"
    checkout = put_test_split(isolated / "checkout" / "mnist")
    assert locate_mnist("test")[0] == checkout / f"{TEST_IMAGES}.gz"
    monkeypatch.setattr(data, "CHECKOUT_DATA", MNIST_DIR.parent)
    assert locate_mnist("train")[0] == MNIST_DIR / "train-images-idx3-ubyte.gz"


def test_missing_file_message(isolated, monkeypatch):
    monkeypatch.setenv("NANOGAN_DATA", str(isolated / "env"))
    root = isolated / "root"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / TEST_IMAGES).write_bytes(raw_bytes(TEST_IMAGES))  # labels missing
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("test", root=root)
    msg = str(info.value)
    assert TEST_LABELS in msg and TEST_IMAGES not in msg
    for place in (root, isolated / "env", isolated / "checkout", isolated / "xdg" / "nanogan"):
        assert str(place) in msg
        assert str(place / "mnist") in msg
    assert "does not exist" in msg  # env, checkout and cache folders are absent
    assert "NANOGAN_DATA" in msg and "copy" in msg


def check_data_error(err: DataError, path: Path, *words: str) -> None:
    msg = str(err)
    assert str(path) in msg
    for w in words:
        assert w in msg
    assert "Looked in" in msg and "NANOGAN_DATA" in msg and "fresh copy" in msg


def test_checksum_mismatch(isolated):
    root = put_test_split(isolated / "root", gz=False)
    content = bytearray(raw_bytes(TEST_LABELS))
    content[5000] ^= 1  # one label changes by one
    (root / TEST_LABELS).write_bytes(bytes(content))
    with pytest.raises(DataError) as info:
        load_mnist("test", root=root)
    check_data_error(info.value, root / TEST_LABELS, "corrupt", "SHA-256",
                     str(isolated / "checkout"), str(isolated / "xdg" / "nanogan"))
    assert isinstance(info.value, ValueError)


def test_corrupt_gz_content(isolated):
    """A well-formed gzip whose decompressed content differs: caught by the SHA-256."""
    root = put_test_split(isolated / "root")
    content = bytearray(raw_bytes(TEST_IMAGES))
    content[-1] ^= 0xFF
    (root / f"{TEST_IMAGES}.gz").write_bytes(gzip.compress(bytes(content), compresslevel=1))
    with pytest.raises(DataError) as info:
        load_mnist("test", root=root)
    check_data_error(info.value, root / f"{TEST_IMAGES}.gz", "SHA-256")


def test_truncated_gz(isolated):
    root = put_test_split(isolated / "root")
    gz = (root / f"{TEST_IMAGES}.gz").read_bytes()
    (root / f"{TEST_IMAGES}.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError) as info:
        load_mnist("test", root=root)
    check_data_error(info.value, root / f"{TEST_IMAGES}.gz", "truncated")


def test_too_long_raw(isolated):
    root = put_test_split(isolated / "root", gz=False)
    (root / TEST_LABELS).write_bytes(raw_bytes(TEST_LABELS) + b"\0")
    with pytest.raises(DataError, match="too long"):
        load_mnist("test", root=root)


@given(cut=st.integers(0, 10007))
def test_truncated_raw_any_length(good_images_root, cut):
    (good_images_root / TEST_LABELS).write_bytes(raw_bytes(TEST_LABELS)[:cut])
    with pytest.raises(DataError) as info:
        load_mnist("test", root=good_images_root)
    assert "truncated" in str(info.value) and TEST_LABELS in str(info.value)


@given(pos=st.integers(0, 10007), bit=st.integers(0, 7))
def test_any_flipped_bit_raw(good_images_root, pos, bit):
    content = bytearray(raw_bytes(TEST_LABELS))
    content[pos] ^= 1 << bit
    (good_images_root / TEST_LABELS).write_bytes(bytes(content))
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist("test", root=good_images_root)


@given(st.data())
def test_damaged_gz_never_gives_wrong_data(good_images_root, draw):
    """A damaged .gz file either fails loudly or (a flip in gzip's mtime/OS fields) loads the
    genuine labels."""
    gz = (MNIST_DIR / f"{TEST_LABELS}.gz").read_bytes()
    if draw.draw(st.booleans(), label="truncate"):
        damaged = gz[: draw.draw(st.integers(0, len(gz) - 1), label="cut")]
    else:
        b = bytearray(gz)
        b[draw.draw(st.integers(0, len(gz) - 1), label="pos")] ^= 1 << draw.draw(
            st.integers(0, 7), label="bit")
        damaged = bytes(b)
    (good_images_root / TEST_LABELS).unlink(missing_ok=True)
    (good_images_root / f"{TEST_LABELS}.gz").write_bytes(damaged)
    try:
        labels = load_mnist("test", root=good_images_root)[1]
    except DataError as e:
        assert str(good_images_root / f"{TEST_LABELS}.gz") in str(e)
    else:
        assert np.bincount(labels).tolist() == TEST_COUNTS
    finally:
        (good_images_root / f"{TEST_LABELS}.gz").unlink()


def test_replaced_file_is_read_again(isolated):
    """The in-memory cache is keyed by path and file stamp: a file replaced on disk is re-read."""
    root = put_test_split(isolated / "root", gz=False)
    load_mnist("test", root=root)
    path = root / TEST_LABELS
    stamp = path.stat().st_mtime_ns
    content = bytearray(raw_bytes(TEST_LABELS))
    content[100] ^= 1
    path.write_bytes(bytes(content))  # same size
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    with pytest.raises(DataError):
        load_mnist("test", root=root)

# ---------------------------------------------------------------------------------- scaling
@given(images=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6)),
       shape=st.sampled_from(["nchw", "flat"]), dtype=st.sampled_from([np.float32, np.float64]))
def test_scale_images(images, shape, dtype):
    n, h, w = images.shape
    x = scale_images(images, shape=shape, dtype=dtype)
    assert x.dtype == dtype and x.shape == ((n, 1, h, w) if shape == "nchw" else (n, h * w))
    expect = images.astype(np.float64).reshape(x.shape) / 127.5 - 1
    # x/127.5 - 1 cancels near 128: allow one float32 rounding of a value of size 1 (2**-24)
    f32 = dtype == np.float32
    np.testing.assert_allclose(x, expect, rtol=1e-6 if f32 else 1e-15, atol=2**-23 if f32 else 0)
    assert np.all((x >= -1) & (x <= 1))
    np.testing.assert_array_equal(data.unscale_images(x, size=(h, w)), images)


def test_scale_extremes_and_torch(torch):
    images = np.array([[[0, 1, 127, 128, 254, 255]]], dtype=np.uint8)
    for dt, tol in ((np.float64, 1e-8), (np.float32, 1e-4)):
        x = scale_images(images, shape="flat", dtype=dt)
        assert x[0, 0] == -1.0 and x[0, -1] == 1.0
        # What a PyTorch user writes: ToTensor() then Normalize((0.5,), (0.5,)).
        t = (torch.from_numpy(images.astype(dt)) / 255 - 0.5) / 0.5
        ref = t.reshape(1, -1).numpy()
        assert np.abs(x - ref).max() / np.abs(ref).max() < tol
    real = load_mnist("test")[0][:256]
    x = scale_images(real)
    t = ((torch.from_numpy(real.copy()).double() / 255 - 0.5) / 0.5).unsqueeze(1).numpy()
    assert x.shape == (256, 1, 28, 28)
    assert np.linalg.norm(x - t) / np.linalg.norm(t) < 1e-7


@pytest.mark.parametrize(("images", "kwargs", "match"), [
    (np.zeros((2, 28, 28), np.float32), {}, "uint8"),
    (np.zeros((28, 28), np.uint8), {}, "shape"),
    (np.zeros((2, 3, 28, 28), np.uint8), {}, "shape"),
    (np.zeros((2, 28, 28), np.uint8), {"shape": "nhwc"}, "nchw"),
    (np.zeros((2, 28, 28), np.uint8), {"dtype": np.float16}, "float32"),
])
def test_scale_images_errors(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        scale_images(images, **kwargs)


# ---------------------------------------------------------------------------------- batches
def rows(n: int) -> np.ndarray:
    return np.stack([np.arange(n), -np.arange(n)], axis=1)


@given(n=st.integers(1, 40), batch_size=st.integers(1, 45), drop_last=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_every_index_once_per_epoch(n, batch_size, drop_last, seed):
    x = rows(n)
    if drop_last and batch_size > n:
        with pytest.raises(ValueError, match="no batch"):
            Minibatches(x, batch_size, seed, drop_last)
        return
    it = Minibatches(x, batch_size, seed, drop_last)
    for epoch in range(3):
        assert it.epoch == epoch and it.position == 0
        seen = []
        for step in range(it.steps_per_epoch):
            b = next(it)
            last = step == it.steps_per_epoch - 1
            size = batch_size if drop_last or not last or n % batch_size == 0 else n % batch_size
            assert b.shape == (size, 2)
            np.testing.assert_array_equal(b[:, 1], -b[:, 0])
            seen.extend(b[:, 0].tolist())
        assert len(seen) == len(set(seen)) == (n // batch_size * batch_size if drop_last else n)
        assert set(seen) <= set(range(n))
    assert it.epoch == 3


def test_seeded_and_reshuffled():
    x = rows(100)
    a = [next(Minibatches(x, 10, 7)) for _ in range(1)]
    it1, it2, it3 = Minibatches(x, 10, 7), Minibatches(x, 10, 7), Minibatches(x, 10, 8)
    s1 = np.concatenate([next(it1) for _ in range(30)])
    s2 = np.concatenate([next(it2) for _ in range(30)])
    s3 = np.concatenate([next(it3) for _ in range(30)])
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(a[0], s1[:10])
    assert not np.array_equal(s1, s3)
    epochs = s1[:, 0].reshape(3, 100)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert it1.epoch == 3


def test_generator_argument_is_used():
    rng = np.random.default_rng(3)
    it = Minibatches(rows(50), 5, rng)
    ref = Minibatches(rows(50), 5, np.random.default_rng(3))
    np.testing.assert_array_equal(it.order, ref.order)
    assert it.rng is rng


@given(n=st.integers(1, 30), batch_size=st.integers(1, 30), drop_last=st.booleans(),
       before=st.integers(0, 40), after=st.integers(1, 40), shared=st.booleans())
def test_state_round_trip(n, batch_size, drop_last, before, after, shared):
    """Resuming from ``state()`` (through JSON) continues with exactly the same batches, also
    when the generator is shared with other draws (noise) between batches."""
    if drop_last and batch_size > n:
        return
    x = rows(n)

    def run(it, rng, steps):
        out = []
        for _ in range(steps):
            out.append(next(it))
            if shared:
                out.append(rng.normal(size=2))
        return out

    rng = np.random.default_rng(11)
    it = Minibatches(x, batch_size, rng, drop_last)
    run(it, rng, before)
    state = json.loads(json.dumps(it.state()))
    epoch, position = it.epoch, it.position
    expect = run(it, rng, after)

    rng2 = np.random.default_rng(999)
    resumed = Minibatches(x, batch_size, rng2, drop_last)
    resumed.set_state(state)
    assert (resumed.epoch, resumed.position) == (epoch, position)
    got = run(resumed, rng2, after)
    assert len(got) == len(expect)
    for g, e in zip(got, expect):
        np.testing.assert_array_equal(g, e)
    assert (resumed.epoch, resumed.position) == (it.epoch, it.position)


def test_state_mt19937_bit_generator():
    make = lambda seed: np.random.Generator(np.random.MT19937(seed))  # noqa: E731
    it = Minibatches(rows(20), 3, make(1))
    for _ in range(9):
        next(it)
    state = json.loads(json.dumps(it.state()))
    expect = [next(it) for _ in range(10)]
    resumed = Minibatches(rows(20), 3, make(2))
    resumed.set_state(state)
    for g, e in zip([next(resumed) for _ in range(10)], expect):
        np.testing.assert_array_equal(g, e)


def test_state_mismatch_and_bad_arguments():
    it = Minibatches(rows(20), 4, 0)
    state = it.state()
    with pytest.raises(ValueError, match="n=20"):
        Minibatches(rows(21), 4, 0).set_state(state)
    with pytest.raises(ValueError, match="batch_size"):
        Minibatches(rows(20), 5, 0).set_state(state)
    with pytest.raises(ValueError, match="bit generator"):
        Minibatches(rows(20), 4, np.random.Generator(np.random.Philox(0))).set_state(state)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            Minibatches(rows(20), bad, 0)
    with pytest.raises(ValueError, match="no batch"):
        Minibatches(rows(0), 1, 0, drop_last=False)


def test_minibatches_on_mnist():
    x = scale_images(load_mnist("test")[0], shape="flat")
    it = Minibatches(x, 64, 0)
    b = next(it)
    assert b.shape == (64, 784) and b.dtype == np.float32 and it.steps_per_epoch == 156
    np.testing.assert_array_equal(b, x[it.order[:64]])
