"""Small helpers shared by the examples that run their own training loop (GMN, EBGAN, DANN):
atomic writes of ``.npy`` and ``.json`` outputs, and the checkpoint of a set of models and
optimizers (``nanogan.checkpoint`` underneath, so a crash mid-write never loses the last one)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nanogan.checkpoint import load_checkpoint, save_checkpoint


def save_npy_atomic(path: str | os.PathLike, a: np.ndarray) -> None:
    """``np.save`` to a temporary file in the same folder, fsync, rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, a)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``json.dump`` to a temporary file in the same folder, fsync, rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(path: str | os.PathLike, parts: dict[str, Any], history: dict[str, list],
               meta: dict[str, Any], batches: Any = None) -> None:
    """One checkpoint of several models/optimizers (``parts``: prefix -> object with
    ``state_dict``), the history lists and a minibatch iterator's state, written atomically.
    Refuses to write non-finite weights (the last good checkpoint stays)."""
    arrays: dict[str, np.ndarray] = {}
    for prefix, obj in parts.items():
        for k, v in obj.state_dict().items():
            v = np.asarray(v)
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise FloatingPointError(f"{prefix}.{k} is not finite; checkpoint not written")
            arrays[f"{prefix}.{k}"] = v
    arrays.update({f"history.{k}": np.asarray(v, dtype=np.float64) for k, v in history.items()})
    meta = dict(meta)
    if batches is not None:
        bstate = batches.state()
        meta["batches"] = {k: v for k, v in bstate.items() if not isinstance(v, np.ndarray)}
        arrays.update({f"batches.{k}": v for k, v in bstate.items() if isinstance(v, np.ndarray)})
    save_checkpoint(path, arrays, meta)


def load_state(path: str | os.PathLike, parts: dict[str, Any], history: dict[str, list],
               batches: Any = None) -> dict[str, Any]:
    """Restore :func:`save_state`'s checkpoint into ``parts``, ``history`` and ``batches``;
    return its metadata."""
    arrays, meta = load_checkpoint(path)
    for prefix, obj in parts.items():
        n = len(prefix) + 1
        obj.load_state_dict({k[n:]: v for k, v in arrays.items() if k.startswith(prefix + ".")})
    for k in history:
        history[k] = [float(v) for v in arrays.get(f"history.{k}", [])]
    if batches is not None:
        bstate = dict(meta["batches"])
        bstate.update({k[8:]: v for k, v in arrays.items() if k.startswith("batches.")})
        batches.set_state(bstate)
    return meta


def plot_curves(history: dict[str, list], x_key: str, keys: tuple[str, ...],
                path: str | os.PathLike, ylabel: str = "", smooth: int = 1,
                title: str = "") -> None:
    """Line plot of ``history[k]`` against ``history[x_key]`` (moving average over ``smooth``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = np.asarray(history[x_key])
    for k in keys:
        v = np.asarray(history[k], dtype=np.float64)
        if not len(v):
            continue
        w = max(1, min(smooth, len(v)))
        ax.plot(steps[w - 1:], np.convolve(v, np.ones(w) / w, mode="valid"), label=k)
    ax.set_xlabel(x_key)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
