"""The settings of a training run: one table of keys, read from TOML, written as TOML.

Every key of :data:`KEYS` is both a command-line flag (``image_size`` is ``--image-size``) and a
key of a flat TOML file (``nanogan train --config run.toml``), with the same meaning and default.
A run folder's ``config.toml`` holds every key with the value the run used, so it can be passed
back as ``--config`` to start the same run again.

Keys whose default is None take the model's own default (see :mod:`nanogan.recipes`).
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["KEYS", "ConfigError", "dumps_toml", "load_toml", "resolve"]


class ConfigError(ValueError):
    """A bad config file or value; the message says what is wrong and what to do."""


#: key -> (type, default, help). None: the model's default. Order: as written in config.toml.
KEYS: dict[str, tuple[type, Any, str]] = {
    "model": (str, None, "the model (see 'nanogan train --help')"),
    "data": (str, "mnist", "training images: 'mnist', 'mnist:test', a folder of PNG/JPEG images "
                           "(optionally one subfolder per class), an IDX images file or a "
                           "folder holding an IDX pair, or a .npy/.npz array"),
    "labels": (str, "", "labels file (IDX or .npy of integers) for images that have none "
                        "beside them"),
    "image_size": (int, 0, "side of the square training images, after resizing and centre-"
                           "cropping (0: the data's own size; image folders: 64)"),
    "channels": (int, 0, "1 (grey) or 3 (colour) to convert the images (0: as they are)"),
    "max_images": (int, 0, "use at most this many images (0: all)"),
    "steps": (int, 5000, "training iterations (generator steps) in total"),
    "batch_size": (int, 64, "images per minibatch"),
    "z_dim": (int, None, "noise dimension (model default: 100)"),
    "width": (int, None, "MLP hidden units or DCGAN channels of the outer layers (model "
                         "default: 256 for MLPs, 64 for DCGAN networks, 1200 for "
                         "goodfellow2014)"),
    "loss": (str, None, "GAN loss: minimax, nonsaturating, wasserstein, lsgan, hinge (model "
                        "default: nonsaturating; wasserstein for wgan, wgan-gp)"),
    "lr": (float, None, "learning rate of both optimizers (model default: 2e-4; wgan 5e-5, "
                        "wgan-gp 1e-4, goodfellow2014 0.1)"),
    "beta1": (float, None, "Adam beta1, or SGD momentum for goodfellow2014 (model default: 0.5; "
                           "wgan-gp 0.0)"),
    "beta2": (float, None, "Adam beta2 (model default: 0.999; wgan-gp 0.9)"),
    "k": (int, None, "critic steps per generator step (model default: 1; wgan, wgan-gp 5)"),
    "clip": (float, None, "weight clipping of the critic, 0 for none (model default: 0; wgan "
                          "0.01)"),
    "gp_weight": (float, None, "gradient penalty coefficient: WGAN-GP's lambda, R1's gamma "
                               "(model default: 10 for wgan-gp and r1, else 0)"),
    "d_norm": (str, None, "normalisation between the DCGAN discriminator's convolutions: batch, "
                          "layer or none (model default: batch; layer for wgan-gp and r1, whose "
                          "penalties need per-sample gradients)"),
    "seed": (int, 0, "random seed (weights, noise, minibatch order)"),
    "out": (str, "", "run folder (default: runs/MODEL, numbered runs/MODEL-2, ... if taken)"),
    "sample_every": (int, 500, "steps between sample grids (0: only at the end)"),
    "checkpoint_every": (int, 1000, "steps between checkpoints (0: only at the end)"),
    "keep": (int, 3, "step checkpoints kept (the oldest are deleted); best.npz is kept apart"),
    "best_metric": (str, "mmd", "metric choosing checkpoints/best.npz at each checkpoint: "
                                "'mmd' (pixel-space MMD^2 of --eval-samples samples against "
                                "as many training images, lower is better) or 'none'"),
    "eval_samples": (int, 256, "samples (and training images) for the best-checkpoint metric"),
    "progress": (bool, True, "show the progress bar (flag: --no-progress)"),
}

#: Allowed ranges of the numeric keys, ``(low, high, low_open)``: ``low < v`` when ``low_open``,
#: else ``low <= v``; ``v <= high`` (None: no upper bound). Flags and TOML values alike.
BOUNDS: dict[str, tuple[float, float | None, bool]] = {
    "image_size": (0, 8192, False), "max_images": (0, None, False), "steps": (1, None, False),
    "batch_size": (1, None, False), "z_dim": (1, 1_000_000, False), "width": (1, 1_000_000, False),
    "lr": (0.0, None, True), "beta1": (0.0, 1.0, False), "beta2": (0.0, 1.0, False),
    "k": (1, 1000, False), "clip": (0.0, None, False), "gp_weight": (0.0, None, False),
    "seed": (0, None, False), "sample_every": (0, None, False),
    "checkpoint_every": (0, None, False), "keep": (1, None, False),
    "eval_samples": (2, None, False),
}


def check_range(key: str, value: Any) -> str | None:
    """Why ``value`` is outside :data:`BOUNDS` for ``key`` (None when it is allowed)."""
    if key not in BOUNDS or value is None:
        return None
    low, high, low_open = BOUNDS[key]
    ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if ok:
        return None
    kind = "an integer" if KEYS[key][0] is int else "a number"
    allowed = f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        allowed += f" and <= {high}"
    return f"must be {allowed}, got {value!r}"


def flag_type(key: str) -> Any:
    """The argparse ``type=`` of ``key``'s flag: its type, then :func:`check_range` (a bad value
    is argparse's one-line error, exit status 2)."""
    import argparse

    kind = KEYS[key][0]

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        why = check_range(key, value)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    convert.__name__ = kind.__name__
    return convert


#: Keys a resumed run may change (the others would make it another run).
RESUME_KEYS = ("steps", "data", "labels", "sample_every", "checkpoint_every", "keep", "progress")


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key.replace("-", "_"), list(KEYS), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_value(key: str, value: Any, where: str) -> Any:
    """``value`` converted to the key's type; ConfigError for an unknown key or a bad value."""
    if key not in KEYS:
        raise ConfigError(f"{where}: unknown key '{key}'{_suggest(key)}; the keys are listed by "
                          "'nanogan train --help' (write them with underscores)")
    kind = KEYS[key][0]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
        why = check_range(key, float(value))
        if why:
            raise ConfigError(f"{where}: '{key}' {why}")
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        why = check_range(key, value)
        if why:
            raise ConfigError(f"{where}: '{key}' {why}")
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: '{key}' must be {'an integer' if kind is int else 'a number' if kind is float else 'a string'}, "  # noqa: E501
                      f"got {value!r}")


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The keys of a flat TOML file, checked against :data:`KEYS`."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading TOML on Python 3.10 needs tomli: pip install tomli") \
                from None

    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; check the path") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML ({e}); fix that line") from None
    out = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            raise ConfigError(f"{path}: [{key}] tables are not used; write flat 'key = value' "
                              "lines")
        out[key] = check_value(key, value, str(path))
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if any(c in r for c in ".einf") else r + ".0"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def dumps_toml(config: dict[str, Any], header: str = "") -> str:
    """Flat TOML text of ``config`` (keys in :data:`KEYS` order), after ``header`` as comments."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines.append("# every key is a flag of 'nanogan train' (image_size is --image-size); see "
                 "'nanogan train --help'")
    for key in KEYS:
        if key in config and config[key] is not None:
            lines.append(f"{key} = {_toml_value(config[key])}")
    return "\n".join(lines) + "\n"


def resolve(given: dict[str, Any], file_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults < the config file < the given (non-None) values, for every key of KEYS.

    Model-dependent keys stay None here; :meth:`nanogan.recipes.Recipe.hyperparameters` fills
    them in."""
    out = {key: default for key, (_, default, _) in KEYS.items()}
    out.update({k: v for k, v in (file_config or {}).items()})
    out.update({k: v for k, v in given.items() if v is not None})
    return out
