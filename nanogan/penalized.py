"""A GAN whose critic step adds a gradient penalty: WGAN-GP (Gulrajani et al. 2017) and R1
(Mescheder et al. 2018), with the penalties of :mod:`nanogan.penalties`.

The critic's step is the one of :meth:`nanogan.GAN.d_step` with one more term::

    L_D = loss.d_loss(D(x), D(G(z))) + P
    "gp": P = weight * mean_n (||dD(x_hat_n)/dx_hat_n|| - 1)^2,
          x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1) per sample      (WGAN-GP)
    "r1": P = weight / 2 * mean_n ||dD(x_n)/dx_n||^2 on the real batch  (R1, gamma = weight)

    D.zero_grad(); D.backward(dL/ds_real); D.backward(dL/ds_fake)
    P = penalty(D, ...)        ADDS dP/dtheta_D into D.grads (a gradient of a gradient)
    d_opt.step()

The generator's step is unchanged. The interpolation weights ``eps`` come from the training
loop's random generator (the one :meth:`step` is given), so a resumed run draws the same ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._memory import pooled
from .backend import asarray, xp
from .gan import GAN, _mean_sigmoid, _no_input_grad
from .layers import Module

__all__ = ["PENALTIES", "PenalizedGAN"]

PENALTIES = ("gp", "r1")


class PenalizedGAN(GAN):
    """:class:`nanogan.GAN` with a gradient penalty in every critic step.

    Parameters
    ----------
    generator, discriminator, loss, g_opt, d_opt, k, clip, z_shape, noise : as
        :class:`nanogan.GAN` (the discriminator must not hold BatchNorm)
    penalty : ``"gp"`` (WGAN-GP, on interpolates of real and fake) or ``"r1"`` (on real data)
    penalty_weight : WGAN-GP's ``lambda`` or R1's ``gamma`` (10 in both papers)

    Notes
    -----
    :meth:`d_step` returns, beside :meth:`GAN.d_step`'s entries, ``penalty`` (``P``) and
    ``critic_loss`` (the loss without ``P``); ``d_loss`` includes ``P``.
    """

    def __init__(self, generator: Module, discriminator: Module, loss: Any = "wasserstein",
                 g_opt: Any = None, d_opt: Any = None, k: int = 1, clip: float | None = None,
                 *, penalty: str = "gp", penalty_weight: float = 10.0,
                 z_shape: tuple[int, ...] | None = None, noise: str = "normal") -> None:
        if penalty not in PENALTIES:
            raise ValueError(f"PenalizedGAN: penalty must be one of {PENALTIES}, got {penalty!r}")
        if not penalty_weight >= 0:
            raise ValueError(f"PenalizedGAN: penalty_weight must be >= 0, got {penalty_weight}")
        from .penalties import _check_critic

        _check_critic(discriminator, "PenalizedGAN")  # BatchNorm or a layer without jvp: now
        super().__init__(generator, discriminator, loss, g_opt, d_opt, k, clip, z_shape=z_shape,
                         noise=noise)
        self.penalty, self.penalty_weight = penalty, float(penalty_weight)
        self._rng: np.random.Generator | None = None

    @pooled
    def d_step(self, x_real: np.ndarray, z: np.ndarray,
               rng: np.random.Generator | None = None) -> dict[str, float]:
        """One critic update: the loss's gradient, plus the penalty's, then the optimizer step.

        ``rng`` draws WGAN-GP's interpolation weights (default: the generator :meth:`step` was
        given; required when called directly with ``penalty="gp"``).
        """
        from .penalties import gradient_penalty, interpolate, r1_penalty

        rng = rng if rng is not None else self._rng
        if rng is None and self.penalty == "gp":
            raise ValueError("PenalizedGAN.d_step: pass rng= (the source of the interpolation "
                             "weights) when calling d_step outside step()")
        x_real, z = asarray(x_real), asarray(z)  # to the device once (no-ops if already there)
        self.D.zero_grad()
        fake, _ = self.G.forward(z, train=True)
        s_real, c_real = self.D.forward(x_real, train=True)
        s_fake, c_fake = self.D.forward(fake, train=True)
        value, d_real, d_fake = self.loss.d_loss(s_real, s_fake)
        skip = _no_input_grad(self.D)
        self.D.backward(d_real, c_real, **skip)
        self.D.backward(d_fake, c_fake, **skip)
        if self.penalty == "gp":
            p = gradient_penalty(self.D, interpolate(x_real, fake, rng), self.penalty_weight)
        else:
            p = r1_penalty(self.D, x_real, self.penalty_weight)
        self.d_opt.step()
        if self.clip is not None:
            for q in self.D.params.values():
                xp.clip(q, -self.clip, self.clip, out=q)
        return {
            "d_loss": float(value) + p,
            "critic_loss": float(value),
            "penalty": p,
            "D_x": _mean_sigmoid(s_real),
            "D_G_z": _mean_sigmoid(s_fake),
            "D_acc": float(((s_real > 0).sum() + (s_fake < 0).sum()) / (s_real.size + s_fake.size)),
        }

    @pooled
    def step(self, real_batches: Any, rng: np.random.Generator) -> dict[str, float]:
        """:meth:`GAN.step`, the penalty's random draws taken from ``rng``."""
        self._rng = rng
        try:
            return super().step(real_batches, rng)
        finally:
            self._rng = None

    #: history entries :func:`nanogan.train.train` records beside its own
    history_keys = ("critic_loss", "penalty")

    def config(self) -> dict[str, Any]:
        """What a checkpoint stores beyond :func:`nanogan.train.gan_config`."""
        return {"type": "PenalizedGAN",
                "type_kwargs": {"penalty": self.penalty, "penalty_weight": self.penalty_weight}}
