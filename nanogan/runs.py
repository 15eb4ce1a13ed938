"""Run folders: start, stop (Ctrl-C) and resume a training run on any dataset, bit for bit.

A run folder holds::

    config.toml                every setting of the run (pass it back with --config)
    metrics.csv                one row per step: losses, scores, and the best-checkpoint metric
    checkpoints/step-NNNNNNN.npz   the last ``keep`` checkpoints (complete training states)
    checkpoints/best.npz       the checkpoint with the best ``best_metric`` so far
    samples.png                the latest grid of samples from fixed noise
    samples/step-NNNNNNN.png   the grid at every ``sample_every`` steps
    progress.gif               those grids as an animation (needs Pillow)
    losses.png                 the loss curves

:func:`start_run` and :func:`resume_run` are what ``nanogan train`` and ``nanogan resume`` call.
Every file is written atomically (a temporary file in the same folder, flushed, fsync'ed,
renamed), so an interruption at any moment, even SIGKILL, leaves the previous version of each
file intact. Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a checkpoint and
returns 130 (143 for SIGTERM); a second Ctrl-C stops at once (the last checkpoint is intact).

A checkpoint also records the model, its settings and a fingerprint of the data
(:meth:`nanogan.datasets.Dataset.fingerprint`); resuming from a checkpoint of another model or
other data is refused with a message saying so.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import runconfig
from .backend import to_numpy
from .checkpoint import CheckpointError, _file_mode, _fsync_dir
from .datasets import Dataset, DatasetError, load_dataset
from .gan import GAN, NonFiniteError
from .recipes import Recipe, get_recipe
from .stats import RENAMED
from .train import load_training_checkpoint, save_training_checkpoint

__all__ = ["RunError", "checkpoints", "latest_checkpoint", "resume_run", "start_run",
           "train_in_folder", "write_text_atomic"]

BASE_KEYS = ("d_loss", "g_loss", "d_x", "d_g_z", "d_acc")
_STEP_FILE = re.compile(r"^step-(\d+)\.npz$")
_MAX_GIF_FRAMES = 100
_GIF_SIDE = 480


class RunError(ValueError):
    """A run cannot start or resume; the message says what is wrong and what to do."""


# ---------------------------------------------------------------------------------- files
def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (fsync, rename)."""
    _write_atomic(Path(path), text.encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp's 0600 -> the usual umask permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """The step checkpoints of a run folder, ``[(step, path)]`` by step."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest step checkpoint of a run folder, or None."""
    found = checkpoints(run_dir)
    return found[-1][1] if found else None


def _metrics_csv(history: dict[str, list[float]]) -> str:
    keys = ["step", *[k for k in history if k != "step"]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for row in zip(*(history[k] for k in keys)):
        w.writerow([int(row[0]), *("" if v != v else f"{v:.6g}" for v in row[1:])])
    return buf.getvalue()


def _save_gif(frames: list[Path], path: Path) -> bool:
    """An animated GIF of the PNG ``frames`` (at most 100, evenly spaced, at most 480 pixels
    wide); False without Pillow."""
    try:
        from PIL import Image
    except ImportError:
        return False
    if len(frames) > _MAX_GIF_FRAMES:
        idx = np.linspace(0, len(frames) - 1, _MAX_GIF_FRAMES).round().astype(int)
        frames = [frames[i] for i in idx]
    images = []
    for p in frames:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if max(im.size) > _GIF_SIDE:  # keep the animation small
                scale = _GIF_SIDE / max(im.size)
                im = im.resize((round(im.width * scale), round(im.height * scale)),
                               Image.LANCZOS)
            images.append(im.convert("P", palette=Image.ADAPTIVE))
    buf = io.BytesIO()
    durations = [200] * (len(images) - 1) + [1500]
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=0)
    _write_atomic(path, buf.getvalue())
    return True


# ---------------------------------------------------------------------------------- metric
class _Evaluator:
    """Pixel-space MMD^2 of ``n`` samples (fixed noise) against ``n`` fixed training images."""

    def __init__(self, recipe: Recipe, gan: GAN, x: np.ndarray, n: int, seed: int) -> None:
        from .metrics.pixel import reference_bandwidth

        pick = np.random.default_rng(seed + 3).permutation(len(x))[:n]
        self.real = self._to_unit(recipe, x[pick]).reshape(len(pick), -1).astype(np.float64)
        self.sigma = reference_bandwidth(self.real)
        self.z = gan.sample_noise(n, np.random.default_rng(seed + 4))  # labels too, for cgan
        self.recipe = recipe

    @staticmethod
    def _to_unit(recipe: Recipe, x: np.ndarray) -> np.ndarray:
        return x * 2.0 - 1.0 if recipe.pixel_range == (0.0, 1.0) else x

    def __call__(self, gan: GAN) -> float:
        from .metrics.mmd import mmd2_unbiased

        fake = np.concatenate([to_numpy(gan.G(self.z[i:i + 256], train=False))
                               for i in range(0, len(self.z), 256)])
        fake = self._to_unit(self.recipe, fake).reshape(len(fake), -1)
        return mmd2_unbiased(fake, self.real, "rbf", self.sigma)


# ---------------------------------------------------------------------------------- the loop
class _Stop:
    """SIGINT/SIGTERM -> a flag checked between steps; a second Ctrl-C raises at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def train_in_folder(run_dir: str | os.PathLike, recipe: Recipe, hp: dict[str, Any], gan: GAN,
                    batches: Any, rng: np.random.Generator, steps: int, *,
                    fixed_z: np.ndarray, nrow: int = 8,
                    history: dict[str, list[float]] | None = None,
                    evaluate: Callable[[GAN], float] | None = None, metric: str = "mmd",
                    sample_every: int = 500, checkpoint_every: int = 1000, keep: int = 3,
                    progress: bool = True, extra: dict[str, Any] | None = None,
                    log: Callable[[str], None] = print) -> int:
    """Train ``gan`` with ``recipe.step`` until ``gan.steps == steps``, keeping the run folder
    (see the module docstring) up to date.

    Returns 0 when done, 130 (SIGINT) or 143 (SIGTERM) when stopped (a checkpoint of the last
    finished step is written first), 1 when a loss or weight became NaN or infinite (the last
    checkpoint is left as it was).
    """
    from tqdm.auto import tqdm

    from .plot import save_grid, save_loss_plot, save_wasserstein_plot

    run = Path(run_dir)
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "samples").mkdir(exist_ok=True)
    history = history if history is not None else {}
    history.setdefault("step", [])
    lo, hi = recipe.pixel_range

    def grid() -> None:
        x = to_numpy(gan.G(fixed_z, train=False))  # sample grids are drawn on the host
        if (lo, hi) != (-1.0, 1.0):
            x = (x - lo) * (2.0 / (hi - lo)) - 1.0
        path = run / "samples" / f"step-{gan.steps:07d}.png"
        save_grid(x, path, nrow=nrow)
        save_grid(x, run / "samples.png", nrow=nrow)
        frames = sorted((run / "samples").glob("step-*.png"))
        _save_gif(frames, run / "progress.gif")

    def checkpoint() -> Path:
        if evaluate is not None and metric != "none":
            value = float(evaluate(gan))
            if history.get(metric) and history["step"][-1] == gan.steps:
                history[metric][-1] = value
        path = run / "checkpoints" / f"step-{gan.steps:07d}.npz"
        meta = dict(extra or {})
        save_training_checkpoint(path, gan, rng, batches, fixed_z, history, meta)
        if evaluate is not None and metric != "none" and history.get(metric):
            vals = np.asarray(history[metric], dtype=np.float64)
            if np.isfinite(vals).any() and np.nanargmin(vals) == len(vals) - 1:
                save_training_checkpoint(run / "checkpoints" / "best.npz", gan, rng, batches,
                                         fixed_z, history, {**meta, "best": {
                                             "metric": metric, "value": float(vals[-1]),
                                             "step": gan.steps}})
        for _, old in checkpoints(run)[:-max(keep, 1)]:
            old.unlink()
        write_text_atomic(run / "metrics.csv", _metrics_csv(history))
        if history["step"]:
            save_loss_plot(history, run / "losses.png")
            if hp["loss"] == "wasserstein":
                save_wasserstein_plot(history, run / "wasserstein.png")
        return path

    status = 0
    bar = tqdm(total=steps, initial=gan.steps, disable=not progress, dynamic_ncols=True,
               desc=recipe.name, unit="step", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        with _Stop() as stop:
            while gan.steps < steps and stop.signum is None:
                stats = recipe.step(gan, batches, rng, hp)
                history["step"].append(gan.steps)
                for key, value in stats.items():
                    k = RENAMED.get(key, key)  # one name per statistic (see nanogan.stats)
                    if k == "D_G_z_after":
                        continue
                    if k not in history:  # a new column: earlier steps had no value
                        history[k] = [float("nan")] * (len(history["step"]) - 1)
                    history[k].append(float(value))
                if evaluate is not None and metric != "none":
                    history.setdefault(metric, [float("nan")] * (len(history["step"]) - 1))
                    history[metric].append(float("nan"))
                for k in history:
                    if len(history[k]) < len(history["step"]):
                        history[k].append(float("nan"))
                bar.update(1)
                if gan.steps % 10 == 0 or gan.steps == steps:
                    bar.set_postfix(d_loss=f"{stats['d_loss']:.3f}",
                                    g_loss=f"{stats['g_loss']:.3f}")
                if sample_every and gan.steps % sample_every == 0:
                    grid()
                if checkpoint_every and gan.steps % checkpoint_every == 0 and gan.steps < steps:
                    checkpoint()
            bar.close()
            if stop.signum is not None:
                status = 130 if stop.signum == signal.SIGINT else 143
                name = "Ctrl-C" if stop.signum == signal.SIGINT else "SIGTERM"
                path = checkpoint()
                grid()
                log(f"stopped by {name} at step {gan.steps}: wrote {path}; continue with "
                    f"'nanogan resume {run}'")
                return status
            if not (sample_every and gan.steps % sample_every == 0):
                grid()
            path = checkpoint()
    except NonFiniteError as exc:
        bar.close()
        log(f"error: {exc} Resume from {latest_checkpoint(run) or 'the start'} with a lower "
            "--lr, or change the model.")
        return 1
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    log(f"done: step {gan.steps} ({dt:.0f} s); wrote {path}, {run / 'samples.png'}, "
        f"{run / 'progress.gif'}, {run / 'losses.png'}, {run / 'metrics.csv'}")
    return status


# ---------------------------------------------------------------------------------- runs
def _next_free(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


def _dataset(cfg: dict[str, Any]) -> Dataset:
    return load_dataset(cfg["data"], cfg["image_size"] or None, cfg["channels"] or None,
                        labels=cfg["labels"] or None, max_images=cfg["max_images"] or None)


def _validate(cfg: dict[str, Any]) -> None:
    for key in ("steps", "batch_size", "eval_samples"):
        if cfg[key] < 1:
            raise RunError(f"--{key.replace('_', '-')} must be >= 1, got {cfg[key]}")
    for key in ("sample_every", "checkpoint_every", "max_images", "image_size", "channels"):
        if cfg[key] < 0:
            raise RunError(f"--{key.replace('_', '-')} must be >= 0, got {cfg[key]}")
    if cfg["keep"] < 1:
        raise RunError(f"--keep must be >= 1, got {cfg['keep']}")
    if cfg["d_norm"] not in (None, "batch", "layer", "none"):
        raise RunError(f"--d-norm must be batch, layer or none, got {cfg['d_norm']!r}")
    if cfg["best_metric"] not in ("mmd", "none"):
        raise RunError(f"--best-metric must be 'mmd' or 'none', got {cfg['best_metric']!r}")


def _setup(cfg: dict[str, Any]) -> tuple[Recipe, dict[str, Any], Dataset, np.ndarray]:
    try:
        recipe = get_recipe(str(cfg["model"]))
    except ValueError as e:
        raise RunError(str(e)) from None
    _validate(cfg)
    hp = recipe.hyperparameters(cfg)
    if hp["loss"] not in ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"):
        raise RunError(f"--loss {hp['loss']!r} is not a loss; choose minimax, nonsaturating, "
                       "wasserstein, lsgan or hinge")
    try:
        if cfg["image_size"]:  # before decoding a folder of images at an impossible size
            recipe.check_shape((1, cfg["image_size"], cfg["image_size"]))
    except ValueError as e:
        raise RunError(str(e)) from None
    ds = _dataset(cfg)
    try:
        recipe.check_shape(ds.shape)
    except ValueError as e:
        raise RunError(str(e)) from None
    if recipe.conditional and ds.labels is None:
        raise RunError(f"model {recipe.name} needs labels and {cfg['data']} has none; use "
                       "MNIST, an IDX pair, an .npz with 'y', a folder with one subfolder per "
                       "class, or --labels FILE")
    if cfg["batch_size"] > len(ds.images):
        raise RunError(f"--batch-size {cfg['batch_size']} is larger than the {len(ds.images)} "
                       "images; lower it or add images")
    return recipe, hp, ds, recipe.prepare(ds.images)


def _describe(recipe: Recipe, hp: dict[str, Any], gan: GAN, ds: Dataset) -> str:
    import nanogan

    keys = ("loss", "lr", "k") + (("clip",) if hp["clip"] else ()) + \
        (("gp_weight",) if recipe.penalty else ())
    return (f"nanogan {nanogan.__version__} ({nanogan.kernel_backend()} kernels): {recipe.name} "
            f"({recipe.summary}); G {gan.G.num_params():,} params, D {gan.D.num_params():,} "
            f"params; " + ", ".join(f"{k} {hp[k]}" for k in keys) + f"\ndata: {ds.describe()}")


def _run_meta(cfg: dict[str, Any], recipe: Recipe, hp: dict[str, Any], ds: Dataset,
              nrow: int) -> dict[str, Any]:
    return {"run": {"model": recipe.name, "hp": hp, "data": ds.fingerprint(),
                    "data_source": str(cfg["data"]), "image_shape": list(ds.shape),
                    "classes": ds.classes, "pixel_range": list(recipe.pixel_range),
                    "nrow": nrow, "seed": cfg["seed"], "batch_size": cfg["batch_size"]}}


def start_run(config: dict[str, Any], log: Callable[[str], None] = print) -> int:
    """Start a run from ``config`` (the keys of :data:`nanogan.runconfig.KEYS`; missing keys take
    their defaults). Returns the exit status (see :func:`train_in_folder`).

    Nothing is written before the data, the model and the folder are known to be usable.
    """
    cfg = runconfig.resolve(config)
    if not cfg.get("model"):
        raise RunError("no model given: nanogan train MODEL (or 'model = ...' in the --config "
                       "file)")
    recipe, hp, ds, x = _setup(cfg)
    out = Path(cfg["out"]) if cfg["out"] else _next_free(Path("runs") / recipe.name)
    if (out / "config.toml").exists() or checkpoints(out):
        raise RunError(f"run folder {out} already holds a run; continue it with 'nanogan resume "
                       f"{out}', or choose another --out")
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; choose a folder")
    seed = int(cfg["seed"])
    rng = np.random.default_rng(seed)
    x_mean = x.reshape(len(x), -1).mean(axis=0) if recipe.arch == "maxout" else None
    gan = recipe.build(ds.shape, ds.num_classes, hp, rng, x_mean)
    batches = recipe.batches(x, ds.labels, cfg["batch_size"], np.random.default_rng(seed + 1))
    fixed_z, nrow = recipe.fixed_input(gan, np.random.default_rng(seed + 2))
    cfg.update({k: v for k, v in hp.items()})
    cfg["out"] = str(out)
    if str(cfg["data"]).lower() not in ("mnist", "mnist:train", "mnist:test"):
        cfg["data"] = str(Path(cfg["data"]).expanduser().resolve())
    if cfg["labels"]:
        cfg["labels"] = str(Path(cfg["labels"]).expanduser().resolve())
    cfg["image_size"], cfg["channels"] = ds.shape[1], ds.shape[0]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.toml", runconfig.dumps_toml(
        cfg, f"nanogan run: {recipe.name} on {cfg['data']}\n"
             f"start again with: nanogan train --config {out / 'config.toml'} --out NEW_FOLDER\n"
             f"continue with:    nanogan resume {out}"))
    log(_describe(recipe, hp, gan, ds))
    log(f"run folder: {out} (stop with Ctrl-C, continue with 'nanogan resume {out}')")
    evaluate = _Evaluator(recipe, gan, x, cfg["eval_samples"], seed) \
        if cfg["best_metric"] != "none" else None
    return train_in_folder(out, recipe, hp, gan, batches, rng, cfg["steps"], fixed_z=fixed_z,
                           nrow=nrow, evaluate=evaluate, metric=cfg["best_metric"],
                           sample_every=cfg["sample_every"],
                           checkpoint_every=cfg["checkpoint_every"], keep=cfg["keep"],
                           progress=cfg["progress"], extra=_run_meta(cfg, recipe, hp, ds, nrow),
                           log=log)


def _load_resumable(path: Path) -> dict[str, Any]:
    try:
        state = load_training_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as e:
        raise RunError(str(e).replace("\n", " ")) from None
    except (ValueError, KeyError) as e:
        raise RunError(f"{path}: not a nanogan training checkpoint ({e}); pass a checkpoint "
                       "written by 'nanogan train'") from None
    if "run" not in state["extra"]:
        raise RunError(f"{path} was not written by 'nanogan train' (no run settings in it); "
                       "resume it with the script that wrote it")
    return state


def resume_run(run_dir: str | os.PathLike, overrides: dict[str, Any] | None = None, *,
               checkpoint: str | os.PathLike | None = None,
               log: Callable[[str], None] = print) -> int:
    """Continue the run in ``run_dir`` from its newest loadable checkpoint (or ``checkpoint``),
    bit for bit: the same weights, optimizer states, noise and minibatches as an uninterrupted
    run. ``overrides`` may change :data:`nanogan.runconfig.RESUME_KEYS` (e.g. a larger
    ``steps``, or ``data`` after moving the images).
    """
    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise RunError(f"{run} is not a run folder (no config.toml); pass the folder 'nanogan "
                       "train' wrote (its --out)")
    saved = runconfig.load_toml(run / "config.toml")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in overrides:
        if key not in runconfig.RESUME_KEYS:
            raise RunError(f"--{key.replace('_', '-')} cannot change when resuming (it would "
                           f"be another run); resumable changes: "
                           + ", ".join("--" + k.replace("_", "-") for k in runconfig.RESUME_KEYS)
                           + "; or start a new run with 'nanogan train'")
    cfg = runconfig.resolve(overrides, saved)
    if checkpoint is not None:
        candidates = [Path(checkpoint)]
    else:
        candidates = [p for _, p in reversed(checkpoints(run))]
        if not candidates:
            raise RunError(f"{run} holds no checkpoint yet (checkpoints/step-*.npz); start it "
                           f"again with 'nanogan train --config {run / 'config.toml'} --out "
                           f"{run}-new'")
    state, used, skipped = None, None, []
    for p in candidates:
        try:
            state, used = _load_resumable(p), p
            break
        except RunError as e:
            if checkpoint is not None:
                raise
            skipped.append(f"{p.name} ({e})")
    if state is None:
        raise RunError(f"no checkpoint of {run} can be loaded: " + "; ".join(skipped))
    for s in skipped:
        log(f"warning: skipped unreadable checkpoint {s}")
    for tmp in (run / "checkpoints").glob(".*.tmp"):  # left by a process killed mid-write
        tmp.unlink()
        log(f"removed {tmp.name}, a checkpoint a killed process did not finish")
    meta = state["extra"]["run"]
    if meta["model"] != cfg["model"]:
        raise RunError(f"{used} is a checkpoint of model '{meta['model']}' but {run} trains "
                       f"'{cfg['model']}'; resume it from its own run folder, or start a new "
                       "run")
    recipe, hp, ds, x = _setup(cfg)
    if ds.fingerprint() != meta["data"]:
        raise RunError(f"{used} was trained on other data ({meta['data_source']}: "
                       f"{_fp(meta['data'])}) than --data {cfg['data']} ({_fp(ds.fingerprint())})"
                       f"; resume with the run's own data (--data PATH if it moved)")
    gan, rng = state["gan"], state["rng"]
    batches = recipe.batches(x, ds.labels, cfg["batch_size"], np.random.default_rng(0))
    try:
        batches.set_state(state["batches_state"])
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{used}: its minibatch state does not fit this data ({e}); resume with "
                       "the run's own data and batch size") from None
    if cfg["steps"] <= gan.steps:
        log(f"{run} is at step {gan.steps} of {cfg['steps']}: nothing to do (pass --steps N "
            "to train longer)")
        return 0
    if overrides:
        write_text_atomic(run / "config.toml", runconfig.dumps_toml(
            cfg, f"nanogan run: {recipe.name} on {cfg['data']}\n"
                 f"continue with:    nanogan resume {run}"))
    log(_describe(recipe, hp, gan, ds))
    log(f"resuming {run} from {used} (step {gan.steps} of {cfg['steps']})")
    evaluate = _Evaluator(recipe, gan, x, cfg["eval_samples"], cfg["seed"]) \
        if cfg["best_metric"] != "none" else None
    return train_in_folder(run, recipe, hp, gan, batches, rng, cfg["steps"],
                           fixed_z=state["fixed_z"], nrow=int(meta.get("nrow", 8)),
                           history=state["history"], evaluate=evaluate,
                           metric=cfg["best_metric"], sample_every=cfg["sample_every"],
                           checkpoint_every=cfg["checkpoint_every"], keep=cfg["keep"],
                           progress=cfg["progress"], extra=_run_meta(cfg, recipe, hp, ds,
                                                                    int(meta.get("nrow", 8))),
                           log=log)


def _fp(fp: dict[str, Any]) -> str:
    c, h, w = fp["shape"]
    return f"{fp['n']} images {c}x{h}x{w}, sha256 {fp['sha256']}"


__all__ += ["DatasetError"]
