"""``nanogan train MODEL`` and ``nanogan resume RUN_DIR``: flags and TOML onto
:func:`nanogan.runs.start_run` and :func:`nanogan.runs.resume_run`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import runconfig
from ..recipes import RECIPES

_EXAMPLES = """\
models:
{models}

examples:
  nanogan train vanilla                                   # MNIST, MLP networks
  nanogan train dcgan --data path/to/images --image-size 64
  nanogan train cgan --data path/to/fashion-mnist         # an IDX pair; labels feed the model
  nanogan train wgan-gp --data faces.npz --image-size 32 --steps 20000
  nanogan train --config runs/dcgan/config.toml --out runs/dcgan-again
  nanogan resume runs/dcgan --steps 10000                 # continue (bit for bit), longer

Every option is also a key of a flat TOML file given with --config (write it with underscores:
image_size = 64); flags given on the command line win over the file. Each run folder holds
config.toml (every setting), metrics.csv, checkpoints/ (the last --keep and best.npz),
samples/ and samples.png (grids from fixed noise), progress.gif and losses.png.
Ctrl-C writes a checkpoint and exits with status 130; 'nanogan resume RUN_DIR' continues."""


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _default_text(key: str) -> str:
    kind, default, _ = runconfig.KEYS[key]
    if default is None:
        return "the model's"
    if kind is str and default == "":
        return "none"
    return repr(default) if kind is str else str(default)


def _type(key: str) -> Any:
    """The flag's converter: numbers are range-checked (:func:`nanogan.runconfig.flag_type`)."""
    kind = runconfig.KEYS[key][0]
    return runconfig.flag_type(key) if kind in (int, float) else kind


def _add_key(p: argparse.ArgumentParser, key: str, resume: bool = False) -> None:
    _, _, help_ = runconfig.KEYS[key]
    if key == "progress":
        p.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                       default=None, help="no progress bar (default: show it, with ETA)")
        return
    if resume:
        help_ = help_.replace(" (generator steps)", "").split(" (")[0] + \
            " (default: the run's, from RUN_DIR/config.toml)"
        p.add_argument(_flag(key), dest=key, type=_type(key), default=None,
                       metavar=key.upper(), help=help_)
        return
    extra: dict[str, Any] = {}
    if key == "best_metric":
        extra["choices"] = ["mmd", "none"]
    if key == "d_norm":
        extra["choices"] = ["batch", "layer", "none"]
    if key == "channels":
        extra["choices"] = [0, 1, 3]
    if runconfig.KEYS[key][1] is not None and key != "out":
        help_ = f"{help_} (default: {_default_text(key)})"
    p.add_argument(_flag(key), dest=key, type=_type(key), default=None, metavar=key.upper(),
                   help=help_, **extra)


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    models = "\n".join(f"  {r.name:<15} {r.summary} ({r.paper})" for r in RECIPES.values())
    p = sub.add_parser(
        "train", help="train a GAN on MNIST, IDX files, an image folder or an array",
        description="Train a GAN into a run folder (stop with Ctrl-C, continue with 'nanogan "
                    "resume').", epilog=_EXAMPLES.format(models=models),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", choices=list(RECIPES), metavar="MODEL",
                   help="one of: " + ", ".join(RECIPES) + " (or 'model' in --config)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="TOML file of settings (the keys below, with underscores); flags given "
                        "here win (default: none)")
    for key in runconfig.KEYS:
        if key != "model":
            _add_key(p, key)
    p.set_defaults(func=cmd_train)
    return p


def add_resume_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "resume", help="continue a stopped or finished run, bit for bit",
        description="Continue the run in RUN_DIR from its newest checkpoint: the same weights, "
                    "optimizer states, noise and minibatches as if it had never stopped. Only "
                    "the settings below may change.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder ('nanogan train' --out)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="resume from this checkpoint instead (default: the newest in "
                        "RUN_DIR/checkpoints that loads)")
    for key in runconfig.RESUME_KEYS:
        _add_key(p, key, resume=True)
    p.set_defaults(func=cmd_resume)
    return p


def _given(args: argparse.Namespace, keys: Any) -> dict[str, Any]:
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def cmd_train(args: argparse.Namespace) -> int:
    from ..runs import start_run

    file_config = runconfig.load_toml(args.config) if args.config else {}
    given = _given(args, [k for k in runconfig.KEYS if k != "model"])
    if args.model is not None:
        given["model"] = args.model
    if args.config and "out" not in given and file_config.get("out"):
        print(f"note: writing into {file_config['out']} from {args.config}", file=sys.stderr)
    return start_run({**file_config, **given})


def cmd_resume(args: argparse.Namespace) -> int:
    from ..runs import resume_run

    return resume_run(args.run_dir, _given(args, runconfig.RESUME_KEYS),
                      checkpoint=args.checkpoint)
