"""Validators for command-line flags, shared by ``python -m nanogan`` and the examples.

Each is an argparse ``type=`` converter: a bad value ends the program before any work starts with
argparse's own one-line error and exit status 2, naming the flag, the value and what is allowed::

    error: argument --batch-size: must be an integer in [1, 60000], got '0'

Typical use::

    p.add_argument("--lr", type=positive_float, default=2e-4)
    p.add_argument("--out", type=output_dir, default="runs/vanilla")
    args = p.parse_args(argv)
    given = explicit_flags(p, argv)          # which flags the user typed (for --resume checks)
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "existing_file",
    "explicit_flags",
    "float_range",
    "int_range",
    "nonnegative_int",
    "output_dir",
    "output_file",
    "positive_float",
    "positive_int",
    "resume_conflicts",
]


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """A converter accepting integers ``low <= v <= high`` (``high=None``: no upper bound)."""
    allowed = (f"an integer in [{low}, {high}]" if high is not None
               else f"an integer >= {low}")

    def convert(text: str) -> int:
        try:
            v = int(str(text).strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return v

    convert.__name__ = "int"
    return convert


#: ``>= 1``, no upper bound.
positive_int = int_range(1)
#: ``>= 0`` (0 usually means "never" or "off").
nonnegative_int = int_range(0)


def float_range(low: float = 0.0, high: float = math.inf, *, low_open: bool = True
                ) -> Callable[[str], float]:
    """A converter accepting finite floats in ``(low, high]`` (``[low, high]`` with
    ``low_open=False``); NaN and infinity are refused."""
    allowed = (f"a finite number > {low:g}" if low_open else f"a finite number >= {low:g}")
    if high != math.inf:
        allowed += f" and <= {high:g}"

    def convert(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        ok = math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return v

    convert.__name__ = "float"
    return convert


#: A finite float ``> 0`` (learning rates, minutes).
positive_float = float_range(0.0)


def _writable_ancestor(path: Path) -> str | None:
    """Why a file or folder cannot be created at ``path`` (None if it can)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} is not writable"
    return None


def output_dir(text: str) -> str:
    """An output folder: an existing writable folder, or one that can be created (returned as
    given, a string, as argparse gives any other value)."""
    if not text:
        raise argparse.ArgumentTypeError("must name a folder, got ''")
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"must be a folder, got {text!r}, which is a file")
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"must be a writable folder, got {text!r} "
                                             "(no write permission)")
        return text
    why = _writable_ancestor(path)
    if why:
        raise argparse.ArgumentTypeError(f"must be a folder that can be created, got {text!r} "
                                         f"({why})")
    return text


def output_file(text: str) -> str:
    """An output file: not a folder, in a folder that exists or can be created, writable."""
    if not text:
        raise argparse.ArgumentTypeError("must name a file, got ''")
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"must be a file name, got {text!r}, which is a folder")
    why = _writable_ancestor(path)
    if why:
        raise argparse.ArgumentTypeError(f"must be a file that can be written, got {text!r} "
                                         f"({why})")
    return text


def existing_file(text: str) -> str:
    """An input file that exists, is a regular file and is not empty."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"must be an existing file, got {text!r} (not found)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"must be a file, got {text!r}, which is a folder")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"must be a readable file, got {text!r} (no read "
                                         "permission)")
    if path.stat().st_size == 0:
        raise argparse.ArgumentTypeError(f"must be a non-empty file, got {text!r} (0 bytes)")
    return text


def explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The ``dest`` names of the options the user actually gave in ``argv`` (defaults excluded),
    e.g. ``{"lr", "resume"}``: what ``--resume`` must compare with the checkpoint."""
    unset = object()
    ns = argparse.Namespace(**{a.dest: unset for a in parser._actions
                               if a.dest not in ("help", argparse.SUPPRESS)})
    parser.parse_args(argv, namespace=ns)  # argparse fills defaults only for missing attributes
    return {k for k, v in vars(ns).items() if v is not unset}


def resume_conflicts(args: argparse.Namespace, given: set[str], saved: dict[str, Any]) -> str:
    """The flags given with ``--resume`` whose values contradict the checkpoint's.

    Parameters
    ----------
    args : the parsed flags
    given : :func:`explicit_flags`
    saved : dest -> the checkpoint's value, for every flag that the checkpoint fixes

    Returns
    -------
    "" when nothing contradicts, else e.g. ``"--lr 0.001 (the checkpoint has 0.0002), --k 2
    (the checkpoint has 1)"``
    """
    parts = []
    for dest, value in saved.items():
        if dest not in given:
            continue
        mine = getattr(args, dest)
        same = (math.isclose(mine, value, rel_tol=1e-12, abs_tol=0.0)
                if isinstance(mine, float) and isinstance(value, int | float) else mine == value)
        if not same:
            parts.append(f"--{dest.replace('_', '-')} {mine} (the checkpoint has {value})")
    return ", ".join(parts)
