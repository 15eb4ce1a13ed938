"""Remedies for a discriminator that is too strong: instance noise, an ensemble of discriminators.

When ``p_data`` and ``p_g`` barely overlap, a discriminator can separate them almost perfectly;
then ``D(G(z)) -> 0`` and the minimax generator's gradient ``-sigma(s) dD/dx`` vanishes (Arjovsky &
Bottou 2017). Two ways to keep the teacher informative, both usable wherever a discriminator
Module is (:class:`nanogan.GAN` included):

* :class:`InstanceNoise` (Sønderby et al. 2017; Arjovsky & Bottou 2017): D sees ``x + sigma eps``
  for real and fake alike, i.e. it compares ``p_data * N(0, sigma^2)`` with
  ``p_g * N(0, sigma^2)``, whose supports overlap; ``sigma`` is annealed to 0 over training.
* :class:`DiscriminatorEnsemble`: several discriminators of increasing capacity scored side by
  side; since every nanogan loss is a mean over all logits, the ensemble's loss is the mean of the
  members' losses, and a weak member still gives a useful gradient when a strong one saturates.

:func:`noisy_loss_profile` uses the same idea as a measure of sample quality: logistic regressions
trained on real-vs-fake with input noise ``sigma`` from large to 0. The loss of each (``log 4``
when the two are indistinguishable at that noise level, less the more they differ) traces how far
apart the distributions are, at every scale, even where a single noiseless classifier would have
saturated at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import losses as _losses
from .backend import asarray, to_numpy, xp
from .layers import Dense, LeakyReLU, Module, Sequential
from .layers.base import accepts_input_grad, as_rng
from .optim import Adam

__all__ = [
    "DiscriminatorEnsemble", "InstanceNoise", "increasing_capacity_ensemble", "linear_anneal",
    "noisy_loss_profile",
]


def linear_anneal(step: int, start: float, end: float = 0.0, steps: int = 1000) -> float:
    """``start -> end`` linearly over ``steps`` steps, then ``end``.

    Equations
    ---------
    ::

        sigma_t = start + (end - start) min(t / steps, 1)
    """
    if steps <= 0:
        return float(end)
    frac = min(max(step, 0) / steps, 1.0)
    return float(start + (end - start) * frac)


class InstanceNoise(Module):
    """``D(x + sigma_t eps)``, ``eps ~ N(0, I)``, ``sigma_t`` annealed linearly to ``sigma_end``.

    Wraps a discriminator; its parameters appear under the prefix ``"module."`` (as PyTorch's
    wrappers do). Noise is added only in training mode, freshly at every forward pass, to real and
    fake inputs alike (the generator's step, too, sees the noisy discriminator). Call
    :meth:`set_step` with the training step (e.g. ``GAN.steps``) to advance the schedule.

    Parameters
    ----------
    module : the discriminator, ``(N, *shape) -> logits``
    sigma : noise standard deviation at step 0
    sigma_end : noise standard deviation after ``anneal_steps`` steps
    anneal_steps : length of the linear schedule (0: always ``sigma_end``)
    rng : generator or seed of the noise

    Equations
    ---------
    ::

        forward    y = D(x + sigma_t eps)
        backward   dL/dx = dL/d(x + sigma_t eps)       (the noise is additive: Jacobian I)
                   dL/dtheta_D as D's backward at the noisy input
    """

    def __init__(self, module: Module, sigma: float = 1.0, sigma_end: float = 0.0,
                 anneal_steps: int = 1000, *, rng: np.random.Generator | int | None = None
                 ) -> None:
        super().__init__()
        if sigma < 0 or sigma_end < 0:
            raise ValueError(f"InstanceNoise: sigma and sigma_end must be >= 0, got {sigma}, "
                             f"{sigma_end}")
        self.add_module("module", module)
        self.sigma0, self.sigma_end, self.anneal_steps = float(sigma), float(sigma_end), \
            int(anneal_steps)
        self.rng = as_rng(rng)
        self.t = 0

    @property
    def module(self) -> Module:
        return self._children["module"]

    def set_step(self, t: int) -> None:
        """Move the schedule to step ``t``."""
        self.t = int(t)

    @property
    def sigma(self) -> float:
        """The current noise level ``sigma_t``."""
        return linear_anneal(self.t, self.sigma0, self.sigma_end, self.anneal_steps)

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, Any]:
        """``x (N, *shape) -> D(x + sigma_t eps)``; the cache is the wrapped module's."""
        x = asarray(x)
        sigma = self.sigma
        if train and sigma > 0:  # drawn on the host (nanogan.backend), moved to x's backend
            eps = (sigma * self.rng.standard_normal(x.shape)).astype(x.dtype, copy=False)
            x = x + asarray(eps)
        return self.module.forward(x, train)

    def backward(self, dy: np.ndarray, cache: Any, *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """``dL/dx = dL/d(x + sigma eps)``: the wrapped module's backward, passed through."""
        kw = {"input_grad": input_grad} if accepts_input_grad(self.module) else {}
        return self.module.backward(dy, cache, param_grads=param_grads, **kw)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma0}, sigma_end={self.sigma_end}, anneal_steps={self.anneal_steps}"

    def __repr__(self) -> str:
        inner = repr(self.module).replace("\n", "\n  ")
        return f"InstanceNoise({self.extra_repr()}, t={self.t},\n  (module): {inner}\n)"


class DiscriminatorEnsemble(Module):
    """``M`` discriminators side by side: ``x (N, ...) -> logits (N, M)``, one column per member.

    Every nanogan loss is the mean over all elements of its logits array, so a loss of the
    ensemble's ``(N, M)`` logits is the mean of the ``M`` members' losses, and its gradient splits
    column by column into the members' gradients. Use it as the discriminator of
    :class:`nanogan.GAN` (statistics such as ``d_x`` are then averaged over members too).

    Parameters
    ----------
    *members : Modules mapping the same input to logits ``(N, 1)`` or ``(N,)``; children are named
        ``"0"``, ``"1"``, ... (parameter keys ``"0.0.weight"``, ...)

    Equations
    ---------
    ::

        s        = [D_1(x), ..., D_M(x)]                      (N, M)
        L(s)     = mean_{n,i} l(s_ni) = (1/M) sum_i L_i        (L_i = member i's loss)
        dL/dx    = sum_i D_i.backward(dL/ds[:, i])             (each member's input gradient)
        dL/dtheta_i = D_i's parameter gradient from dL/ds[:, i]
    """

    def __init__(self, *members: Module) -> None:
        super().__init__()
        if not members:
            raise ValueError("DiscriminatorEnsemble: expected at least one member")
        for i, m in enumerate(members):
            self.add_module(str(i), m)

    @property
    def members(self) -> list[Module]:
        return list(self._children.values())

    def __len__(self) -> int:
        return len(self._children)

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, list[Any]]:
        """``x (N, ...) -> s (N, M)``; the cache holds each member's cache and output shape."""
        outs, caches = [], []
        for i, m in enumerate(self.members):
            y, c = m.forward(x, train)
            n = y.shape[0]
            if y.size != n:
                raise ValueError(f"DiscriminatorEnsemble: member {i} returned shape {y.shape}, "
                                 f"expected logits (N, 1) or (N,)")
            outs.append(y.reshape(n, 1))
            caches.append((c, y.shape))
        return xp.concatenate(outs, axis=1), caches

    def backward(self, dy: np.ndarray, cache: list[Any], *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Column ``i`` of ``dy (N, M)`` goes to member ``i``; input gradients are summed."""
        dy = asarray(dy)
        if dy.ndim != 2 or dy.shape[1] != len(cache):
            raise ValueError(f"DiscriminatorEnsemble.backward: argument 'dy' expected shape "
                             f"(N, {len(cache)}), got {dy.shape}")
        dx = None
        for i, (m, (c, shape)) in enumerate(zip(self.members, cache)):
            dyi = xp.ascontiguousarray(dy[:, i]).reshape(shape)
            kw = {"input_grad": input_grad} if accepts_input_grad(m) else {}
            g = m.backward(dyi, c, param_grads=param_grads, **kw)
            if input_grad:
                dx = g if dx is None else dx + g
        return dx if input_grad else None


def increasing_capacity_ensemble(inp: int, widths: Sequence[int] = (0, 8, 32, 128), *,
                                 rng: np.random.Generator | int | None = None,
                                 dtype: Any = np.float32) -> DiscriminatorEnsemble:
    """An ensemble of MLP discriminators of growing width: width 0 is a logistic regression
    (``Dense(inp, 1)``), width ``w > 0`` is ``Dense(inp, w), LeakyReLU(0.2), Dense(w, w),
    LeakyReLU(0.2), Dense(w, 1)``."""
    rng = as_rng(rng)
    members: list[Module] = []
    for w in widths:
        if w == 0:
            members.append(Sequential(Dense(inp, 1, rng=rng, dtype=dtype)))
        else:
            members.append(Sequential(
                Dense(inp, w, rng=rng, dtype=dtype), LeakyReLU(0.2),
                Dense(w, w, rng=rng, dtype=dtype), LeakyReLU(0.2),
                Dense(w, 1, rng=rng, dtype=dtype)))
    return DiscriminatorEnsemble(*members)


def noisy_loss_profile(real: np.ndarray, fake: np.ndarray,
                       sigmas: Sequence[float] = tuple(np.linspace(2.0, 0.0, 10)), *,
                       steps: int = 300, batch_size: int = 256, lr: float = 0.05,
                       eval_draws: int = 4, rng: np.random.Generator | int | None = None
                       ) -> np.ndarray:
    """Loss profile of logistic regressions trained on noisy real-vs-fake inputs.

    For each ``sigma_j`` a logistic regression ``D_j(x) = sigmoid(w . x + b)`` (a nanogan
    ``Dense(d, 1)`` in float64, Adam) is trained for ``steps`` steps on minibatches of
    ``real + sigma_j eps`` against ``fake + sigma_j eps``; its discriminator loss is then measured
    on all samples (``eval_draws`` fresh noise draws, averaged).

    Parameters
    ----------
    real : ndarray, shape ``(n, d)``, samples of p_data
    fake : ndarray, shape ``(n', d)``, samples of p_g
    sigmas : the noise levels, one classifier each (default: 10 levels from 2 down to 0)
    steps, batch_size, lr : training of each classifier
    eval_draws : noise draws averaged in the final measurement
    rng : generator or seed

    Returns
    -------
    losses : ndarray, shape ``(len(sigmas),)``, each in ``[0, log 4]`` (up to training error)

    Equations
    ---------
    ::

        L_j = -E_{p_data * N(0, sigma_j^2)} log D_j - E_{p_g * N(0, sigma_j^2)} log(1 - D_j)
            >= log 4 - 2 JSD(p_data * N(0, sigma_j^2) || p_g * N(0, sigma_j^2))

    with equality for the best classifier; for two normals of equal variance the best classifier
    IS a logistic regression, so the bound is attained. ``L_j = log 4`` means "indistinguishable
    at noise level sigma_j"; a generator whose profile is ``log 4`` at every level is perfect.
    """
    rng = as_rng(rng)
    real = np.asarray(to_numpy(real), dtype=np.float64)  # host data: the noise is drawn there
    fake = np.asarray(to_numpy(fake), dtype=np.float64)
    if real.ndim == 1:
        real = real[:, None]
    if fake.ndim == 1:
        fake = fake[:, None]
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"noisy_loss_profile: 'real' and 'fake' expected shapes (n, d) and "
                         f"(n', d), got {real.shape} and {fake.shape}")
    loss = _losses.get("minimax")
    d = real.shape[1]
    out = []
    for sigma in sigmas:
        clf = Dense(d, 1, rng=rng, dtype=np.float64)
        opt = Adam(clf, lr=lr)
        for _ in range(steps):
            xr = real[rng.integers(0, len(real), batch_size)]
            xf = fake[rng.integers(0, len(fake), batch_size)]
            xr = xr + sigma * rng.standard_normal(xr.shape)
            xf = xf + sigma * rng.standard_normal(xf.shape)
            clf.zero_grad()
            sr, cr = clf.forward(xr)
            sf, cf = clf.forward(xf)
            _, dr, df = loss.d_loss(sr, sf)
            clf.backward(dr, cr, input_grad=False)
            clf.backward(df, cf, input_grad=False)
            opt.step()
        vals = []
        for _ in range(eval_draws):
            sr = clf(real + sigma * rng.standard_normal(real.shape), train=False)
            sf = clf(fake + sigma * rng.standard_normal(fake.shape), train=False)
            vals.append(loss.d_loss(sr, sf)[0])
        out.append(float(np.mean(vals)))
    return np.array(out)
