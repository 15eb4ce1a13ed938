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

Parameters, their gradients and buffers live in plain dicts of arrays of the active backend
(NumPy's by default; see :mod:`nanogan.backend`: layers compute with ``xp``, the backend's
namespace, which is NumPy unless set otherwise). The arrays are never rebound, only updated in
place, so an optimizer may hold on to them. ``state_dict()`` returns NumPy copies whatever the
backend.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..backend import asarray, to_numpy, xp

# Argument checks and conversions live beside the contract (checks.py); layers import them here.
from .checks import (  # noqa: F401
    _fmt_shape,
    as_dtype,
    as_rng,
    check_dy,
    check_real,
    check_sizes,
    convert_entry,
    reserve,
    size_limit,
)


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
        value = xp.ascontiguousarray(asarray(value))  # on the active backend (nanogan.backend)
        self._params[name] = value
        self._grads[name] = xp.zeros_like(value)
        return value

    def add_buffer(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a persistent, non-trainable array (kept in ``state_dict``)."""
        value = asarray(value)
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
                out[prefix + k] = to_numpy(v).copy()
            for k, v in m._buffers.items():
                out[prefix + k] = to_numpy(v).copy()
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
            dst[...] = asarray(src)

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
        x = asarray(x)
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
