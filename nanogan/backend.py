"""The array backend: which array library the front end computes with.

The layers, losses, optimizers, penalties and ``GAN`` never call NumPy's functions on their
arrays; they call :data:`xp`, the active array namespace, and the kernel table
(:mod:`nanogan._kernels`) that goes with it:

=========  ============================================  ==========================================
backend    arrays                                        kernels
=========  ============================================  ==========================================
numpy      ``numpy.ndarray`` (the default)               cython, numba or reference (best built)
cupy       ``cupy.ndarray`` on the GPU (``[gpu]`` extra)  the reference kernels on CuPy, some fused
strict     :class:`nanogan._strict.StrictArray` (tests)  the reference kernels on the strict arrays
=========  ============================================  ==========================================

``set_backend("cupy")`` (or ``NANOGAN_BACKEND=cupy`` before import) switches; build models after
switching (their parameters are created on the active backend). The ``strict`` backend wraps NumPy
arrays in a type that, like CuPy's, refuses NumPy's own functions and implicit conversion to a
NumPy array, so a stray ``np.`` call on a backend array fails the test suite without a GPU.

What stays on the host whatever the backend: random numbers (NumPy ``Generator``s, so a run draws
the same noise and dropout masks on every backend and its checkpoint holds one RNG state),
checkpoints and state dicts (:func:`to_numpy`), sample grids, and metrics' inputs. Data crosses
with :func:`asarray` (host to device, once per minibatch) and :func:`to_numpy` (device to host).
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "array_namespace", "asarray", "describe", "get_backend", "is_array",
           "set_backend", "synchronize", "to_numpy", "xp"]

#: The backend names :func:`set_backend` accepts.
BACKENDS: tuple[str, ...] = ("numpy", "cupy", "strict")

#: The active array namespace: ``xp.zeros``, ``xp.where``, ``xp.exp`` ... of NumPy, CuPy or the
#: strict test backend. A module object whose attributes :func:`set_backend` replaces, so code
#: that imported it sees every switch.
xp = types.ModuleType("nanogan.xp", "the active array namespace (see nanogan.backend)")

_state: dict[str, Any] = {"name": "numpy", "module": np, "array_types": (np.ndarray,)}


def _load(name: str) -> tuple[types.ModuleType, tuple[type, ...]]:
    """The namespace module and array types of backend ``name`` (importing it)."""
    if name == "numpy":
        return np, (np.ndarray,)
    if name == "strict":
        from . import _strict

        return _strict.namespace, (_strict.StrictArray,)
    if name == "cupy":
        try:
            import cupy
        except Exception as exc:  # not installed, or no CUDA runtime
            raise RuntimeError("backend 'cupy' is not available: CuPy does not import "
                               f"({type(exc).__name__}: {exc}); install it with "
                               "pip install -e \".[gpu]\" on a machine with an NVIDIA GPU") from exc
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise RuntimeError(f"backend 'cupy' is not available: no CUDA device "
                               f"({type(exc).__name__}: {exc})") from exc
        return cupy, (cupy.ndarray,)
    raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")


def set_backend(name: str) -> None:
    """Make ``name`` (``"numpy"``, ``"cupy"`` or ``"strict"``) the active backend, with its kernel
    set. Raises ``ValueError`` for an unknown name and ``RuntimeError`` when CuPy or a GPU is
    missing (the active backend is then unchanged). Arrays made before the switch stay where they
    are: build models after switching."""
    name = str(name).strip().lower()
    module, types_ = _load(name)
    from . import _kernels

    _kernels._use_array_backend(name)
    xp.__dict__.clear()
    xp.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    xp.__name__, xp.__doc__ = "nanogan.xp", f"the {name} array namespace (see nanogan.backend)"
    _state.update(name=name, module=module, array_types=types_)


def get_backend() -> str:
    """The active backend's name."""
    return _state["name"]


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of the active backend."""
    return isinstance(x, _state["array_types"])


def array_namespace(x: Any) -> types.ModuleType:
    """The namespace that computes on ``x``: NumPy for a NumPy array (host-side code), else the
    active backend's :data:`xp` (so one function serves host and device arrays)."""
    return np if isinstance(x, np.ndarray) else xp


def asarray(x: Any, dtype: Any = None) -> Any:
    """``x`` as an array of the active backend (a copy to the device if it is on the host; no copy
    if it already is a backend array of that dtype)."""
    if dtype is None and isinstance(x, _state["array_types"]):
        return x
    return _state["module"].asarray(x, dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array on the host (a copy from the device; NumPy arrays as they are)."""
    if isinstance(x, np.ndarray):
        return x
    from ._strict import StrictArray

    cupy = sys.modules.get("cupy")
    if isinstance(x, StrictArray) or (cupy is not None and isinstance(x, cupy.ndarray)):
        return x.get()  # a copy to the host
    return np.asarray(x)


def synchronize() -> None:
    """Wait until the device has finished the work queued so far (GPU calls return before it is
    done): call before reading a clock. A no-op on the host backends."""
    if _state["name"] == "cupy":
        _state["module"].cuda.Device().synchronize()


def describe() -> str:
    """One line: the backend and its device (``python -m nanogan info``)."""
    name = get_backend()
    if name == "cupy":
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"cupy {cupy.__version__} on GPU {dev.id} ({gpu})"
    if name == "strict":
        return "strict (NumPy arrays that refuse NumPy's functions; for tests) on the CPU"
    return f"numpy {np.__version__} on the CPU"


def _choose_at_import() -> None:
    xp.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    forced = os.environ.get("NANOGAN_BACKEND", "").strip().lower()
    if forced and forced != "numpy":
        try:
            set_backend(forced)
        except (ValueError, RuntimeError) as exc:
            warnings.warn(f"NANOGAN_BACKEND: {exc}; using numpy", stacklevel=3)


_choose_at_import()
