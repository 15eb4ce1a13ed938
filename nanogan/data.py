"""MNIST loading, image scaling and a resumable shuffling minibatch iterator.

``load_mnist`` finds the four MNIST files (IDX format, gzip-compressed or raw), checks each
against the fixed SHA-256 of its decompressed content, and parses it. Places searched, in order:

1. the ``root`` argument;
2. ``$NANOGAN_DATA``;
3. the checkout's ``data/`` folder (next to the ``nanogan`` package);
4. the user cache, ``$XDG_CACHE_HOME/nanogan`` or ``~/.cache/nanogan``.

In each place the files may sit in a ``mnist/`` subfolder or directly in the place itself. The first
file found is the one used: a corrupt file is reported, never silently skipped. Parsed arrays are
cached per process, so loading twice costs nothing.

Typical use::

    images, labels = load_mnist("train")                  # uint8 (60000, 28, 28), (60000,)
    x = scale_images(images, shape="flat")                # float32 (60000, 784) in [-1, 1]
    batches = Minibatches(x, batch_size=64, rng=0)
    x_real = next(batches)                                # (64, 784)
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .backend import asarray, is_array, to_numpy
from .checkpoint import json_safe, set_rng_state

__all__ = [
    "CHECKOUT_DATA", "MNIST_FILES", "DataError", "Minibatches", "clear_cache", "load_mnist",
    "locate_mnist", "scale_images", "search_places", "unscale_images",
]

#: The checkout's data folder (``<repository>/data``); searched after ``root`` and NANOGAN_DATA.
CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"

#: split -> (images file, labels file), the standard names without ``.gz``.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# The fixed identity of MNIST: SHA-256 and size of each file's decompressed content.
_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}
_COUNTS = {"train": 60000, "test": 10000}
_MAGIC_IMAGES, _MAGIC_LABELS = 2051, 2049


class DataError(ValueError):
    """A data file exists but is truncated, corrupt or not the expected file."""


# ---------------------------------------------------------------------------------- search
def search_places(root: str | os.PathLike | None = None) -> list[Path]:
    """The places ``load_mnist`` searches, in order, duplicates removed.

    Parameters
    ----------
    root : folder given by the caller, or None

    Returns
    -------
    places : list of Path; each is searched as ``<place>/mnist/`` then ``<place>/``
    """
    places: list[Path] = []
    if root is not None:
        places.append(Path(root).expanduser())
    env = os.environ.get("NANOGAN_DATA")
    if env:
        places.append(Path(env).expanduser())
    places.append(Path(CHECKOUT_DATA))
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    places.append(cache / "nanogan")
    unique: list[Path] = []
    for p in places:
        if p not in unique:
            unique.append(p)
    return unique


def _candidates(place: Path, name: str) -> list[Path]:
    """Paths tried for one file in one place: raw first (faster), then gzip."""
    return [d / f for d in (place / "mnist", place) for f in (name, name + ".gz")]


def _describe_places(places: list[Path]) -> str:
    lines = []
    for p in places:
        note = "" if p.is_dir() else "  (does not exist)"
        lines.append(f"  - {p / 'mnist'}/  and  {p}/{note}")
    return "\n".join(lines)


def _fix_hint(name: str) -> str:
    return (f"To fix it, copy the four MNIST files ({name}.gz and the others, gzip or raw) into "
            "one of these folders (or a 'mnist/' folder inside it), or set the environment "
            "variable NANOGAN_DATA to the folder that holds them.")


def _find(name: str, places: list[Path]) -> Path:
    for place in places:
        for path in _candidates(place, name):
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"MNIST file {name!r} (or {name}.gz) not found. Looked in, in this order:\n"
        f"{_describe_places(places)}\n{_fix_hint(name)}")


def locate_mnist(split: str = "train",
                 root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The paths of the images and labels files ``load_mnist(split, root)`` would read.

    Parameters
    ----------
    split : "train" or "test"
    root : optional folder searched first

    Returns
    -------
    images_path, labels_path : Path

    Raises
    ------
    ValueError : unknown split
    FileNotFoundError : a file is in none of the places; the message lists them
    """
    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    places = search_places(root)
    images_name, labels_name = MNIST_FILES[split]
    return _find(images_name, places), _find(labels_name, places)


# ---------------------------------------------------------------------------------- parsing
def _read_verified(path: Path, name: str) -> bytes:
    """Decompressed bytes of ``path``, checked against MNIST's fixed size and SHA-256."""
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"MNIST file {path} is truncated or corrupt: it cannot be read or "
                        f"decompressed ({type(e).__name__}: {e}).") from e
    expected = _SIZES[name]
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "corrupt (too long)"
        raise DataError(f"MNIST file {path} is {what}: its content is {len(data)} bytes, "
                        f"{name} has {expected}.")
    digest = hashlib.sha256(data).hexdigest()
    if digest != _SHA256[name]:
        raise DataError(f"MNIST file {path} is corrupt: the SHA-256 of its content is {digest}, "
                        f"{name} has {_SHA256[name]}.")
    return data


def _parse_idx(data: bytes, path: Path, magic: int, ndim: int) -> np.ndarray:
    """uint8 array from an IDX file: big-endian int32 magic, ``ndim`` int32 dims, then bytes."""
    header = np.frombuffer(data, dtype=">i4", count=1 + ndim)
    if int(header[0]) != magic:
        raise DataError(f"MNIST file {path}: IDX magic number {int(header[0])}, expected {magic}")
    shape = tuple(int(d) for d in header[1:])
    offset = 4 * (1 + ndim)
    if len(data) - offset != math.prod(shape):
        raise DataError(f"MNIST file {path}: IDX header says shape {shape}, "
                        f"but {len(data) - offset} bytes of data follow")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


@functools.cache
def _load_file(path: str, size: int, mtime_ns: int, name: str) -> np.ndarray:
    """Verified, parsed, read-only array; cached by resolved path and file stamp."""
    p = Path(path)
    data = _read_verified(p, name)
    is_images = "images" in name
    arr = _parse_idx(data, p, _MAGIC_IMAGES if is_images else _MAGIC_LABELS, 3 if is_images else 1)
    arr.setflags(write=False)
    return arr


def _load(path: Path, name: str, places: list[Path]) -> np.ndarray:
    resolved = path.resolve()
    st = resolved.stat()
    try:
        return _load_file(str(resolved), st.st_size, st.st_mtime_ns, name)
    except DataError as e:
        raise DataError(
            f"{e}\nLooked in, in this order:\n{_describe_places(places)}\n"
            f"To fix it, replace {path} with a fresh copy of {name} (gzip or raw), or delete it "
            "and put the four MNIST files in another of these folders, or set NANOGAN_DATA to a "
            "folder that holds good copies.") from e


def load_mnist(split: str = "train",
               root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST, verified against its known SHA-256 digests.

    Parameters
    ----------
    split : "train" (60,000 images) or "test" (10,000 images)
    root : optional folder searched first (the files in ``root/mnist/`` or ``root/``)

    Returns
    -------
    images : uint8, (N, 28, 28), values 0..255, read-only (shared by the per-process cache;
        ``images.copy()`` for a writable array)
    labels : uint8, (N,), digits 0..9, read-only

    Raises
    ------
    ValueError : unknown split
    FileNotFoundError : a file is missing; the message lists every place searched and the fix
    DataError (a ValueError) : a file is truncated, corrupt, or not the MNIST file of its name
    """
    places = search_places(root)
    images_path, labels_path = locate_mnist(split, root)
    images_name, labels_name = MNIST_FILES[split]
    images = _load(images_path, images_name, places)
    labels = _load(labels_path, labels_name, places)
    n = _COUNTS[split]
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise DataError(f"MNIST {split}: images {images.shape} and labels {labels.shape}, "
                        f"expected ({n}, 28, 28) and ({n},)")
    return images, labels


def clear_cache() -> None:
    """Forget the arrays cached by :func:`load_mnist`."""
    _load_file.cache_clear()


# ---------------------------------------------------------------------------------- scaling
def scale_images(images: np.ndarray, shape: str = "nchw", dtype: Any = np.float32) -> np.ndarray:
    """uint8 pixels 0..255 -> floats in [-1, 1], ``x = images / 127.5 - 1`` (the range of Tanh).

    Parameters
    ----------
    images : uint8, (N, H, W) or (N, 1, H, W) (a host array; any backend's is copied to the host)
    shape : "nchw" -> (N, 1, H, W) for convolutional nets; "flat" -> (N, H*W) for MLPs
    dtype : float32 (default) or float64

    Returns
    -------
    x : new array of ``dtype``, (N, 1, H, W) or (N, H*W); 0 -> -1.0, 255 -> 1.0 exactly
    """
    images = np.asarray(to_numpy(images))
    if images.dtype != np.uint8:
        raise ValueError(f"scale_images: argument 'images' must be uint8 pixels 0..255, "
                         f"got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"scale_images: argument 'images' expected shape (N, H, W) or "
                         f"(N, 1, H, W), got {images.shape}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"scale_images: dtype must be float32 or float64, got {dt}")
    n, h, w = images.shape
    if shape == "nchw":
        out_shape: tuple[int, ...] = (n, 1, h, w)
    elif shape == "flat":
        out_shape = (n, h * w)
    else:
        raise ValueError(f"scale_images: shape must be 'nchw' or 'flat', got {shape!r}")
    x = images.astype(dt).reshape(out_shape)
    x /= dt.type(127.5)
    x -= dt.type(1.0)
    return x


def unscale_images(x: np.ndarray, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Inverse of :func:`scale_images`: floats in [-1, 1] -> uint8 (N, H, W), clipped and rounded.

    Parameters
    ----------
    x : float, (N, 1, H, W), (N, H, W) or (N, H*W) (then reshaped to ``size``); NumPy or any
        array backend's (copied to the host)
    size : (H, W) used for flat input

    Returns
    -------
    images : uint8, (N, H, W)
    """
    x = np.asarray(to_numpy(x))
    if x.ndim == 2:
        x = x.reshape(x.shape[0], *size)
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"unscale_images: argument 'x' expected shape (N, 1, H, W), (N, H, W) "
                         f"or (N, H*W), got {x.shape}")
    return np.rint(np.clip((x.astype(np.float64) + 1.0) * 127.5, 0, 255)).astype(np.uint8)


# ---------------------------------------------------------------------------------- batches
def _generator_from_state(state: dict) -> np.random.Generator:
    """A fresh Generator whose bit generator is in ``state`` (``bit_generator.state`` format)."""
    name = state["bit_generator"]
    bit_generator = getattr(np.random, name, None)
    if bit_generator is None or not isinstance(bit_generator, type):
        raise ValueError(f"unknown bit generator {name!r}")
    bg = bit_generator()
    bg.state = state
    return np.random.Generator(bg)


class Minibatches(Iterator[np.ndarray]):
    """Infinite, seeded, shuffling iterator over the rows of ``x``; resumable exactly.

    Every epoch draws a fresh permutation of the N rows from ``rng`` and yields consecutive slices
    of it, so each row appears exactly once per epoch. With ``drop_last=True`` the last
    ``N % batch_size`` rows of the permutation are skipped (every batch has ``batch_size`` rows);
    with ``drop_last=False`` the epoch ends with one shorter batch.

    Parameters
    ----------
    x : array, (N, ...): the data, indexed along axis 0: a NumPy array (batches are host copies,
        moved to the device by the training loop) or an array of the active backend (the whole
        data set on the device; batches are gathered there)
    batch_size : int, 1 <= batch_size (<= N when drop_last)
    rng : numpy Generator, int seed or None. A Generator is used as it is (shared with the caller)
    drop_last : bool, default True

    Attributes
    ----------
    epoch : int, number of completed epochs (the current epoch's index)
    position : int, index in the current permutation of the next batch's first row
    order : int64 (N,), the current epoch's permutation of the rows
    steps_per_epoch : int, batches per epoch

    Yields
    ------
    batch : (batch_size, ...) copy of ``x[idx]``

    Notes
    -----
    ``state()`` returns plain ints and JSON-safe dicts (the generator's state now and at the start
    of the epoch, from which the epoch's permutation is drawn again), so it fits in a checkpoint's
    metadata; ``set_state`` resumes the exact sequence of batches, and also restores ``rng``.
    """

    def __init__(self, x: np.ndarray, batch_size: int, rng: np.random.Generator | int | None = None,
                 drop_last: bool = True) -> None:
        self.x = x
        self.n = len(x)
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"Minibatches: batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        if self.n == 0 or (self.drop_last and self.batch_size > self.n):
            raise ValueError(f"Minibatches: batch_size {self.batch_size} with drop_last="
                             f"{self.drop_last} gives no batch from {self.n} rows")
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.epoch = 0
        self._new_permutation()

    def _new_permutation(self) -> None:
        self._epoch_rng = self.rng.bit_generator.state
        self.order = self.rng.permutation(self.n)
        self.position = 0

    @property
    def steps_per_epoch(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Minibatches:
        return self

    def next_indices(self) -> np.ndarray:
        """The row indices of the next batch, (batch_size,) int64 (advances the iterator)."""
        idx = self.order[self.position:self.position + self.batch_size]
        self.position += len(idx)
        remaining = self.n - self.position
        if remaining == 0 or (self.drop_last and remaining < self.batch_size):
            self.epoch += 1
            self._new_permutation()
        return idx

    def __next__(self) -> np.ndarray:
        idx = self.next_indices()
        if type(self.x) is not np.ndarray and is_array(self.x):
            idx = asarray(idx)  # data on the device: gather the batch there
        return self.x[idx]

    def state(self) -> dict[str, Any]:
        """Plain, JSON-safe state: ``n``, ``batch_size``, ``drop_last``, ``epoch``, ``position``,
        ``epoch_rng`` (generator state before this epoch's permutation), ``rng`` (now)."""
        return {"n": self.n, "batch_size": self.batch_size, "drop_last": self.drop_last,
                "epoch": self.epoch, "position": self.position,
                "epoch_rng": json_safe(self._epoch_rng),
                "rng": json_safe(self.rng.bit_generator.state)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state`; raises ValueError if it was taken on other data or sizes."""
        for key, mine in (("n", self.n), ("batch_size", self.batch_size),
                          ("drop_last", self.drop_last)):
            if state[key] != mine:
                raise ValueError(f"Minibatches.set_state: state has {key}={state[key]!r}, "
                                 f"this iterator has {key}={mine!r}")
        position = int(state["position"])
        if not 0 <= position < self.n:
            raise ValueError(f"Minibatches.set_state: position {position} out of range "
                             f"[0, {self.n})")
        kind = type(self.rng.bit_generator).__name__
        for key in ("epoch_rng", "rng"):
            if state[key].get("bit_generator") != kind:
                raise ValueError(f"Minibatches.set_state: {key} is a state of bit generator "
                                 f"{state[key].get('bit_generator')!r}, this iterator's "
                                 f"Generator uses {kind!r}")
        replay = _generator_from_state(state["epoch_rng"])
        _generator_from_state(state["rng"])  # validate before changing anything
        self._epoch_rng = replay.bit_generator.state
        self.order = replay.permutation(self.n)
        self.position = position
        self.epoch = int(state["epoch"])
        set_rng_state(self.rng, state["rng"])
