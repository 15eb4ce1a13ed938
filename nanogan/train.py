"""The training loop around :class:`nanogan.GAN`: progress bar, samples, plots, checkpoints.

A checkpoint holds everything a run needs to continue bit for bit (G, D, both optimizers, the step,
the noise generator, the minibatch iterator, the fixed sample noise, the loss history) and the
architecture and optimizer configs, so loading it needs no code. It is written atomically (see
:mod:`nanogan.checkpoint`), and never over a good checkpoint with non-finite weights.
"""

from __future__ import annotations

import csv
import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import optim
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .gan import GAN
from .layers.serialize import module_from_config, module_to_config

HISTORY_KEYS = ("d_loss", "g_loss", "d_x", "d_g_z", "d_acc")

#: the GAN classes a checkpoint may name (its config's ``type``; ``type_kwargs`` are their own
#: constructor arguments)
GAN_TYPES = {
    "GAN": "nanogan.gan.GAN",
    "ConditionalGAN": "nanogan.conditional.ConditionalGAN",
    "PenalizedGAN": "nanogan.penalized.PenalizedGAN",
}


# ---------------------------------------------------------------------------- configs
def optimizer_config(opt: Any) -> dict[str, Any]:
    """``{"type": "Adam", "kwargs": {...}}``: the optimizer's constructor arguments (no model)."""
    return {"type": type(opt).__name__, "kwargs": opt.hyperparameters()}


def optimizer_from_config(config: dict[str, Any], model: Any) -> Any:
    cls = getattr(optim, str(config.get("type")), None)
    if cls is None:
        raise ValueError(f"unknown optimizer type {config.get('type')!r} in checkpoint")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
    return cls(model, **kwargs)


def gan_config(gan: GAN) -> dict[str, Any]:
    """JSON-safe description of the GAN's architecture, loss and optimizers (plus the
    class and its settings for a GAN subclass with a ``config()`` method)."""
    extra = gan.config() if hasattr(gan, "config") else {}
    return {
        **extra,
        "generator": module_to_config(gan.G),
        "discriminator": module_to_config(gan.D),
        "loss": gan.loss_name,
        "k": gan.k,
        "clip": gan.clip,
        "z_shape": list(gan.z_shape),
        "noise": gan.noise,
        "g_opt": optimizer_config(gan.g_opt),
        "d_opt": optimizer_config(gan.d_opt),
    }


def gan_from_config(config: dict[str, Any]) -> GAN:
    """A freshly initialised :class:`GAN` with the architecture and optimizers of ``config``."""
    G = module_from_config(config["generator"])
    D = module_from_config(config["discriminator"])
    kind = config.get("type", "GAN")
    if kind not in GAN_TYPES:
        raise ValueError(f"unknown GAN type {kind!r} in checkpoint (known: {sorted(GAN_TYPES)})")
    module, _, name = GAN_TYPES[kind].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    kwargs = config.get("type_kwargs", {})
    return cls(G, D, loss=config["loss"], g_opt=optimizer_from_config(config["g_opt"], G),
               d_opt=optimizer_from_config(config["d_opt"], D), k=config["k"],
               clip=config["clip"], z_shape=tuple(config["z_shape"]), noise=config["noise"],
               **kwargs)


# ---------------------------------------------------------------------------- checkpoints
def module_rngs(gan: GAN, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The random generators held by G's and D's layers (e.g. :class:`~nanogan.layers.Dropout`'s
    mask source), grouped by generator object, so a resumed run draws the same masks.

    Returns a JSON-safe list of ``{"modules": ["D.0", "D.2"], "state": ..., "shared": bool}``:
    ``modules`` names the layers holding one generator, ``shared`` says it is the training loop's
    own ``rng`` (the noise source; then the state is not stored twice).
    """
    groups: dict[int, dict[str, Any]] = {}
    for net_name, net in (("G", gan.G), ("D", gan.D)):
        for path, m in net.named_modules(f"{net_name}."):
            g = getattr(m, "rng", None)
            if isinstance(g, np.random.Generator):
                entry = groups.setdefault(id(g), {"modules": [], "generator": g})
                entry["modules"].append(path.rstrip("."))
    out = []
    for entry in groups.values():
        g = entry.pop("generator")
        entry["shared"] = g is rng
        entry["state"] = None if g is rng else rng_state(g)
        out.append(entry)
    return out


def set_module_rngs(gan: GAN, rng: np.random.Generator, saved: list[dict[str, Any]]) -> None:
    """Give G's and D's layers the generators :func:`module_rngs` described: one generator per
    group (``rng`` itself for a shared group), in the saved state."""
    modules = {path.rstrip("."): m for net_name, net in (("G", gan.G), ("D", gan.D))
               for path, m in net.named_modules(f"{net_name}.")}
    for entry in saved:
        if entry.get("shared"):
            g = rng
        else:
            g = np.random.default_rng()
            set_rng_state(g, entry["state"])
        for path in entry["modules"]:
            if path not in modules or not hasattr(modules[path], "rng"):
                raise ValueError(f"checkpoint: generator state for layer {path!r}, which the "
                                 f"stored architecture has no random layer at")
            modules[path].rng = g


def save_training_checkpoint(path: str | os.PathLike, gan: GAN, rng: np.random.Generator,
                             batches: Any = None, fixed_z: np.ndarray | None = None,
                             history: dict[str, list[float]] | None = None,
                             extra: dict[str, Any] | None = None) -> Path:
    """Write a complete training state to ``path`` atomically.

    Refuses (``NonFiniteError``) to write weights containing NaN or infinity, so the last good
    checkpoint survives a diverged run. The state of every random generator held by a layer
    (dropout masks) is stored too (:func:`module_rngs`), so a resumed run continues bit for bit.
    """
    gan.check_finite(params=True)
    arrays = dict(gan.state_dict())
    meta: dict[str, Any] = {"format": "nanogan-training-checkpoint-1", "config": gan_config(gan),
                            "rng": rng_state(rng), "module_rngs": module_rngs(gan, rng),
                            "extra": extra or {}}
    if batches is not None:
        bstate = batches.state()
        meta["batches"] = {k: v for k, v in bstate.items() if not isinstance(v, np.ndarray)}
        arrays.update({f"batches.{k}": v for k, v in bstate.items() if isinstance(v, np.ndarray)})
    if fixed_z is not None:
        arrays["fixed_z"] = fixed_z
    for k, v in (history or {}).items():
        arrays[f"history.{k}"] = np.asarray(v, dtype=np.int64 if k == "step" else np.float64)
    return Path(save_checkpoint(path, arrays, meta))


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load :func:`save_training_checkpoint`'s file.

    Returns a dict with ``gan`` (rebuilt from the stored config, weights and optimizer state
    loaded), ``rng`` (a Generator in the saved state), ``batches_state`` (for
    ``Minibatches.set_state``), ``fixed_z``, ``history``, ``extra`` and ``config``.
    """
    arrays, meta = load_checkpoint(path)
    if meta.get("format") != "nanogan-training-checkpoint-1":
        raise ValueError(f"{path}: not a nanogan training checkpoint (format "
                         f"{meta.get('format')!r})")
    gan = gan_from_config(meta["config"])
    gan.load_state_dict({k: v for k, v in arrays.items()
                         if k.split(".", 1)[0] in ("G", "D", "g_opt", "d_opt", "gan")})
    rng = np.random.default_rng()
    set_rng_state(rng, meta["rng"])
    set_module_rngs(gan, rng, meta.get("module_rngs", []))
    bstate = dict(meta.get("batches", {}))
    bstate.update({k[len("batches."):]: v for k, v in arrays.items() if k.startswith("batches.")})
    history = {k[len("history."):]: list(map(int if k == "history.step" else float, v))
               for k, v in arrays.items() if k.startswith("history.")}
    return {"gan": gan, "rng": rng, "batches_state": bstate or None,
            "fixed_z": arrays.get("fixed_z"), "history": history,
            "extra": meta.get("extra", {}), "config": meta["config"]}


# ---------------------------------------------------------------------------- the loop
def write_metrics_csv(history: dict[str, list[float]], path: str | os.PathLike) -> None:
    keys = ["step", *[k for k in history if k != "step"]]
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for row in zip(*(history[k] for k in keys)):
            w.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])
    os.replace(tmp, path)


def train(gan: GAN, batches: Any, steps: int, rng: np.random.Generator, *,
          out: str | os.PathLike | None = None, fixed_z: np.ndarray | None = None,
          history: dict[str, list[float]] | None = None, sample_every: int = 500,
          checkpoint_every: int = 1000, progress: bool = True,
          extra: dict[str, Any] | None = None, nrow: int = 8) -> dict[str, list[float]]:
    """Run Algorithm 1 until ``gan.steps == steps``.

    Every ``sample_every`` steps ``out/samples.png`` (a grid from ``fixed_z``, ``nrow`` images
    per row) is refreshed;
    every ``checkpoint_every`` steps and at the end ``out/checkpoint.npz``, ``out/metrics.csv`` and
    ``out/losses.png`` are written. A NaN or infinity stops training with
    :class:`nanogan.gan.NonFiniteError`; the last good checkpoint is left as it was.

    Returns the history: ``step`` and each of ``HISTORY_KEYS`` (and of the GAN's own
    ``history_keys``, if it has any) per step.
    """
    from tqdm.auto import tqdm

    from .plot import save_grid, save_loss_plot

    history = history if history is not None else {}
    keys = (*HISTORY_KEYS, *getattr(gan, "history_keys", ()))  # a GAN subclass's own entries
    for k in ("step", *keys):
        history.setdefault(k, [])
    outdir = Path(out) if out is not None else None
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
    if fixed_z is None:
        fixed_z = gan.sample_noise(64, np.random.default_rng(0))

    def snapshot_samples() -> None:
        if outdir is not None:
            save_grid(gan.G(fixed_z, train=False), outdir / "samples.png", nrow=nrow)

    def checkpoint() -> None:
        if outdir is None:
            return
        save_training_checkpoint(outdir / "checkpoint.npz", gan, rng, batches, fixed_z, history,
                                 extra)
        write_metrics_csv(history, outdir / "metrics.csv")
        if history["step"]:
            save_loss_plot(history, outdir / "losses.png")

    bar = tqdm(total=steps, initial=gan.steps, disable=not progress, dynamic_ncols=True,
               desc="training")
    try:
        while gan.steps < steps:
            stats = gan.step(batches, rng)
            history["step"].append(gan.steps)
            for k in keys:
                history[k].append(stats.get(k, float("nan")))
            bar.update(1)
            if gan.steps % 10 == 0 or gan.steps == steps:
                bar.set_postfix(d_loss=f"{stats['d_loss']:.3f}", g_loss=f"{stats['g_loss']:.3f}",
                                D_x=f"{stats['d_x']:.2f}", D_G_z=f"{stats['d_g_z']:.2f}")
            if sample_every and gan.steps % sample_every == 0:
                snapshot_samples()
            if checkpoint_every and gan.steps % checkpoint_every == 0:
                checkpoint()
    finally:
        bar.close()
    snapshot_samples()
    checkpoint()
    return history
