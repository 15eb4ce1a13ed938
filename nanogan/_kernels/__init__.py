"""Kernel sets: one table of op names, several implementations.

``reference`` (readable NumPy) always exists; ``numba`` and ``cython`` are compiled sets offering
the same op names. The best available set is chosen at import; ``NANOGAN_KERNELS=reference|numba|
cython`` forces one, and :func:`set_backend` switches at run time (the tests use it). Layers call
``ops.<name>(...)`` so that a switch takes effect immediately. Matrix products are not kernel ops:
every set shares :func:`matmul` (NumPy's BLAS, on one thread for small products; see
:mod:`nanogan._kernels._threads`).

Those three sets serve the ``numpy`` array backend. The other array backends
(:mod:`nanogan.backend`) bring their own set under the same op names (:mod:`.device`): ``cupy``
and ``strict``, activated by :func:`nanogan.backend.set_backend`, with ``ops.matmul`` their
namespace's product.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import types
import warnings

from . import _threads, reference

__all__ = [
    "OP_NAMES", "PREFERENCE", "available", "get_backend", "load", "matmul", "matmul_pair", "ops",
    "reference",
    "set_backend", "why_unavailable",
]

#: The op names every kernel set provides (the reference module defines the semantics).
OP_NAMES: tuple[str, ...] = (
    "im2col", "col2im", "im2col_matmul", "matmul_col2im", "matmul_im2col_t",
    "window_forward", "window_weight_grad", "window_input_grad",
    "leaky_relu", "leaky_relu_backward", "tanh_backward", "sigmoid", "softplus",
    "bias_leaky_relu", "bias_leaky_relu_backward", "bias_tanh",
    "batchnorm_forward", "batchnorm_backward",
    "batchnorm_leaky_relu", "batchnorm_leaky_relu_backward",
    "bce_with_logits",
    "sgd_update", "adam_update", "adam_update_many", "rmsprop_update",
    "normal_from_bits",
)

#: Preference order when nothing is forced.
PREFERENCE: tuple[str, ...] = ("cython", "numba", "reference")

_MODULES = {
    "reference": "nanogan._kernels.reference",
    "numba": "nanogan._kernels.numba_kernels",
    "cython": "nanogan._kernels.cython_kernels",
}

class _Table(types.SimpleNamespace):
    """The op table. Until the first op is looked up it is empty and the set chosen at import is
    only named: loading a compiled set starts its OpenMP runtime, which reads its settings
    (``OMP_WAIT_POLICY``, see :func:`nanogan.performance.configure`) once, at that moment."""

    def __getattr__(self, op: str):
        if op.startswith("__") or not _pending:
            raise AttributeError(op)
        _fill_pending()
        return getattr(self, op)


#: The active table; layers call ``ops.im2col(...)`` and so on.
ops = _Table(matmul=_threads.matmul)
_pending: list[str] = []  # the set chosen at import, loaded at the first op lookup
_active: list[str] = ["reference"]
_array_backend: list[str] = ["numpy"]  # nanogan.backend's active backend


def matmul(a, b, out=None):
    """``a @ b`` on the active backend: NumPy's BLAS (one thread for small products, see
    :mod:`._threads`) or the device library's (cuBLAS on CuPy)."""
    return ops.matmul(a, b, out)


def matmul_pair(a1, b1, a2, b2, out1=None):
    """``(a1 @ b1, a2 @ b2)``, two independent products: side by side on the kernel set's two
    threads where it can (:func:`._threads.matmul_pair`), else :func:`matmul` twice."""
    if _array_backend[0] == "numpy":
        return _threads.matmul_pair(a1, b1, a2, b2, out1)
    return ops.matmul(a1, b1, out1), ops.matmul(a2, b2)
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
    """Make ``name`` the active kernel set; raises ``RuntimeError`` if it cannot be loaded (or if
    the active array backend is not NumPy: the compiled sets take NumPy arrays only)."""
    if _array_backend[0] != "numpy":
        raise RuntimeError(f"kernel set {name!r} needs the numpy array backend; the active one "
                           f"is {_array_backend[0]!r} (nanogan.backend.set_backend)")
    mod = _load(name)
    if mod is None:
        raise RuntimeError(f"kernel set {name!r} is not available: {_errors.get(name)}")
    for op in OP_NAMES:
        setattr(ops, op, getattr(mod, op))
    ops.matmul = _threads.matmul
    _threads.use_gemm(None if name == "reference" else getattr(mod, "gemm", None),
                      getattr(mod, "gemm_pair", None))
    _active[0] = name
    _numpy_set[0] = name
    _pending.clear()


_numpy_set: list[str] = ["reference"]  # the kernel set the numpy array backend uses
_device_sets: dict[str, types.ModuleType] = {}


def _use_array_backend(backend: str) -> None:
    """Activate the kernel set of array backend ``backend`` (called by
    :func:`nanogan.backend.set_backend`): the chosen NumPy set, or the device set."""
    if backend == "numpy":
        _array_backend[0] = "numpy"
        set_backend(_numpy_set[0])
        return
    if backend not in _device_sets:
        from . import device

        _device_sets[backend] = device.cupy_set() if backend == "cupy" else device.strict_set()
    mod = _device_sets[backend]
    _pending.clear()
    for op in (*OP_NAMES, "matmul"):
        setattr(ops, op, getattr(mod, op))
    _threads.use_gemm(None)
    _array_backend[0] = backend
    _active[0] = backend


def get_backend() -> str:
    """Name of the active kernel set (loading the one chosen at import, if not yet loaded)."""
    if _pending:
        _fill_pending()
    return _active[0]


def why_unavailable(name: str) -> str | None:
    """The import error of a kernel set that could not be loaded, else ``None``."""
    _load(name)
    return _errors.get(name)


_FINDERS = {"cython": "nanogan._kernels._cython_kernels", "numba": "numba",
            "reference": "nanogan._kernels.reference"}


def _choose_at_import() -> None:
    """Name the set to use (``NANOGAN_KERNELS``, else the first of :data:`PREFERENCE` that is
    installed) without loading it: :func:`_fill_pending` loads it at the first op lookup."""
    forced = os.environ.get("NANOGAN_KERNELS", "").strip().lower()
    if forced:
        if forced not in _MODULES:
            warnings.warn(f"NANOGAN_KERNELS: unknown kernel set {forced!r}; choose one of "
                          f"{sorted(_MODULES)}; using the reference kernels", stacklevel=3)
            forced = "reference"
        _pending[:] = [forced]
        _active[0] = _numpy_set[0] = forced
        return
    for name in PREFERENCE:
        try:
            found = importlib.util.find_spec(_FINDERS[name]) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            _pending[:] = [name]
            _active[0] = _numpy_set[0] = name
            return


def _fill_pending() -> None:
    """Load the set named at import; if it fails, the next one that loads (with a warning when
    ``NANOGAN_KERNELS`` forced it)."""
    name = _pending[0]
    forced = bool(os.environ.get("NANOGAN_KERNELS", "").strip())
    try:
        set_backend(name)
        return
    except RuntimeError as exc:
        if forced:
            warnings.warn(f"NANOGAN_KERNELS: {exc}; using the reference kernels", stacklevel=4)
            set_backend("reference")
            return
    for other in PREFERENCE[PREFERENCE.index(name) + 1:]:
        if _load(other) is not None:
            set_backend(other)
            return


_choose_at_import()
