"""Optimizers with exactly PyTorch's update rules: ``SGD``, ``Adam``, ``RMSprop``.

An optimizer holds the live parameter and gradient arrays of a model (``model.params`` and
``model.grads``; nanogan never rebinds them, only updates them in place) and per-parameter state
arrays of the parameters' dtype, on their array backend (:mod:`nanogan.backend`). Each
:meth:`Optimizer.step` calls one kernel op per parameter (``ops.sgd_update``, ``ops.adam_update``,
``ops.rmsprop_update``; see ``nanogan/_kernels/reference.py`` for the equations), which updates
the parameter and its state in place; Adam's step updates all parameters in one call
(``ops.adam_update_many``, the same equations). The op is looked up at step time, so a
kernel-set switch takes effect immediately.

Usage::

    opt = nanogan.optim.Adam(model, lr=2e-4, betas=(0.5, 0.999))
    opt.zero_grad(); y, cache = model.forward(x); model.backward(dy, cache); opt.step()

``state_dict()`` is a flat dict of NumPy arrays (``"step"``, the hyper-parameters as 0-d arrays,
``"state.<param name>.<buffer>"``), ready for ``np.savez`` whatever the backend; ``load_state_dict``
restores it (moving it to the backend) so that training continues bit for bit.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._kernels import ops
from .backend import asarray, to_numpy, xp
from .layers.base import Module, _fmt_shape, convert_entry

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop"]


class Optimizer:
    """Base class: parameter bookkeeping, state arrays, ``state_dict`` and validation.

    Parameters
    ----------
    model : a nanogan Module whose ``params`` and ``grads`` (same keys and shapes) are optimised
    lr : learning rate, ``>= 0``; a public attribute that schedules may change between steps

    Subclasses set ``_hyper`` (the names of the float hyper-parameters kept in the state dict,
    ``lr`` first), ``_buffers`` (the names of the per-parameter state arrays) and implement
    :meth:`_update`.
    """

    _hyper: tuple[str, ...] = ("lr",)
    _buffers: tuple[str, ...] = ()

    def __init__(self, model: Module, lr: float) -> None:
        if not hasattr(model, "params") or not hasattr(model, "grads"):
            raise TypeError(f"{type(self).__name__}: model must be a nanogan Module, "
                            f"got {type(model).__name__}")
        self.model = model
        self.params: dict[str, np.ndarray] = model.params
        self.grads: dict[str, np.ndarray] = model.grads
        if not self.params:
            raise ValueError(f"{type(self).__name__}: the model has no parameters to optimise")
        for name, p in self.params.items():
            g = self.grads.get(name)
            if g is None or g.shape != p.shape:
                raise ValueError(f"{type(self).__name__}: gradient of {name!r} missing or "
                                 f"misshapen (param {_fmt_shape(p.shape)})")
        self.lr = lr
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    # ------------------------------------------------------------------ hyper-parameters
    @property
    def lr(self) -> float:
        """The learning rate used by the next :meth:`step` (``>= 0``)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value < float("inf"):
            raise ValueError(f"{type(self).__name__}: invalid learning rate: {value}")
        self._lr = value

    def _alloc(self) -> None:
        """Allocate zeroed state arrays, one per buffer name and parameter, in the param dtype
        (on the parameters' backend)."""
        self.state = {name: {b: xp.zeros_like(p) for b in self._buffers}
                      for name, p in self.params.items()}

    def _validate(self) -> None:
        """Check the hyper-parameters (PyTorch's rules); raises ValueError."""

    # ------------------------------------------------------------------ the update
    def step(self) -> None:
        """Update every parameter in place from its accumulated gradient."""
        self.step_count += 1
        for name, p in self.params.items():
            self._update(p, self.grads[name], self.state[name])

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Zero the model's gradients (``model.zero_grad()``)."""
        self.model.zero_grad()

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the optimizer's state, as a flat dict that ``np.savez`` can store.

        Returns
        -------
        state : ``"step"`` (0-d int64), each hyper-parameter (0-d array) and
            ``"state.<param name>.<buffer>"`` (shape of the parameter) for every state array
        """
        out: dict[str, np.ndarray] = {"step": np.array(self.step_count, dtype=np.int64)}
        for h in self._hyper:
            out[h] = np.array(getattr(self, h))
        for name, bufs in self.state.items():
            for b, arr in bufs.items():
                out[f"state.{name}.{b}"] = to_numpy(arr).copy()  # NumPy, whatever the backend
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (or what ``np.load`` gives back of one) in place.

        Raises
        ------
        ValueError
            naming the key on a missing, unexpected or misshapen entry, or on an invalid
            hyper-parameter.
        """
        self._stage_state(state)()

    def _stage_state(self, state: Mapping[str, Any]) -> Any:
        """Check and convert ``state`` for :meth:`load_state_dict` without changing anything;
        returns the function that applies it."""
        cls = type(self).__name__
        if not isinstance(state, Mapping):
            raise ValueError(f"{cls}.load_state_dict: expected a dict of arrays, got "
                             f"{type(state).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"{cls}.load_state_dict: " + "; ".join(parts))
        owner = f"{cls}.load_state_dict"
        step = convert_entry(owner, "step", state["step"], own["step"])
        if int(step) < 0:
            raise ValueError(f"{owner}: entry 'step' must be >= 0, got {int(step)}")
        bufs = [(arr, convert_entry(owner, f"state.{name}.{b}", state[f"state.{name}.{b}"], arr))
                for name, d in self.state.items() for b, arr in d.items()]
        hyper = {}
        for h in self._hyper:
            ref = own[h]
            kind = "b" if ref.dtype.kind == "b" else "f"
            v = np.asarray(state[h])
            if v.shape != () or (v.dtype.kind not in ("b" if kind == "b" else "fiu")):
                raise ValueError(f"{owner}: entry {h!r} expected a {ref.dtype} scalar, got "
                                 f"{v.dtype} {v.shape}")
            hyper[h] = type(getattr(self, h))(v.item())
        saved = {h: getattr(self, h) for h in self._hyper}
        try:  # validate the hyper-parameters with this class's own rules, then put back
            for h, v in hyper.items():
                try:
                    setattr(self, h, v)
                except ValueError as e:
                    raise ValueError(f"entry {h!r}: {e}") from None
            self._validate()
        except ValueError as e:
            raise ValueError(f"{owner}: {e}") from None
        finally:
            for h, v in saved.items():
                setattr(self, h, v)

        def commit() -> None:
            for h, v in hyper.items():
                setattr(self, h, v)
            self.step_count = int(step)
            for arr, src in bufs:
                arr[...] = asarray(src)  # to the parameters' backend

        return commit

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments (all but ``model``) that rebuild this optimizer."""
        names = [n for n in inspect.signature(type(self).__init__).parameters
                 if n not in ("self", "model")]
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        hyper = ", ".join(f"{h}={getattr(self, h)!r}" for h in self._hyper)
        return f"{type(self).__name__}({hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    Parameters
    ----------
    model : nanogan Module
    lr : learning rate, ``>= 0``
    momentum : ``>= 0``; 0 is plain SGD (no state is kept)
    nesterov : Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``
    weight_decay : L2 penalty ``>= 0`` added to the gradient
    dampening : ``(1 - dampening)`` scales the gradient entering the momentum buffer

    State: ``momentum_buffer`` per parameter (only when ``momentum > 0``).
    """

    _hyper = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, model: Module, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0) -> None:
        super().__init__(model, lr)
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)
        self._validate()
        self._buffers = ("momentum_buffer",) if self.momentum != 0 else ()
        self._alloc()

    def _validate(self) -> None:
        if not 0.0 <= self.momentum:
            raise ValueError(f"SGD: invalid momentum value: {self.momentum}")
        if not 0.0 <= self.weight_decay:
            raise ValueError(f"SGD: invalid weight_decay value: {self.weight_decay}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={self.momentum}, dampening={self.dampening})")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """One SGD step on one parameter.

        Equations
        ---------
        ::

            g   = g + weight_decay * p
            buf = g                                    (first step)
            buf = momentum * buf + (1 - dampening) g   (later steps)
            d   = g + momentum * buf if nesterov else buf     (d = g without momentum)
            p  -= lr * d
        """
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = xp.empty(0, dtype=p.dtype)  # unused: the kernel skips momentum when it is 0
        ops.sgd_update(p, g, buf, self.lr, self.momentum if buf.size else 0.0, self.dampening,
                       self.nesterov, self.weight_decay, self.step_count == 1)


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay, as ``torch.optim.Adam`` (not AdamW).

    Parameters
    ----------
    model : nanogan Module
    lr : learning rate, ``>= 0``
    betas : ``(beta1, beta2)``, each in ``[0, 1)``: decay rates of the first and second moments
    eps : ``>= 0``, added to the denominator
    weight_decay : L2 penalty ``>= 0`` added to the gradient

    State: ``exp_avg`` and ``exp_avg_sq`` per parameter; the step count ``t`` is shared.
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, model: Module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(model, lr)
        if len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self._validate()
        self._alloc()

    @property
    def betas(self) -> tuple[float, float]:
        """``(beta1, beta2)``, as PyTorch's ``param_groups[0]["betas"]``."""
        return (self.beta1, self.beta2)

    def _validate(self) -> None:
        if not 0.0 <= self.eps:
            raise ValueError(f"Adam: invalid epsilon value: {self.eps}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ValueError(f"Adam: invalid beta parameter at index 0: {self.beta1}")
        if not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"Adam: invalid beta parameter at index 1: {self.beta2}")
        if not 0.0 <= self.weight_decay:
            raise ValueError(f"Adam: invalid weight_decay value: {self.weight_decay}")

    def step(self) -> None:
        """Update every parameter in place by :meth:`_update`'s equations, all of them in one
        kernel call (``ops.adam_update_many``: one parallel loop over the model's parameters in
        the compiled sets, the same values as one call per parameter). A subclass with its own
        :meth:`_update` is stepped through it, one parameter at a time."""
        if type(self)._update is not Adam._update:
            return super().step()
        self.step_count += 1
        names, state = list(self.params), self.state
        ops.adam_update_many([self.params[n] for n in names], [self.grads[n] for n in names],
                             [state[n]["exp_avg"] for n in names],
                             [state[n]["exp_avg_sq"] for n in names], self.lr, self.beta1,
                             self.beta2, self.eps, self.weight_decay, self.step_count)
        return None

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """One Adam step on one parameter (``t`` = steps taken, this one included).

        Equations
        ---------
        ::

            g  = g + weight_decay * p
            m  = beta1 m + (1 - beta1) g           v = beta2 v + (1 - beta2) g^2
            p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
        """
        ops.adam_update(p, g, state["exp_avg"], state["exp_avg_sq"], self.lr, self.beta1,
                        self.beta2, self.eps, self.weight_decay, self.step_count)


class RMSprop(Optimizer):
    """RMSprop (no momentum, not centred), as ``torch.optim.RMSprop``.

    Parameters
    ----------
    model : nanogan Module
    lr : learning rate, ``>= 0``
    alpha : ``>= 0``, decay rate of the running mean of squared gradients
    eps : ``>= 0``, added to the denominator
    weight_decay : L2 penalty ``>= 0`` added to the gradient

    State: ``square_avg`` per parameter.
    """

    _hyper = ("lr", "alpha", "eps", "weight_decay")
    _buffers = ("square_avg",)

    def __init__(self, model: Module, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(model, lr)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self._validate()
        self._alloc()

    def _validate(self) -> None:
        if not 0.0 <= self.eps:
            raise ValueError(f"RMSprop: invalid epsilon value: {self.eps}")
        if not 0.0 <= self.alpha:
            raise ValueError(f"RMSprop: invalid alpha value: {self.alpha}")
        if not 0.0 <= self.weight_decay:
            raise ValueError(f"RMSprop: invalid weight_decay value: {self.weight_decay}")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """One RMSprop step on one parameter.

        Equations
        ---------
        ::

            g  = g + weight_decay * p
            sq = alpha sq + (1 - alpha) g^2
            p -= lr * g / (sqrt(sq) + eps)
        """
        ops.rmsprop_update(p, g, state["square_avg"], self.lr, self.alpha, self.eps,
                           self.weight_decay)
