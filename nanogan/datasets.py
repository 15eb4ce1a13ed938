"""Training data from anywhere: MNIST, IDX files, folders of images, ``.npy``/``.npz`` arrays.

:func:`load_dataset` turns a ``--data`` argument into a :class:`Dataset`: uint8 images
``(N, C, H, W)`` (C = 1 or 3) of one size, with integer labels where the source has them.

==============================  =====================================================  =========
``data``                        what is read                                           labels
==============================  =====================================================  =========
``mnist`` / ``mnist:test``      the MNIST training / test set (:func:`nanogan.data.load_mnist`)  yes
a folder of IDX files           ``*images-idx3-ubyte[.gz]`` and ``*labels-idx1-ubyte[.gz]``  yes
an IDX images file              that file; the labels file of the same name with       if found
                                ``labels``/``idx1`` for ``images``/``idx3`` (Fashion-MNIST,
                                EMNIST, KMNIST layouts; EMNIST's transposed images are
                                turned upright)
a folder of PNG/JPEG images     every image in it and its subfolders; with images      if subfolders
                                only in subfolders, one subfolder per class
``x.npy``                       uint8 0..255 or float in [0, 1] or [-1, 1], (N, H, W),  no
                                (N, C, H, W) or (N, H, W, C)
``x.npz``                       the arrays ``x`` (or ``images``) and ``y`` (or          if present
                                ``labels``)
==============================  =====================================================  =========

Images are resized (shorter side to ``image_size``, bicubic) and centre-cropped to
``image_size x image_size``; ``channels`` converts them to grey (1) or colour (3). Decoding
images needs Pillow (``pip install pillow``, or ``pip install nanogan[images]``); the import is
lazy, so nothing else needs it.

Every problem is a :class:`DatasetError` whose one-line message says what is wrong and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "Dataset", "DatasetError", "load_dataset", "require_pillow",
           "resize_images", "scale_to_unit"]

#: File suffixes read as images in a folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


class DatasetError(ValueError):
    """The data cannot be used as given; the message says what is wrong and what to do."""


@dataclass
class Dataset:
    """Images ready for training.

    Attributes
    ----------
    images : uint8 (N, C, H, W), C in (1, 3), H == W
    labels : int64 (N,) in [0, num_classes), or None
    classes : the class names (folder names, or ``"0"``, ``"1"``...), or None
    source : what ``data`` named, as given
    kind : ``"mnist"``, ``"idx"``, ``"folder"``, ``"npy"`` or ``"npz"``
    """

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[str] | None
    source: str
    kind: str
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data of a run: kind, shape, count, classes and a SHA-256 of the
        pixels (a checkpoint trained on other data is refused on resume)."""
        h = hashlib.sha256(np.ascontiguousarray(self.images).data)
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels, dtype=np.int64).data)
        return {"kind": self.kind, "n": len(self.images), "shape": list(self.shape),
                "num_classes": self.num_classes, "sha256": h.hexdigest()[:16]}

    def describe(self) -> str:
        c, h, w = self.shape
        labels = (f", {self.num_classes} classes" if self.labels is not None else ", no labels")
        notes = "".join(f"; {n}" for n in self.notes)
        return (f"{len(self.images):,} images {c}x{h}x{w} from {self.source} "
                f"({self.kind}{labels}{notes})")


# ---------------------------------------------------------------------------------- Pillow
def require_pillow() -> Any:
    """``PIL.Image``, or a :class:`DatasetError` saying how to install Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("reading image folders and writing GIFs needs Pillow, which is not "
                           "installed: pip install pillow (or pip install 'nanogan[images]')"
                           ) from None
    return Image


# ---------------------------------------------------------------------------------- scaling
def scale_to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) 0..255 -> float32 in [-1, 1]: ``x = images / 127.5 - 1``."""
    x = images.astype(np.float32)
    x /= np.float32(127.5)
    x -= np.float32(1.0)
    return x


def _fit(img: Any, size: int, Image: Any) -> Any:
    """Resize so the shorter side is ``size`` (bicubic), then centre-crop to ``size x size``."""
    w, h = img.size
    if (w, h) != (size, size):
        s = size / min(w, h)
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


def resize_images(images: np.ndarray, size: int, channels: int | None = None) -> np.ndarray:
    """Resize + centre-crop uint8 images ``(N, C, H, W)`` to ``size``, optionally to
    ``channels`` (1: luminance, 3: grey copied to RGB). Returns uint8 (N, C', size, size)."""
    n, c, h, w = images.shape
    out_c = channels or c
    if (h, w) == (size, size) and out_c == c:
        return images
    if (h, w) == (size, size):
        if out_c == 3:
            return np.repeat(images, 3, axis=1)
        lum = images.astype(np.float64).transpose(0, 2, 3, 1) @ [0.299, 0.587, 0.114]
        return np.rint(lum)[:, None].astype(np.uint8)
    Image = require_pillow()
    out = np.empty((n, out_c, size, size), dtype=np.uint8)
    for i in range(n):
        a = images[i, 0] if c == 1 else images[i].transpose(1, 2, 0)
        img = Image.fromarray(np.ascontiguousarray(a), "L" if c == 1 else "RGB")
        img = _fit(img, size, Image).convert("L" if out_c == 1 else "RGB")
        arr = np.asarray(img)
        out[i] = arr[None] if out_c == 1 else arr.transpose(2, 0, 1)
    return out


# ---------------------------------------------------------------------------------- IDX
def _read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX array (magic 0x0801..0x0804), gzip or raw."""
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read or decompress it ({type(e).__name__}: {e}); "
                           "replace it with a good copy") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DatasetError(f"{path}: not a uint8 IDX file (bad magic number); pass an "
                           "'*-images-idx3-ubyte' or '*-labels-idx1-ubyte' file, gzip or raw")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise DatasetError(f"{path}: the IDX header says shape {shape} but {len(data) - offset} "
                           "bytes follow (truncated?); replace it with a good copy")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _labels_path_for(images_path: Path) -> Path | None:
    name = images_path.name
    for a, b in (("images", "labels"), ("idx3", "idx1")):
        name = name.replace(a, b)
    if name == images_path.name:
        return None
    for cand in (images_path.with_name(name), images_path.with_name(name.removesuffix(".gz")),
                 images_path.with_name(name + ".gz")):
        if cand.is_file():
            return cand
    return None


def _load_idx(images_path: Path, labels_path: Path | None, source: str) -> Dataset:
    x = _read_idx(images_path)
    if x.ndim != 3:
        raise DatasetError(f"{images_path}: IDX array of shape {x.shape}, expected images "
                           "(N, H, W); pass the images file, not the labels file")
    labels_path = labels_path or _labels_path_for(images_path)
    y = _read_idx(labels_path).astype(np.int64) if labels_path is not None else None
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise DatasetError(f"{labels_path}: {y.shape} labels for {len(x)} images in "
                           f"{images_path}; pass the labels file that belongs to these images")
    notes = [f"labels from {labels_path}"] if labels_path is not None else []
    if "emnist" in images_path.name.lower():  # EMNIST stores each image transposed
        x = x.transpose(0, 2, 1)
        notes.append("EMNIST images transposed to upright")
    return _with_labels(np.ascontiguousarray(x[:, None]), y, "idx", source, notes)


def _with_labels(images: np.ndarray, y: np.ndarray | None, kind: str, source: str,
                 notes: list[str] | None = None) -> Dataset:
    classes = None
    if y is not None:
        values = np.unique(y)
        if values.min() < 0:
            raise DatasetError(f"{source}: negative labels ({values.min()}); labels must be "
                               "class indices 0, 1, 2...")
        # EMNIST letters count from 1: keep the indices, name the classes by value
        classes = [str(v) for v in range(int(values.max()) + 1)]
    return Dataset(images, y, classes, source, kind, notes or [])


# ---------------------------------------------------------------------------------- arrays
def _as_nchw_uint8(a: np.ndarray, where: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    if a.ndim != 4 or a.shape[1] not in (1, 3) or len(a) == 0:
        raise DatasetError(f"{where}: images of shape {a.shape}; expected (N, H, W), "
                           "(N, C, H, W) or (N, H, W, C) with C = 1 or 3 and N >= 1")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind not in "fiu":
        raise DatasetError(f"{where}: images of dtype {a.dtype}; expected uint8 0..255 or "
                           "floats in [0, 1] or [-1, 1]")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DatasetError(f"{where}: the images contain NaN or infinity; clean the array")
    lo, hi = float(a.min()), float(a.max())
    if a.dtype.kind == "f" and lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6:
        a = (a + 1.0) * 127.5 if lo < -1e-6 else a * 255.0
    elif not (lo >= 0 and hi <= 255):
        raise DatasetError(f"{where}: values in [{lo:g}, {hi:g}]; expected 0..255, [0, 1] or "
                           "[-1, 1]")
    return np.rint(np.clip(a, 0, 255)).astype(np.uint8)


def _load_array(path: Path, source: str) -> Dataset:
    try:
        obj = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read it as a NumPy array ({e}); pass a .npy or .npz "
                           "written by numpy.save / numpy.savez") from None
    if isinstance(obj, np.lib.npyio.NpzFile):
        with obj:
            names = obj.files
            xk = next((k for k in ("x", "images", "X") if k in names),
                      names[0] if len(names) == 1 else None)
            if xk is None:
                raise DatasetError(f"{path}: holds arrays {names}; name the images 'x' (or "
                                   "'images') and the labels 'y' (or 'labels')")
            yk = next((k for k in ("y", "labels", "Y") if k in names), None)
            x = _as_nchw_uint8(obj[xk], f"{path}['{xk}']")
            y = obj[yk] if yk else None
        if y is not None:
            if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
                raise DatasetError(f"{path}['{yk}']: labels {y.dtype} {y.shape} for {len(x)} "
                                   "images; expected integers (N,)")
            y = y.astype(np.int64)
        return _with_labels(x, y, "npz", source)
    return _with_labels(_as_nchw_uint8(obj, str(path)), None, "npy", source)


# ---------------------------------------------------------------------------------- folders
def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _load_folder(folder: Path, size: int, channels: int | None, source: str,
                 max_images: int | None) -> Dataset:
    files = _list_images(folder)
    if not files:
        raise DatasetError(f"{folder}: no PNG or JPEG images in this folder or its subfolders; "
                           "put .png/.jpg files there (optionally one subfolder per class)")
    top = [p for p in files if p.parent == folder]
    class_names = sorted({p.relative_to(folder).parts[0] for p in files if p.parent != folder})
    labelled = not top and len(class_names) >= 2
    if max_images is not None:
        files = files[:max_images] if not labelled else _balanced(files, folder, max_images)
    Image = require_pillow()
    decoded = []
    modes: dict[str, Path] = {}
    for p in files:
        try:
            with Image.open(p) as img:
                img.load()
                kind = "grey" if img.mode in _GREY_MODES else "colour"
                modes.setdefault(kind, p)
                decoded.append((p, img.copy()))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DatasetError(f"{p}: cannot read this image ({type(e).__name__}: {e}); delete "
                               "or re-save it, then run again") from None
    if channels is None:
        if len(modes) > 1:
            raise DatasetError(f"{folder}: mixes greyscale images ({modes['grey'].name}) and "
                               f"colour images ({modes['colour'].name}); pass --channels 1 or "
                               "--channels 3 to convert them all")
        channels = 1 if "grey" in modes else 3
    out = np.empty((len(decoded), channels, size, size), dtype=np.uint8)
    for i, (_, img) in enumerate(decoded):
        if img.mode in ("RGBA", "LA", "P", "PA"):  # composite transparency on white
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        img = _fit(img.convert("L" if channels == 1 else "RGB"), size, Image)
        arr = np.asarray(img)
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    labels = None
    classes = None
    if labelled:
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.array([index[p.relative_to(folder).parts[0]] for p, _ in decoded],
                          dtype=np.int64)
        classes = class_names
    return Dataset(out, labels, classes, source, "folder")


def _balanced(files: list[Path], folder: Path, n: int) -> list[Path]:
    """The first ``n`` files taken round-robin over the class subfolders."""
    groups: dict[str, list[Path]] = {}
    for p in files:
        groups.setdefault(p.relative_to(folder).parts[0], []).append(p)
    out: list[Path] = []
    lists = list(groups.values())
    i = 0
    while len(out) < n and any(i < len(g) for g in lists):
        out += [g[i] for g in lists if i < len(g)][:n - len(out)]
        i += 1
    return sorted(out)


# ---------------------------------------------------------------------------------- entry point
def _idx_pair_in(folder: Path) -> tuple[Path, Path | None] | None:
    imgs = sorted(p for p in folder.iterdir()
                  if p.is_file() and "idx3-ubyte" in p.name and "images" in p.name)
    if not imgs:
        return None
    train = [p for p in imgs if "train" in p.name]
    pick = (train or imgs)[0]
    return pick, _labels_path_for(pick)


def load_dataset(data: str | os.PathLike, image_size: int | None = None,
                 channels: int | None = None, *, labels: str | os.PathLike | None = None,
                 max_images: int | None = None) -> Dataset:
    """Read ``data`` (see the module docstring) as uint8 images ``(N, C, S, S)``.

    Parameters
    ----------
    data : ``"mnist"``, ``"mnist:test"``, or a path to a folder or a file
    image_size : S; None keeps the data's own size (a folder of images: 64)
    channels : 1 or 3 to convert; None keeps the data's (a folder mixing grey and colour images is
        an error then)
    labels : a labels file (IDX or .npy of integers) for an images file that has none beside it
    max_images : read at most this many images (a folder: spread over its classes)

    Raises
    ------
    DatasetError : a one-line message saying what is wrong and what to do
    """
    if channels not in (None, 1, 3):
        raise DatasetError(f"--channels must be 1 (grey) or 3 (colour), got {channels}")
    if image_size is not None and not 4 <= int(image_size) <= 4096:
        raise DatasetError(f"--image-size {image_size} is impossible: give a side length in "
                           "pixels between 4 and 4096")
    source = str(data)
    if source.lower() in ("mnist", "mnist:train", "mnist:test"):
        from .data import load_mnist

        split = "test" if source.lower().endswith("test") else "train"
        try:
            x, y = load_mnist(split)
        except (OSError, ValueError) as e:
            raise DatasetError(str(e).splitlines()[0] + " (see nanogan.data.load_mnist; "
                               "set NANOGAN_DATA to the folder holding the MNIST files)") from None
        ds = _with_labels(np.asarray(x)[:, None], np.asarray(y).astype(np.int64), "mnist", source)
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise DatasetError(f"--data {source}: no such file or folder; give an image folder, "
                               "an IDX images file, a .npy/.npz array, or 'mnist'")
        if path.is_dir():
            pair = _idx_pair_in(path)
            if pair is not None:
                ds = _load_idx(pair[0], Path(labels) if labels else pair[1], source)
            else:
                ds = _load_folder(path, int(image_size or 64), channels, source, max_images)
        elif path.suffix in (".npy", ".npz"):
            ds = _load_array(path, source)
        elif "idx" in path.name or path.suffix == ".gz":
            ds = _load_idx(path, Path(labels) if labels else None, source)
        else:
            raise DatasetError(f"--data {source}: not a folder, an IDX file, or a .npy/.npz "
                               "array; convert it to one of those")
        if labels is not None and ds.kind in ("npy", "npz"):
            y = np.load(labels, allow_pickle=False) if str(labels).endswith(".npy") \
                else _read_idx(Path(labels))
            if y.ndim != 1 or len(y) != len(ds.images) or y.dtype.kind not in "iu":
                raise DatasetError(f"--labels {labels}: {y.dtype} {y.shape} for "
                                   f"{len(ds.images)} images; expected integers (N,)")
            ds = _with_labels(ds.images, y.astype(np.int64), ds.kind, source)
    if max_images is not None and ds.kind != "folder":
        ds.images = ds.images[:max_images]
        ds.labels = ds.labels[:max_images] if ds.labels is not None else None
    _, h, w = ds.shape
    size = int(image_size) if image_size is not None else (h if h == w else min(h, w))
    if ds.shape[1:] != (size, size) or (channels and channels != ds.shape[0]):
        ds.images = resize_images(ds.images, size, channels)
    if len(ds.images) == 0:
        raise DatasetError(f"--data {source}: holds no images")
    return ds
