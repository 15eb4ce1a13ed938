"""The layer contract every nanogan module follows.

A module is a function ``y = f(x; theta)`` with a hand-written derivative:

* ``y, cache = m.forward(x, train=True)`` computes ``y`` and returns in ``cache`` everything the
  backward pass needs. Nothing is kept on the module between calls, so one discriminator can be run
  on a real batch and on a fake batch and each half backpropagated with its own cache.
* ``dx = m.backward(dy, cache)`` takes ``dL/dy`` and returns ``dL/dx``; it ADDS ``dL/dtheta`` into
  ``m.grads`` (``+=``), so gradients from several forward passes accumulate until ``zero_grad``.
  With ``param_grads=False`` only ``dL/dx`` is computed: the generator's step needs the gradient
  through the discriminator, not the discriminator's own parameter gradients.
* ``m.backward(dy, cache, input_grad=False)`` is the opposite case: the caller needs no ``dL/dx``
  (the discriminator's own update, or the generator's, whose input is noise), so the layer may skip
  computing it and return ``None``; the parameter gradients are exactly those of the full
  backward. :class:`~nanogan.layers.container.Sequential` asks only its first layer to skip it
  (every later layer's ``dL/dx`` is the ``dy`` of the layer before).

Second order (gradient penalties, :mod:`nanogan.penalties`): a layer that a critic can use also
differentiates its own backward pass, in forward mode ("forward over reverse")::

    y, cache = m.forward(x)                           # the forward pass, as for backward
    y_dot, tcache = m.jvp(x_dot, cache)               # how y moves when x moves along x_dot
    dx, dx_dot = m.backward_jvp(dy, dy_dot, cache, tcache)
                                                      # how dx moves (and ADDS how dL/dtheta moves)

``dx_dot = d/de backward(dy + e dy_dot)`` at ``x + e x_dot``, and ``grads += d/de dL/dtheta``
along the same path. With ``dy = 1`` and ``dy_dot = 0`` this is ``d/dtheta (x_dot . dD/dx)``,
the parameter gradient of any penalty ``P(dD/dx)`` for ``x_dot = dP/d(dD/dx)``.

Parameters, their gradients and buffers live in plain dicts of NumPy arrays. The arrays are never
rebound, only updated in place, so an optimizer may hold on to them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Module:
    """Base class: parameter bookkeeping, ``state_dict`` and input checks.

    Subclasses register parameters with :meth:`add_param`, buffers with :meth:`add_buffer` and
    children with :meth:`add_module`, then implement :meth:`forward` and :meth:`backward`.
    """

    dtype: np.dtype | None = None  # None: parameter-free, runs in the input's float dtype

    def __new__(cls, *args: Any, **kwargs: Any) -> Module:
        # Remember the constructor arguments: they are the module's config (see serialize.py), so
        # a checkpoint can rebuild the architecture without code.
        obj = super().__new__(cls)
        obj._init_args = (args, kwargs)
        return obj

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self._children: dict[str, Module] = {}

    # ------------------------------------------------------------------ registration
    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a trainable parameter and a zero gradient of the same shape and dtype."""
        value = np.ascontiguousarray(value)
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)
        return value

    def add_buffer(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a persistent, non-trainable array (kept in ``state_dict``)."""
        self._buffers[name] = value
        return value

    def add_module(self, name: str, module: Module) -> Module:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: child {name!r} is a {type(module).__name__}, "
                            "not a nanogan Module")
        self._children[name] = module
        return module

    # ------------------------------------------------------------------ views
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def _collect(self, attr: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for prefix, m in self.named_modules():
            for k, v in getattr(m, attr).items():
                out[prefix + k] = v
        return out

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Trainable parameters, keyed as PyTorch's ``named_parameters()`` (``"0.weight"``)."""
        return self._collect("_params")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Accumulated ``dL/dparam``, same keys and shapes as :attr:`params`."""
        return self._collect("_grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Persistent non-trainable state (BatchNorm running statistics)."""
        return self._collect("_buffers")

    def zero_grad(self) -> None:
        """Set every accumulated gradient to zero (in place)."""
        for _, m in self.named_modules():
            for g in m._grads.values():
                g.fill(0)

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of parameters and buffers, keys and order as PyTorch's ``state_dict()``."""
        out: dict[str, np.ndarray] = {}
        for prefix, m in self.named_modules():
            for k, v in m._params.items():
                out[prefix + k] = v.copy()
            for k, v in m._buffers.items():
                out[prefix + k] = v.copy()
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy ``state`` into this module's arrays in place.

        Accepts a nanogan ``state_dict()`` or a PyTorch one converted with ``.numpy()``.
        Raises ``ValueError`` naming the key on a missing, unexpected or misshapen entry, or on
        one of the wrong kind (floating-point parameters take floating-point values only: integer,
        boolean or string arrays are refused, not cast). All or nothing: every entry is checked
        and converted before the first one is copied, so on an error the module is unchanged.
        """
        for dst, src in self._stage_state(state, strict):
            dst[...] = src

    def _stage_state(self, state: Mapping[str, Any], strict: bool = True
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Check and convert ``state`` for :meth:`load_state_dict` without changing anything;
        returns the ``(destination, converted value)`` pairs to copy."""
        own: dict[str, np.ndarray] = {}
        for prefix, m in self.named_modules():
            own.update({prefix + k: v for k, v in m._params.items()})
            own.update({prefix + k: v for k, v in m._buffers.items()})
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise ValueError(f"{name}.load_state_dict: expected a dict of arrays, got "
                             f"{type(state).__name__}")
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"{name}.load_state_dict: " + "; ".join(parts))
        return [(dst, convert_entry(f"{name}.load_state_dict", k, state[k], dst))
                for k, dst in own.items() if k in state]

    # ------------------------------------------------------------------ the contract
    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, cache: Any, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    # ------------------------------------------------------------------ second order
    # The gradient of a function of the input gradient (a gradient penalty) w.r.t. the parameters:
    # the first-order backward differentiated once more, in forward mode (see penalties.py).
    def jvp(self, x_dot: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        """Forward-mode derivative at the cached point: ``y_dot = (dy/dx) x_dot`` (parameters held
        fixed), and a tangent cache for :meth:`backward_jvp`. ``cache`` comes from
        :meth:`forward`."""
        raise NotImplementedError(f"{type(self).__name__} has no second-order backward (jvp)")

    def backward_jvp(self, dy: np.ndarray, dy_dot: np.ndarray, cache: Any, tcache: Any, *,
                     param_grads: bool = True, input_grad: bool = True
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The backward pass differentiated along a direction: with ``x`` moving along ``x_dot``
        (the :meth:`jvp` that made ``tcache``) and ``dy`` along ``dy_dot``, return
        ``(dx, dx_dot)`` and ADD the rate of change of ``dL/dparam`` into :attr:`grads`."""
        raise NotImplementedError(f"{type(self).__name__} has no second-order backward "
                                  "(backward_jvp)")

    def __call__(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """``m(x)`` is ``m.forward(x, train)[0]``: the output alone, the cache dropped."""
        return self.forward(x, train)[0]

    # ------------------------------------------------------------------ checks
    def _check_input(self, x: Any, ndim: int | tuple[int, ...], layout: str,
                     expect: Mapping[int, int] | None = None, arg: str = "x") -> np.ndarray:
        """Validate rank, dtype and fixed dimensions of an input; return it as ``self.dtype``.

        ``layout`` names the dimensions for the message, e.g. ``"(N, C, H, W)"``; ``expect`` maps
        axis -> required size. Floating inputs of another precision are converted; anything else
        (integers, booleans, complex, objects) is rejected.
        """
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise ValueError(f"{self!r}: argument {arg!r} expected a floating-point array of "
                             f"shape {layout}, got dtype {x.dtype} with shape "
                             f"{_fmt_shape(x.shape)}")
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in ranks:
            raise ValueError(f"{self!r}: argument {arg!r} expected shape {layout} "
                             f"({' or '.join(map(str, ranks))}-D), got {_fmt_shape(x.shape)}")
        for axis, size in (expect or {}).items():
            if x.shape[axis] != size:
                raise ValueError(f"{self!r}: argument {arg!r} expected shape {layout} with size "
                                 f"{size} on axis {axis}, got {_fmt_shape(x.shape)}")
        if self.dtype is not None and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return x

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            lines.append("  " + f"({name}): " + repr(child).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)


def accepts_input_grad(module: Module) -> bool:
    """Whether ``module.backward`` takes the ``input_grad`` keyword (every nanogan layer does; a
    user-defined module may not)."""
    cls = type(module)
    if cls not in _INPUT_GRAD:
        try:
            _INPUT_GRAD[cls] = "input_grad" in inspect.signature(cls.backward).parameters
        except (TypeError, ValueError):
            _INPUT_GRAD[cls] = False
    return _INPUT_GRAD[cls]


_INPUT_GRAD: dict[type, bool] = {}


def convert_entry(owner: str, key: str, value: Any, like: np.ndarray) -> np.ndarray:
    """``value`` converted to ``like``'s dtype for a state-dict copy, or ValueError naming ``key``.

    The shape must match exactly; floating-point destinations take floating-point values only and
    integer destinations integer values only (no bool, string, object or complex casts).
    """
    try:
        src = np.asarray(value)
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
    dy = np.asarray(dy)
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
