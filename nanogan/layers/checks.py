"""Argument checks and conversions shared by the layers: sizes, reals, dtypes, seeds, ``dy``
shapes, state-dict entries, and the size limit a checkpoint's config is rebuilt under.

They make bad input fail early with a message naming the layer, the argument, the expected and
the actual value; none of them is part of the math (see ``base.py`` for the layer contract).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import asarray, to_numpy

if TYPE_CHECKING:
    from .base import Module


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def convert_entry(owner: str, key: str, value: Any, like: np.ndarray) -> np.ndarray:
    """``value`` converted to ``like``'s dtype for a state-dict copy, or ValueError naming ``key``.

    The shape must match exactly; floating-point destinations take floating-point values only and
    integer destinations integer values only (no bool, string, object or complex casts).
    """
    try:
        src = to_numpy(value)  # a device array is copied to the host; anything else np.asarray
    except Exception as e:  # a ragged list, an object that refuses conversion
        raise ValueError(f"{owner}: entry {key!r} is not an array ({type(e).__name__}: {e})") \
            from e
    if src.shape != like.shape:
        raise ValueError(f"{owner}: entry {key!r} expected shape {_fmt_shape(like.shape)}, got "
                         f"{_fmt_shape(src.shape)}")
    want = "f" if like.dtype.kind == "f" else "iu"
    if src.dtype.kind not in want:
        kind = "floating-point" if want == "f" else "integer"
        raise ValueError(f"{owner}: entry {key!r} expected {kind} values ({like.dtype}), got "
                         f"dtype {src.dtype}; refusing to cast")
    return src.astype(like.dtype, copy=True)


def check_sizes(owner: Any, **sizes: Any) -> tuple[int, ...]:
    """Validate a constructor's size arguments: each a positive integer (not a bool, float or
    string). Returns them as ints, in order; ValueError naming the layer and the argument.

    Inside :func:`size_limit` (a checkpoint rebuilding its architecture) every size must also be
    at most that limit, so a corrupt config cannot ask for an absurd allocation.
    """
    name = owner if isinstance(owner, str) else type(owner).__name__
    out = []
    for arg, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name}: {arg} must be a positive integer, got {v!r}")
        limit = _SIZE_LIMIT[-1] if _SIZE_LIMIT else None
        if limit is not None and v > limit:
            raise ValueError(f"{name}: {arg}={v} is larger than the {limit:,} values the "
                             "checkpoint holds")
        out.append(int(v))
    return tuple(out)


def check_real(owner: Any, arg: str, value: Any, low: float | None = None,
               high: float | None = None, *, low_open: bool = False,
               high_open: bool = False) -> float:
    """Validate a real constructor argument: finite and within ``[low, high]`` (``(`` / ``)`` with
    ``low_open`` / ``high_open``). Returns it as a float; ValueError naming the layer otherwise."""
    name = owner if isinstance(owner, str) else type(owner).__name__
    if low is None and high is None:
        allowed = "a finite number"
    else:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        allowed = f"a finite number in {lo}, {hi}"
    try:
        if isinstance(value, bool | str | bytes):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {arg} must be {allowed}, got {value!r}") from None
    ok = np.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{name}: {arg} must be {allowed}, got {value!r}")
    return v


def check_dy(layer: Module, dy: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``dy`` as an array, or ValueError naming the layer unless it has the forward output's
    ``shape`` (cheap: one tuple comparison). Each layer's ``backward`` calls it first."""
    dy = asarray(dy)
    if dy.shape != tuple(shape):
        raise ValueError(f"{layer!r}.backward: argument 'dy' expected shape "
                         f"{_fmt_shape(tuple(shape))} (the forward output's), got "
                         f"{_fmt_shape(dy.shape)}")
    return dy


#: Stack of active :func:`size_limit` bounds (innermost last).
_SIZE_LIMIT: list[int] = []
#: Remaining parameter values the innermost :func:`size_limit` allows (see :func:`reserve`).
_SIZE_BUDGET: list[int] = []


class size_limit:
    """Context manager: while active, layers may allocate at most ``values`` parameter values in
    total and no size argument may exceed it (used when a checkpoint's config rebuilds models:
    the file's own arrays bound what a sound architecture needs)."""

    def __init__(self, values: int) -> None:
        self.values = int(values)

    def __enter__(self) -> size_limit:
        _SIZE_LIMIT.append(self.values)
        _SIZE_BUDGET.append(self.values)
        return self

    def __exit__(self, *exc: Any) -> None:
        _SIZE_LIMIT.pop()
        _SIZE_BUDGET.pop()


def reserve(shape: tuple[int, ...]) -> None:
    """Count a parameter of ``shape`` against the active :func:`size_limit`, before allocating
    it; ValueError if it does not fit. Free (a list check) when no limit is active."""
    if not _SIZE_BUDGET:
        return
    n = 1
    for s in shape:
        n *= max(int(s), 0)
    if n > _SIZE_BUDGET[-1]:
        raise ValueError(f"a parameter of shape {_fmt_shape(tuple(shape))} ({n:,} values) is "
                         f"more than the {_SIZE_LIMIT[-1]:,} values the checkpoint holds")
    _SIZE_BUDGET[-1] -= n


def as_dtype(dtype: Any) -> np.dtype:
    """Validate a layer dtype: float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_rng(rng: Any) -> np.random.Generator:
    """``None`` -> a fresh generator; an int -> a seeded one; a Generator as it is."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
