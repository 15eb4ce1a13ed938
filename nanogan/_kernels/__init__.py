"""Kernel sets: one table of op names, several implementations.

``reference`` (readable NumPy) always exists; ``numba`` and ``cython`` are compiled sets offering
the same op names. The best available set is chosen at import; ``NANOGAN_KERNELS=reference|numba|
cython`` forces one, and :func:`set_backend` switches at run time (the tests use it). Layers call
``ops.<name>(...)`` so that a switch takes effect immediately. Matrix products are not kernel ops:
every set shares :func:`matmul` (NumPy's BLAS, on one thread for small products; see
:mod:`nanogan._kernels._threads`).
"""

from __future__ import annotations

import importlib
import os
import types
import warnings

# The compiled kernels' OpenMP threads and the BLAS threads take turns on the same cores. With
# OpenMP's default (active) wait policy, threads that finished a kernel keep spinning and starve
# the BLAS product that follows: a DCGAN-28 iteration ran 2x slower on 2 threads than on 1.
# Passive waiting (set before the OpenMP runtime loads; an explicit setting is kept) fixes that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import reference
from ._threads import matmul

__all__ = [
    "OP_NAMES", "PREFERENCE", "available", "get_backend", "load", "matmul", "ops", "reference",
    "set_backend", "why_unavailable",
]

#: The op names every kernel set provides (the reference module defines the semantics).
OP_NAMES: tuple[str, ...] = (
    "im2col", "col2im",
    "leaky_relu", "leaky_relu_backward", "sigmoid", "softplus",
    "bias_leaky_relu", "bias_leaky_relu_backward",
    "batchnorm_forward", "batchnorm_backward",
    "batchnorm_leaky_relu", "batchnorm_leaky_relu_backward",
    "bce_with_logits",
    "sgd_update", "adam_update", "rmsprop_update",
)

#: Preference order when nothing is forced.
PREFERENCE: tuple[str, ...] = ("cython", "numba", "reference")

_MODULES = {
    "reference": "nanogan._kernels.reference",
    "numba": "nanogan._kernels.numba_kernels",
    "cython": "nanogan._kernels.cython_kernels",
}

#: The active table; layers call ``ops.im2col(...)`` and so on.
ops = types.SimpleNamespace()
_active: list[str] = ["reference"]
_errors: dict[str, str] = {}


def _load(name: str) -> types.ModuleType | None:
    if name not in _MODULES:
        raise ValueError(f"unknown kernel set {name!r}; choose one of {sorted(_MODULES)}")
    try:
        mod = importlib.import_module(_MODULES[name])
    except Exception as exc:  # a compiled set that is not built or not installed
        _errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    missing = [op for op in OP_NAMES if not hasattr(mod, op)]
    if missing:
        _errors[name] = f"missing ops {missing}"
        return None
    return mod


def available() -> list[str]:
    """Names of the kernel sets that import on this installation."""
    return [name for name in PREFERENCE if _load(name) is not None]


def load(name: str) -> types.ModuleType:
    """The module of kernel set ``name`` (its ops as functions, without activating it); raises
    ``RuntimeError`` if it cannot be loaded."""
    mod = _load(name)
    if mod is None:
        raise RuntimeError(f"kernel set {name!r} is not available: {_errors.get(name)}")
    return mod


def set_backend(name: str) -> None:
    """Make ``name`` the active kernel set; raises ``RuntimeError`` if it cannot be loaded."""
    mod = _load(name)
    if mod is None:
        raise RuntimeError(f"kernel set {name!r} is not available: {_errors.get(name)}")
    for op in OP_NAMES:
        setattr(ops, op, getattr(mod, op))
    _active[0] = name


def get_backend() -> str:
    """Name of the active kernel set."""
    return _active[0]


def why_unavailable(name: str) -> str | None:
    """The import error of a kernel set that could not be loaded, else ``None``."""
    _load(name)
    return _errors.get(name)


def _choose_at_import() -> None:
    forced = os.environ.get("NANOGAN_KERNELS", "").strip().lower()
    if forced:
        set_backend(forced)  # a forced set that fails to load warns below, never silently
        return
    for name in PREFERENCE:
        if _load(name) is not None:
            set_backend(name)
            return


set_backend("reference")
try:
    _choose_at_import()
except RuntimeError as exc:
    warnings.warn(f"NANOGAN_KERNELS: {exc}; using the reference kernels", stacklevel=2)
