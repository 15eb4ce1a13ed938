"""The ``strict`` test backend: NumPy arrays that behave like a GPU library's.

A :class:`StrictArray` holds a NumPy array and supports what CuPy's ``ndarray`` supports
(operators, indexing, the usual methods, ``float()`` and ``.get()`` to copy to the host; full
reductions such as ``a.sum()`` give 0-d arrays, not NumPy scalars), but, like a CuPy array, it
refuses

* NumPy's own functions: ``np.where(a, ...)``, ``np.exp(a)``, ``np.asarray(a)`` raise
  ``TypeError`` (no ``__array__``, ``__array_function__`` or ``__array_ufunc__``). This is
  stricter than CuPy, which refuses ``np.asarray`` but dispatches some ``np.`` calls to itself;
  the rule of the code base is ``xp`` everywhere, since ``np.zeros(...)`` and the like would
  silently make host arrays;
* NumPy arrays as operands: ``a + np.ones(3)`` and ``namespace.exp(np.ones(3))`` raise
  ``TypeError``, as CuPy does; only :func:`asarray` / :func:`array` take host data in.

:data:`namespace` is the matching array namespace (NumPy's functions, each unwrapping its
arguments and wrapping its results), so code written against ``nanogan.backend.xp`` runs on it
unchanged, and a stray ``np.`` call on a backend array fails loudly. Running the front end on this
backend is the CPU proof that it would run on CuPy.
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["StrictArray", "namespace"]


class StrictArray:
    """A NumPy array behind a CuPy-like interface (see the module docstring)."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs (and NumPy scalars' operators) defer or refuse

    def __init__(self, a: np.ndarray) -> None:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(a).__name__}")
        self._a = a

    # ---------------------------------------------------------------- refusals
    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("implicit conversion of a strict-backend array to a NumPy array is not "
                        "allowed; use nanogan.backend.to_numpy(x) (or x.get())")

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{getattr(func, '__name__', func)} called on a strict-backend "
                        "array; use the backend namespace nanogan.backend.xp")

    # ---------------------------------------------------------------- host transfer
    def get(self) -> np.ndarray:
        """A NumPy copy on the host (CuPy's ``ndarray.get``)."""
        return self._a.copy()

    # ---------------------------------------------------------------- attributes
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(v) for v in self._a)

    def __repr__(self) -> str:
        return f"StrictArray({self._a!r})"

    def __float__(self) -> float:
        return float(self._a)

    def __format__(self, spec: str) -> str:
        if self._a.ndim == 0:  # f"{loss:.3f}" on a 0-d array, as with CuPy
            return format(self._a.item(), spec)
        return format(repr(self), spec)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __index__(self) -> int:
        return operator.index(self._a)

    def item(self) -> Any:
        return self._a.item()

    def tolist(self) -> Any:
        return self._a.tolist()

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key)] = _unwrap(value)

    def __copy__(self) -> StrictArray:
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo: Any) -> StrictArray:
        return StrictArray(self._a.copy())

    def __reduce__(self) -> Any:
        raise TypeError("strict-backend arrays are not pickled; save to_numpy(x) instead")


def _unwrap(obj: Any) -> Any:
    """StrictArrays to their NumPy arrays (inside tuples, lists and dicts); NumPy arrays refused."""
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(f"a NumPy array of shape {obj.shape} was passed where a strict-backend "
                        "array is expected; move it with nanogan.backend.asarray(x)")
    if isinstance(obj, tuple):
        return tuple(_unwrap(v) for v in obj)
    if isinstance(obj, list):
        return [_unwrap(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj: Any) -> Any:
    """NumPy arrays (inside tuples and lists) to StrictArrays, and NumPy scalars (a full
    reduction's result, an element) to 0-d StrictArrays, as CuPy returns them; anything else as
    it is."""
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, np.generic):
        return StrictArray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(v) for v in obj)
    if isinstance(obj, list):
        return [_wrap(v) for v in obj]
    return obj


def _strict(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``func`` on unwrapped arguments, its array results wrapped."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))
    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = f"numpy.{name} on strict-backend arrays"
    return wrapped


# ---------------------------------------------------------------- operators and methods
_BINARY = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
           "xor", "lshift", "rshift")
for _op in _BINARY:
    for _form in (f"__{_op}__", f"__r{_op}__", f"__i{_op}__"):
        _f = getattr(np.ndarray, _form, None)
        if _f is None:
            continue

        def _method(self: StrictArray, other: Any, _f: Any = _f, _form: str = _form) -> Any:
            res = _f(self._a, _unwrap(other))
            if res is NotImplemented:
                return res
            if _form.startswith("__i"):
                return self  # in place: the same wrapper, its array updated
            return _wrap(res)
        setattr(StrictArray, _form, _method)

for _form in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    def _cmp(self: StrictArray, other: Any, _form: str = _form) -> Any:
        return _wrap(getattr(self._a, _form)(_unwrap(other)))
    setattr(StrictArray, _form, _cmp)
StrictArray.__hash__ = None  # type: ignore[assignment]

for _form in ("__neg__", "__pos__", "__abs__", "__invert__"):
    def _unary(self: StrictArray, _form: str = _form) -> Any:
        return _wrap(getattr(self._a, _form)())
    setattr(StrictArray, _form, _unary)

_METHODS = ("sum", "mean", "max", "min", "prod", "std", "var", "any", "all", "argmax", "argmin",
            "reshape", "transpose", "swapaxes", "ravel", "flatten", "squeeze", "astype", "copy",
            "fill", "clip", "dot", "cumsum", "round", "nonzero", "view", "repeat", "take",
            "conj", "sort", "argsort", "diagonal", "trace")
for _name in _METHODS:
    def _m(self: StrictArray, *args: Any, _name: str = _name, **kwargs: Any) -> Any:
        return _wrap(getattr(self._a, _name)(*_unwrap(args), **_unwrap(kwargs)))
    _m.__name__ = _name
    setattr(StrictArray, _name, _m)


# ---------------------------------------------------------------- the namespace
def _build_namespace() -> types.ModuleType:
    ns = types.ModuleType("nanogan._strict.namespace",
                          "NumPy's functions on strict-backend arrays (see nanogan._strict)")
    for name in dir(np):
        if name.startswith("_") or name in ("random", "ndarray", "matrix"):
            continue  # random numbers stay on the host (nanogan.backend)
        obj = getattr(np, name)
        if isinstance(obj, types.ModuleType):
            continue
        if isinstance(obj, type) or not callable(obj):
            setattr(ns, name, obj)  # dtypes, constants (np.float32, np.pi, np.newaxis)
        else:
            setattr(ns, name, _strict(obj, name))
    for sub in ("linalg", "fft"):
        mod = types.ModuleType(f"{ns.__name__}.{sub}")
        for name in dir(getattr(np, sub)):
            obj = getattr(getattr(np, sub), name)
            if not name.startswith("_") and callable(obj) and not isinstance(obj, type):
                setattr(mod, name, _strict(obj, f"{sub}.{name}"))
        setattr(ns, sub, mod)

    def asarray(a: Any, dtype: Any = None, order: Any = None) -> StrictArray:
        """Host data (NumPy arrays, lists, scalars) or a strict array, as a strict array."""
        if isinstance(a, StrictArray):
            return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
        return StrictArray(np.asarray(a, dtype=dtype, order=order))

    def array(a: Any, dtype: Any = None, copy: bool = True, order: Any = "K") -> StrictArray:
        """A strict array copied from host data or from another strict array."""
        src = a._a if isinstance(a, StrictArray) else a
        return StrictArray(np.array(src, dtype=dtype, copy=copy, order=order))

    ns.asarray, ns.array = asarray, array
    ns.ndarray = StrictArray
    return ns


#: NumPy's functions, made strict (see the module docstring).
namespace: types.ModuleType = _build_namespace()
