"""The training loop around :class:`nanogan.GAN`: progress bar, samples, plots, checkpoints.

A checkpoint holds everything a run needs to continue bit for bit (G, D, both optimizers, the step,
the noise generator, the minibatch iterator, the fixed sample noise, the loss history) and the
architecture and optimizer configs, so loading it needs no code. It is written atomically (see
:mod:`nanogan.checkpoint`), and never over a good checkpoint with non-finite weights. On disk it
holds NumPy arrays whatever the array backend (:mod:`nanogan.backend`); loading it builds the GAN
on the active backend.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import optim
from .backend import to_numpy
from .checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .gan import GAN, NonFiniteError, infer_z_shape
from .layers.base import size_limit
from .layers.serialize import module_from_config, module_to_config
from .noise import SAMPLERS
from .stats import rename_history

HISTORY_KEYS = ("d_loss", "g_loss", "D_x", "D_G_z", "D_acc")

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
    if not (isinstance(cls, type) and issubclass(cls, optim.Optimizer)) or cls is optim.Optimizer:
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
        "normal_sampler": gan.normal_sampler,
        "g_opt": optimizer_config(gan.g_opt),
        "d_opt": optimizer_config(gan.d_opt),
    }


def gan_from_config(config: dict[str, Any]) -> GAN:
    """A freshly initialised :class:`GAN` with the architecture and optimizers of ``config``."""
    G = module_from_config(config["generator"], where="config.generator")
    D = module_from_config(config["discriminator"], where="config.discriminator")
    kind = config.get("type", "GAN")
    if kind not in GAN_TYPES:
        raise ValueError(f"unknown GAN type {kind!r} in checkpoint (known: {sorted(GAN_TYPES)})")
    module, _, name = GAN_TYPES[kind].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    kwargs = config.get("type_kwargs", {})
    gan = cls(G, D, loss=config["loss"], g_opt=optimizer_from_config(config["g_opt"], G),
              d_opt=optimizer_from_config(config["d_opt"], D), k=config["k"],
              clip=config["clip"], z_shape=tuple(config["z_shape"]), noise=config["noise"],
              **kwargs)
    # a config written before the Box-Muller sampler names none: its run drew rng.standard_normal
    gan.normal_sampler = config.get("normal_sampler", "numpy")
    return gan


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
        arrays["fixed_z"] = to_numpy(fixed_z)  # NumPy on disk, whatever the backend
    for k, v in (history or {}).items():
        arrays[f"history.{k}"] = np.asarray(v, dtype=np.int64 if k == "step" else np.float64)
    return Path(save_checkpoint(path, arrays, meta))


def load_training_checkpoint(path: str | os.PathLike,
                             loaded: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None
                             ) -> dict[str, Any]:
    """Load :func:`save_training_checkpoint`'s file (``loaded``: its ``load_checkpoint(path)``
    if already read).

    Returns a dict with ``gan`` (rebuilt from the stored config, weights and optimizer state
    loaded), ``rng`` (a Generator in the saved state), ``batches_state`` (for
    ``Minibatches.set_state``), ``fixed_z``, ``history``, ``extra`` and ``config``.
    """
    arrays, meta = loaded if loaded is not None else load_checkpoint(path)
    check_training_checkpoint(path, arrays, meta)
    # the file's own arrays bound what a sound architecture allocates (no 700 GiB surprises)
    with _checkpoint_error(path, "config"), size_limit(sum(a.size for a in arrays.values())):
        gan = gan_from_config(meta["config"])
    # what G reads per sample: the noise, or for a conditional GAN the noise and the label
    expected = tuple(getattr(gan, "generator_input_shape", gan.z_shape))
    try:
        inferred = infer_z_shape(gan.G)
    except ValueError:  # a first layer the noise shape cannot be read from: trust the config
        inferred = expected
    if tuple(inferred) != expected:
        raise CheckpointError(f"checkpoint {path}: config.z_shape {list(gan.z_shape)} (G input "
                              f"{list(expected)}) does not match the generator's input "
                              f"{list(inferred)}")
    with _checkpoint_error(path, "weights"):
        gan.load_state_dict({k: v for k, v in arrays.items()
                             if k.split(".", 1)[0] in ("G", "D", "g_opt", "d_opt", "gan")})
    rng = np.random.default_rng()
    with _checkpoint_error(path, "rng"):
        set_rng_state(rng, meta["rng"])
    with _checkpoint_error(path, "module_rngs"):
        set_module_rngs(gan, rng, meta.get("module_rngs", []))
    bstate = dict(meta.get("batches", {}))
    bstate.update({k[len("batches."):]: v for k, v in arrays.items() if k.startswith("batches.")})
    history = rename_history({k[len("history."):]: list(map(int if k == "history.step" else
                                                             float, v))
                              for k, v in arrays.items() if k.startswith("history.")})
    return {"gan": gan, "rng": rng, "batches_state": bstate or None,
            "fixed_z": arrays.get("fixed_z"), "history": history,
            "extra": meta.get("extra", {}), "config": meta["config"]}


@contextlib.contextmanager
def _checkpoint_error(path: str | os.PathLike, key: str) -> Iterator[None]:
    """Turn whatever rebuilding the training state from ``meta[key]`` raises into one
    :class:`CheckpointError` naming the file and the key."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            MemoryError, RecursionError, ZeroDivisionError) as e:
        why = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"checkpoint {path}: bad {key!r} ({why})") from None


def _bad(path: str | os.PathLike, key: str, expected: str, got: Any) -> CheckpointError:
    shown = repr(got)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointError(f"checkpoint {path}: {key} expected {expected}, got {shown}")


def check_training_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                              meta: dict[str, Any]) -> None:
    """Check the structure of a training checkpoint before anything is built from it.

    Raises :class:`CheckpointError` naming the first missing or mistyped key: the format tag;
    ``config`` and its ``generator``, ``discriminator`` (layer configs), ``loss``, ``k``,
    ``clip``, ``z_shape``, ``noise``, ``g_opt``, ``d_opt`` (and the optional
    ``normal_sampler``); ``rng``; the optional ``batches``,
    ``extra`` and ``module_rngs``; and the arrays: floating-point weights, optimizer state and
    ``fixed_z`` (integer or boolean weights are refused, not cast), an integer ``gan.steps``, 1-D
    real ``history.*``.
    """
    fmt = meta.get("format")
    if fmt != "nanogan-training-checkpoint-1":
        raise CheckpointError(f"checkpoint {path}: not a nanogan training checkpoint (format "
                              f"{fmt!r}, expected 'nanogan-training-checkpoint-1')")
    for key in ("config", "rng"):
        if key not in meta:
            raise CheckpointError(f"checkpoint {path}: metadata is missing the key {key!r}")
    config = meta["config"]
    if not isinstance(config, dict):
        raise _bad(path, "config", "a dict", config)
    for key in ("generator", "discriminator", "loss", "k", "clip", "z_shape", "noise", "g_opt",
                "d_opt"):
        if key not in config:
            raise CheckpointError(f"checkpoint {path}: config is missing the key {key!r}")
    for key in ("generator", "discriminator"):
        _check_layer_config(path, f"config.{key}", config[key], 0)
    if not isinstance(config["loss"], str):
        raise _bad(path, "config.loss", "a loss name", config["loss"])
    k = config["k"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10**6:
        raise _bad(path, "config.k", "an integer in [1, 1000000]", k)
    clip = config["clip"]
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)
                             or not 0 < clip < float("inf")):
        raise _bad(path, "config.clip", "null or a positive number", clip)
    z = config["z_shape"]
    total = sum(a.size for a in arrays.values())
    if (not isinstance(z, list) or not 1 <= len(z) <= 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= total
                       for s in z)
            or int(np.prod(z, dtype=np.float64)) > total):
        raise _bad(path, "config.z_shape", "a list of 1 to 8 positive sizes", z)
    if config["noise"] not in ("normal", "uniform"):
        raise _bad(path, "config.noise", "'normal' or 'uniform'", config["noise"])
    if config.get("normal_sampler", "numpy") not in SAMPLERS:
        raise _bad(path, "config.normal_sampler", " or ".join(repr(s) for s in SAMPLERS),
                   config["normal_sampler"])
    for key in ("g_opt", "d_opt"):
        opt = config[key]
        if not (isinstance(opt, dict) and isinstance(opt.get("type"), str)
                and isinstance(opt.get("kwargs"), dict)):
            raise _bad(path, f"config.{key}", "{'type': name, 'kwargs': {...}}", opt)
    if not isinstance(meta["rng"], dict):
        raise _bad(path, "rng", "a generator state dict", meta["rng"])
    for key, kind in (("batches", dict), ("extra", dict), ("module_rngs", list)):
        if key in meta and not isinstance(meta[key], kind):
            raise _bad(path, key, f"a {kind.__name__}", meta[key])
    if "gan.steps" not in arrays:
        raise CheckpointError(f"checkpoint {path}: arrays are missing the key 'gan.steps'")
    for key, a in arrays.items():
        head = key.split(".", 1)[0]
        if key == "gan.steps":
            if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
                raise _bad(path, "array 'gan.steps'", "a non-negative integer scalar",
                           f"{a.dtype} {a.shape}")
        elif key.startswith(("g_opt.state.", "d_opt.state.")) or head in ("G", "D") \
                or key == "fixed_z":
            if a.dtype.kind != "f" and not key.endswith("num_batches_tracked"):
                raise _bad(path, f"array {key!r}", "floating-point values (not cast)",
                           f"dtype {a.dtype}")
        elif head == "history":
            if a.ndim != 1 or a.dtype.kind not in "fiu":
                raise _bad(path, f"array {key!r}", "a 1-D array of numbers",
                           f"{a.dtype} {a.shape}")


def _check_layer_config(path: str | os.PathLike, where: str, cfg: Any, depth: int) -> None:
    if depth > 64:
        raise CheckpointError(f"checkpoint {path}: {where} is nested more than 64 levels deep")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
        raise _bad(path, where, "a layer config {'type': name, 'args': [...], 'kwargs': {...}}",
                   cfg)
    args, kwargs = cfg.get("args", []), cfg.get("kwargs", {})
    if not isinstance(args, list):
        raise _bad(path, f"{where}.args", "a list", args)
    if not isinstance(kwargs, dict):
        raise _bad(path, f"{where}.kwargs", "a dict", kwargs)
    for i, a in enumerate(args):
        if isinstance(a, dict) and "type" in a:
            _check_layer_config(path, f"{where}.args[{i}]", a, depth + 1)


# ---------------------------------------------------------------------------- the loop
def write_metrics_csv(history: dict[str, list[float]], path: str | os.PathLike) -> None:
    keys = ["step", *[k for k in history if k != "step"]]
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(keys)
    for row in zip(*(history[k] for k in keys)):
        w.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped :func:`train` between two steps, after it saved a checkpoint.

    Attributes: ``step`` (the last completed step) and ``checkpoint`` (its path, or None without
    an output folder).
    """

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        where = f"; checkpoint saved to {checkpoint}" if checkpoint is not None else ""
        super().__init__(f"interrupted at step {step}{where}")
        self.step, self.checkpoint = step, checkpoint


@contextlib.contextmanager
def sigint_deferred() -> Iterator[list[bool]]:
    """While active, the first Ctrl-C (SIGINT) only sets ``flag[0] = True``, so a training step
    is never cut in half (a checkpoint of a half-done step would not resume bit for bit); a
    second Ctrl-C interrupts at once, as usual. Outside the main thread it does nothing."""
    flag = [False]

    def handler(signum: int, frame: Any) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


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
    :class:`nanogan.gan.NonFiniteError` (the message names the last good checkpoint, which is left
    as it was). Ctrl-C stops it after the current step, writes the checkpoint and raises
    :class:`TrainingInterrupted` (a ``KeyboardInterrupt``).

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
            save_grid(to_numpy(gan.G(fixed_z, train=False)), outdir / "samples.png", nrow=nrow)

    saved: list[int] = []  # steps of the checkpoints written by this call

    def checkpoint() -> None:
        if outdir is None:
            return
        save_training_checkpoint(outdir / "checkpoint.npz", gan, rng, batches, fixed_z, history,
                                 extra)
        saved.append(gan.steps)
        write_metrics_csv(history, outdir / "metrics.csv")
        if history["step"]:
            save_loss_plot(history, outdir / "losses.png")

    bar = tqdm(total=steps, initial=gan.steps, disable=not progress, dynamic_ncols=True,
               desc="training")
    try:
        with sigint_deferred() as interrupted:
            while gan.steps < steps and not interrupted[0]:
                stats = gan.step(batches, rng)
                history["step"].append(gan.steps)
                for k in keys:
                    history[k].append(stats.get(k, float("nan")))
                bar.update(1)
                if gan.steps % 10 == 0 or gan.steps == steps:
                    bar.set_postfix(d_loss=f"{stats['d_loss']:.3f}",
                                    g_loss=f"{stats['g_loss']:.3f}",
                                    D_x=f"{stats['D_x']:.2f}", D_G_z=f"{stats['D_G_z']:.2f}")
                if sample_every and gan.steps % sample_every == 0:
                    snapshot_samples()
                if checkpoint_every and gan.steps % checkpoint_every == 0:
                    checkpoint()
            if interrupted[0]:
                checkpoint()
    except NonFiniteError as exc:
        if outdir is None:
            raise
        ckpt = outdir / "checkpoint.npz"
        last = (f"{ckpt} (step {saved[-1]})" if saved else
                f"{ckpt} (from before this run)" if ckpt.exists() else "none written yet")
        raise NonFiniteError(f"{exc} Last good checkpoint: {last}.", exc.step,
                             exc.quantity) from None
    finally:
        bar.close()
    if interrupted[0]:
        raise TrainingInterrupted(gan.steps, outdir / "checkpoint.npz" if outdir else None)
    snapshot_samples()
    checkpoint()
    return history


def load_any_generator(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The generator of a training checkpoint (its :class:`GAN`) or of a generator file
    (:mod:`nanogan.generator_file`), and the file's ``extra`` metadata; the file is read once."""
    from .generator_file import is_generator_file, load_generator

    loaded = load_checkpoint(path)
    if is_generator_file(loaded[1]):
        g = load_generator(path, loaded)
        return g, g.extra
    state = load_training_checkpoint(path, loaded)
    return state["gan"], state["extra"]


def load_generator_checkpoint(path: str | os.PathLike) -> Any:
    """The GAN of a training checkpoint, or the generator of a generator file
    (:mod:`nanogan.generator_file`; an object with ``G``, ``z_shape`` and ``sample_noise``),
    refusing one whose generator holds NaN or infinity (a diverged run): ``CheckpointError``
    naming the first such array."""
    gan, _ = load_any_generator(path)
    bad = [(name, what) for name, what in gan.nonfinite_arrays() if name.startswith("G.")]
    if bad:
        raise CheckpointError(f"{path}: the generator's {bad[0][0]} contains {bad[0][1]} (the run "
                              "diverged); refusing to sample from it. Use an earlier checkpoint")
    return gan
