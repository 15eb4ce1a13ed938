"""Atomic training checkpoints: one ``.npz`` of arrays plus JSON metadata.

A checkpoint is written to a temporary file in the target's folder, flushed to disk, then renamed
over the target (``os.replace`` is atomic), so a crash or an error midway leaves either the old
checkpoint or the new one, never a mix. Metadata (model config, step, generator states, loss
name...) is stored as UTF-8 JSON in a ``uint8`` entry ``"__meta__"``, so the file loads with
``np.load(path, allow_pickle=False)``.

Typical use::

    arrays = {**flatten_state("G", G.state_dict()), **flatten_state("D", D.state_dict())}
    save_checkpoint("runs/mlp/ckpt.npz", arrays, {"step": step, "rng": rng_state(rng)})
    ...
    arrays, meta = load_checkpoint("runs/mlp/ckpt.npz")
    G.load_state_dict(unflatten_state("G", arrays))
    set_rng_state(rng, meta["rng"])
"""

from __future__ import annotations

import json
import os
import re
import secrets
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .backend import to_numpy

__all__ = [
    "META_KEY", "CheckpointError", "atomic_write", "clean_stale_temps", "flatten_state",
    "json_safe", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state",
    "unflatten_state",
]

#: The entry of the ``.npz`` holding the JSON metadata.
META_KEY = "__meta__"
# Names ``np.savez`` takes as its own keyword arguments, so they cannot name an array.
_RESERVED = (META_KEY, "file", "allow_pickle")


class CheckpointError(ValueError):
    """A checkpoint file exists but is truncated, corrupt or not a nanogan checkpoint."""


# ---------------------------------------------------------------------------------- JSON
def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` with NumPy scalars and arrays turned into Python numbers and lists.

    Parameters
    ----------
    obj : nested dicts / lists / tuples of numbers, strings, None, NumPy scalars and arrays

    Returns
    -------
    the same structure made of dict, list, int, float, bool, str and None
    """
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _encode_meta(meta: Mapping[str, Any]) -> np.ndarray:
    if not isinstance(meta, Mapping):
        raise TypeError(f"save_checkpoint: meta must be a dict, got {type(meta).__name__}")

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"save_checkpoint: meta holds a {type(o).__name__}, which JSON cannot "
                        "store; put arrays in 'arrays' and keep meta to numbers, strings, "
                        "lists and dicts")

    text = json.dumps(dict(meta), default=default)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


# ---------------------------------------------------------------------------------- save / load
def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable, where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path: Path) -> int:
    """Permissions for the new file: the old file's, else the usual umask default (0o666 & ~umask,
    as ``open`` gives; not the 0o600 of ``tempfile.mkstemp``)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


#: Temporary files of :func:`atomic_write`: ``.<target name>.nanogan-<pid>-<random>.tmp``.
_TEMP_RE = re.compile(r"^\..+\.nanogan-(\d+)-[0-9a-f]+\.tmp$")


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.nanogan-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: leave its files alone
    return True


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that a killed writer (``kill -9``, power loss) left in
    ``folder``.

    Only nanogan's own temp-name pattern (``.<name>.nanogan-<pid>-<hex>.tmp``) is touched, and
    only when process ``<pid>`` no longer exists, so a run writing in the same folder at the same
    time keeps its files. Returns the removed paths.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temporary file in the target's folder, which
    is flushed, fsync'ed, given the usual permissions and ``os.replace``-d onto ``path``.

    On any error (or interruption) the temporary file is removed and an existing file at ``path``
    is left untouched; stale temporary files of killed writers in that folder are removed first
    (:func:`clean_stale_temps`). The folder is created if needed.

    Parameters
    ----------
    path : the target file
    write : called with the open binary file object

    Returns
    -------
    path : Path of the written file
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(folder)
    mode = _file_mode(path)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    return path


def save_checkpoint(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                    meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and ``meta`` to ONE ``.npz`` file, atomically.

    Parameters
    ----------
    path : target file (written exactly there; its folder is created if needed)
    arrays : dict name -> array of any shape and a non-object dtype (e.g. from
        :func:`flatten_state`); names must not be ``"__meta__"``, ``"file"`` or ``"allow_pickle"``
    meta : JSON-serialisable dict (NumPy scalars are converted)

    Returns
    -------
    path : Path of the written checkpoint

    Raises
    ------
    TypeError : meta is not JSON-serialisable
    ValueError : a bad array name or an object array (which would need pickle)

    Notes
    -----
    The data goes to a temporary file in the same folder, is flushed and fsync'ed, then
    ``os.replace``-d onto ``path`` and the folder fsync'ed. On any error (or interruption) the
    temporary file is removed and an existing checkpoint at ``path`` is left untouched.
    """
    path = Path(path)
    entries: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or name in _RESERVED or not name:
            raise ValueError(f"save_checkpoint: array name {name!r} is not allowed (names are "
                             f"non-empty strings other than {', '.join(map(repr, _RESERVED))})")
        a = to_numpy(value)  # NumPy on disk, whatever the array backend
        if a.dtype.hasobject:
            raise ValueError(f"save_checkpoint: array {name!r} has dtype {a.dtype}, which needs "
                             "pickle; store numbers (or put the value in meta)")
        entries[name] = a
    entries[META_KEY] = _encode_meta(meta)

    return atomic_write(path, lambda f: np.savez(f, **entries))


def _check_entry_sizes(path: Path, corrupt: Callable[[str], CheckpointError]) -> None:
    """Read every ``.npy`` header of the archive and refuse an entry whose declared shape needs
    more bytes than the entry holds (a corrupt header would otherwise make ``np.load`` allocate
    the declared size, e.g. hundreds of GiB, before finding the data missing)."""
    from numpy.lib import format as npformat

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            with zf.open(info) as f:
                try:
                    major, _ = npformat.read_magic(f)
                    read = (npformat.read_array_header_1_0 if major == 1
                            else npformat.read_array_header_2_0)
                    shape, _, dtype = read(f)
                except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
                    raise corrupt(f"entry {name!r}: bad .npy header ({e})") from e
            need = dtype.itemsize
            for s in shape:
                need *= int(s)
            if need > info.file_size:
                raise corrupt(f"entry {name!r} declares {dtype} {tuple(shape)} ({need:,} bytes) "
                              f"but holds {info.file_size:,} bytes")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` (``allow_pickle=False``).

    Parameters
    ----------
    path : the ``.npz`` file

    Returns
    -------
    arrays : dict name -> array, in the order saved (``"__meta__"`` removed)
    meta : dict, the JSON metadata

    Raises
    ------
    FileNotFoundError : no file at ``path``
    CheckpointError (a ValueError) : the file is truncated, corrupt or not a nanogan checkpoint
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found" +
                                (" (it is a folder)" if path.is_dir() else ""))

    def corrupt(why: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({why}), so it cannot be loaded. "
            "Checkpoints are written atomically, so a previous checkpoint, if any, is untouched: "
            "resume from it, or start afresh.")

    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                head = f.read(6)
            raise corrupt("a single .npy array, not an .npz archive" if head == b"\x93NUMPY"
                          else "not an .npz (zip) archive" +
                          (": the file is empty" if not head else ""))
        _check_entry_sizes(path, corrupt)
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise corrupt("a single .npy array, not an .npz archive")
        with npz:
            arrays = {k: npz[k] for k in npz.files}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError, zlib.error,
            NotImplementedError, MemoryError, OverflowError, SyntaxError, TypeError) as e:
        raise corrupt(f"{type(e).__name__}: {e}") from e
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise corrupt(f"no {META_KEY!r} entry: not a nanogan checkpoint")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise corrupt(f"{META_KEY!r} is {raw.dtype} {raw.shape}, expected 1-D uint8")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, nesting
        raise corrupt(f"bad metadata: {type(e).__name__}: {e}") from e
    if not isinstance(meta, dict):
        raise corrupt(f"metadata is a {type(meta).__name__}, expected a JSON object")
    return arrays, meta


# ---------------------------------------------------------------------------------- state dicts
def flatten_state(prefix: str, d: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Prefix the keys of a state dict: ``{"0.weight": w}`` -> ``{"G.0.weight": w}``.

    Parameters
    ----------
    prefix : non-empty name without dots (``"G"``, ``"D"``, ``"g_opt"``)
    d : dict name -> array or number; nested dicts are flattened with dots
        (``{"state": {"0": {"exp_avg": m}}}`` -> ``"g_opt.state.0.exp_avg"``)

    Returns
    -------
    arrays : dict ``prefix.name`` -> ndarray (numbers become 0-d arrays); arrays are not copied
    """
    if not isinstance(prefix, str) or not prefix or "." in prefix:
        raise ValueError(f"flatten_state: prefix must be a non-empty name without dots, "
                         f"got {prefix!r}")
    out: dict[str, np.ndarray] = {}

    def visit(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(f"{key}.{k}", v)
            return
        if key in out:
            raise ValueError(f"flatten_state: key {key!r} appears twice")
        a = to_numpy(value)
        if a.dtype.hasobject:
            raise ValueError(f"flatten_state: entry {key!r} is not numeric "
                             f"({type(value).__name__}); keep such values in the metadata")
        out[key] = a

    for k, v in d.items():
        visit(f"{prefix}.{k}", v)
    return out


def unflatten_state(prefix: str, arrays: Mapping[str, np.ndarray], *,
                    nested: bool = False) -> dict[str, Any]:
    """The entries of ``arrays`` under ``prefix``, with ``"prefix."`` removed from their keys.

    Parameters
    ----------
    prefix : as given to :func:`flatten_state`
    arrays : dict ``prefix.name`` -> ndarray (e.g. from :func:`load_checkpoint`)
    nested : False (default) -> flat keys (``"0.weight"``, what ``load_state_dict`` takes);
        True -> the dotted keys split into nested dicts (``{"0": {"weight": w}}``)

    Returns
    -------
    state : dict, in the order of ``arrays``; numbers come back as 0-d arrays
    """
    head = prefix + "."
    flat = {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)}
    if not nested:
        return flat
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"unflatten_state: {head}{key} clashes with an array entry")
        if leaf in node:
            raise ValueError(f"unflatten_state: {head}{key} clashes with a nested entry")
        node[leaf] = value
    return out


# ---------------------------------------------------------------------------------- generators
def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON-safe state of a NumPy Generator's bit generator (PCG64, MT19937, Philox, SFC64...).

    Parameters
    ----------
    rng : numpy Generator

    Returns
    -------
    state : dict of str, int and lists (``rng.bit_generator.state`` with arrays as lists)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng_state: expected a numpy Generator, got {type(rng).__name__}")
    return json_safe(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore a state from :func:`rng_state` into ``rng`` (in place).

    Raises
    ------
    ValueError : the state is of another bit generator type, or malformed
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"set_rng_state: expected a numpy Generator, got {type(rng).__name__}")
    kind = type(rng.bit_generator).__name__
    saved = state.get("bit_generator") if isinstance(state, Mapping) else None
    if saved != kind:
        raise ValueError(f"set_rng_state: the state is of bit generator {saved!r}, this "
                         f"Generator uses {kind!r}")
    try:
        rng.bit_generator.state = dict(state)
    except (TypeError, KeyError) as e:
        raise ValueError(f"set_rng_state: malformed {kind} state ({type(e).__name__}: {e})") \
            from e
