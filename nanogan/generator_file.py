"""A generator on its own: the file to publish a trained G in (``nanogan-generator-1``).

A training checkpoint holds everything a run needs to continue (both networks, both optimizers'
state, the random states): for a 2.5M-parameter generator with momentum SGD, three times the
generator's size. To share a result only G is needed: its architecture (as a config, so no code
is needed to rebuild it), its weights, and how to draw its noise::

    save_generator("G.npz", gan, extra={"parzen": 225.0})
    g = load_generator("G.npz")          # g.G, g.sample_noise(n, rng), g.extra
    x = g.G(g.sample_noise(64, np.random.default_rng(0)), train=False)

``python -m nanogan sample`` and ``python -m nanogan evaluate`` take such a file wherever they take
a training checkpoint (:func:`nanogan.train.load_generator_checkpoint`). Written atomically (temp
file, fsync, ``os.replace``), like every nanogan checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .gan import GAN, infer_z_shape
from .layers.base import Module, size_limit
from .layers.serialize import module_from_config, module_to_config
from .noise import SAMPLERS

__all__ = ["FORMAT", "GeneratorFile", "load_generator", "save_generator"]

FORMAT = "nanogan-generator-1"


@dataclass
class GeneratorFile:
    """A loaded generator: the network ``G``, its noise (``z_shape``, ``noise``: "normal" or
    "uniform", ``normal_sampler`` as :attr:`nanogan.GAN.normal_sampler`: "numpy" for a file
    that names none, written before the Box-Muller sampler) and the ``extra`` metadata it was
    saved with."""

    G: Module
    z_shape: tuple[int, ...]
    noise: str = "normal"
    extra: dict[str, Any] = field(default_factory=dict)
    normal_sampler: str = "numpy"

    @property
    def z_dtype(self) -> np.dtype:
        return next(iter(self.G.params.values())).dtype if self.G.params else np.dtype(np.float32)

    def sample_noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``z ~ p_z``, shape ``(n, *z_shape)``, drawn exactly as the training run's
        :meth:`nanogan.GAN.sample_noise` draws it."""
        return GAN.sample_noise(self, n, rng)  # type: ignore[arg-type]

    def nonfinite_arrays(self) -> list[tuple[str, str]]:
        """``("G.<name>", "NaN" | "infinity")`` of every parameter or buffer that is not all
        finite."""
        bad = []
        for name, a in {**self.G.params, **self.G.buffers}.items():
            a = to_numpy(a)  # checked on the host, whatever the backend
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad.append((f"G.{name}", "NaN" if np.isnan(a).any() else "infinity"))
        return bad


def save_generator(path: str | os.PathLike, gan: Any, extra: dict[str, Any] | None = None,
                   dtype: Any = np.float32) -> Path:
    """Write ``gan.G`` (any object with ``G``, ``z_shape`` and ``noise``, e.g. a :class:`GAN`)
    to ``path``: its config, its weights as ``dtype`` (float32 by default) and ``extra``.

    The weights must be finite (``ValueError`` otherwise, nothing written)."""
    state = {k: np.asarray(v) for k, v in gan.G.state_dict().items()}
    for k, v in state.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise ValueError(f"save_generator: G.{k} is not finite; refusing to write {path}")
    arrays = {f"G.{k}": (v.astype(dtype) if v.dtype.kind == "f" else v)
              for k, v in state.items()}
    meta = {"format": FORMAT, "generator": module_to_config(gan.G),
            "z_shape": [int(s) for s in gan.z_shape], "noise": str(gan.noise),
            "normal_sampler": str(getattr(gan, "normal_sampler", "numpy")),
            "dtype": np.dtype(dtype).name, "extra": extra or {}}
    return Path(save_checkpoint(path, arrays, meta))


def is_generator_file(meta: dict[str, Any]) -> bool:
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def load_generator(path: str | os.PathLike,
                   loaded: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None
                   ) -> GeneratorFile:
    """Load :func:`save_generator`'s file (``loaded``: its ``load_checkpoint(path)`` if already
    read); ``CheckpointError`` (one line naming the file) for another kind of file, a config
    that does not rebuild or weights that do not fit it."""
    arrays, meta = loaded if loaded is not None else load_checkpoint(path)
    if not is_generator_file(meta):
        raise CheckpointError(f"{path}: not a generator file (format {meta.get('format')!r}, "
                              f"expected {FORMAT!r})")
    noise = meta.get("noise", "normal")
    if noise not in ("normal", "uniform"):
        raise CheckpointError(f"{path}: noise {noise!r} is not 'normal' or 'uniform'")
    sampler = meta.get("normal_sampler", "numpy")
    if sampler not in SAMPLERS:
        raise CheckpointError(f"{path}: normal_sampler {sampler!r} is not one of "
                              f"{list(SAMPLERS)}")
    try:
        z_shape = tuple(int(s) for s in meta["z_shape"])
        with size_limit(sum(a.size for a in arrays.values())):
            G = module_from_config(meta["generator"], where="generator")
        G.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith("G.")})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the generator does not load: {exc}") from None
    try:
        inferred = tuple(infer_z_shape(G))
    except ValueError:
        inferred = z_shape
    if inferred != z_shape:
        raise CheckpointError(f"{path}: z_shape {list(z_shape)} does not match the generator's "
                              f"input {list(inferred)}")
    return GeneratorFile(G=G, z_shape=z_shape, noise=noise, extra=dict(meta.get("extra", {})),
                         normal_sampler=sampler)
