"""GAN losses on raw discriminator scores (logits), with their gradients by hand.

The discriminator ends in a linear layer; its output ``s`` is a logit, and ``sigma(s)`` (the
logistic function) is the probability it gives to "real". Every loss here takes logits, never
probabilities, so that it can be written in a form that cannot overflow::

    -log sigma(s)      = softplus(-s)          d/ds = -sigma(-s)
    -log(1 - sigma(s)) = softplus(s)           d/ds =  sigma(s)

with ``softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``, whose derivative is
``sigma(x)``. The minimax and non-saturating losses get value and gradient from one pass of the
kernel op ``ops.bce_with_logits`` (the others use ``ops.softplus`` and ``ops.sigmoid``); all stay
finite for any finite logit (``|s| = 1e4`` in float32 included).

Usage::

    loss = nanogan.losses.get("nonsaturating")
    value, d_real, d_fake = loss.d_loss(real_logits, fake_logits)  # discriminator, to descend
    value, d_fake = loss.g_loss(fake_logits)                       # generator, to descend

Every loss is a mean over all elements of each logits array (shape ``(N,)`` or ``(N, 1)``), so
each gradient is the elementwise derivative divided by that array's size ``N``. Values are Python
floats (accumulated in float64); gradients are arrays of the logits' shape and dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._kernels import ops
from .backend import asarray, xp

__all__ = [
    "LOSSES", "LSGAN", "GANLoss", "Hinge", "Minimax", "NonSaturating", "Wasserstein",
    "bce_with_logits", "get",
]


def _as_logits(x: Any, owner: str, arg: str) -> np.ndarray:
    """Validate a logits array: floating dtype, at least one element; return it contiguous."""
    a = asarray(x)  # on the active backend (nanogan.backend)
    if a.dtype.kind != "f":
        raise ValueError(f"{owner}: argument {arg!r} must be a floating-point array of logits, "
                         f"got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{owner}: argument {arg!r} expected shape (N,) or (N, 1) with N >= 1, "
                         f"got {a.shape}")
    return xp.ascontiguousarray(a)


def _mean(a: np.ndarray) -> float:
    """Mean of all elements, accumulated in float64, as a Python float."""
    return float(xp.mean(a, dtype=np.float64))


def bce_with_logits(logits: np.ndarray, target: np.ndarray | float
                    ) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on logits, averaged over all elements (PyTorch's
    ``binary_cross_entropy_with_logits`` with ``reduction="mean"``).

    Parameters
    ----------
    logits : ndarray, any shape S (typically (N,) or (N, 1)), float32 or float64
    target : ndarray broadcastable to S, or a float; values in [0, 1]

    Returns
    -------
    value : float, ``mean(-t log sigma(s) - (1 - t) log(1 - sigma(s)))``
    grad : ndarray, shape S, dtype of ``logits``: ``dvalue/ds``

    Equations
    ---------
    ::

        l(s, t)  = t softplus(-s) + (1 - t) softplus(s)     (no cancellation for t in {0, 1})
        dl/ds    = -t sigma(-s) + (1 - t) sigma(s) = sigma(s) - t
        grad     = (sigma(s) - t) / N                        N = number of elements of s
    """
    s = _as_logits(logits, "bce_with_logits", "logits")
    t = xp.broadcast_to(asarray(target, dtype=s.dtype), s.shape)
    per = t * ops.softplus(-s) + (1 - t) * ops.softplus(s)
    grad = (ops.sigmoid(s) - t) / s.dtype.type(s.size)
    return _mean(per), grad.astype(s.dtype, copy=False)


class GANLoss:
    """Base class: a discriminator loss and a generator loss on logits.

    Subclasses implement :meth:`d_loss` and :meth:`g_loss`; both return the value to descend and
    the gradient with respect to each logits array, of the same shape and dtype.
    """

    name: str = ""

    def _check(self, x: Any, arg: str) -> np.ndarray:
        return _as_logits(x, repr(self), arg)

    def d_loss(self, real_logits: np.ndarray, fake_logits: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray]:
        """Discriminator loss.

        Parameters
        ----------
        real_logits : (N,) or (N, 1), scores of real samples
        fake_logits : (M,) or (M, 1), scores of generated samples

        Returns
        -------
        value : float; d_real : shape of ``real_logits``; d_fake : shape of ``fake_logits``
        """
        raise NotImplementedError

    def g_loss(self, fake_logits: np.ndarray) -> tuple[float, np.ndarray]:
        """Generator loss.

        Parameters
        ----------
        fake_logits : (M,) or (M, 1), the discriminator's scores of generated samples

        Returns
        -------
        value : float; d_fake : shape and dtype of ``fake_logits``
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _size(s: np.ndarray) -> np.floating:
    """``N``, the number of elements of ``s``, as a scalar of its dtype (the mean's divisor)."""
    return s.dtype.type(s.size)


class Minimax(GANLoss):
    """The original minimax GAN loss (Goodfellow et al., 2014).

    ``D = -mean log sigma(s_real) - mean log(1 - sigma(s_fake))``,
    ``G = mean log(1 - sigma(s_fake))`` (the generator descends what the discriminator ascends).

    The generator loss saturates: its gradient ``-sigma(s_fake) / M`` vanishes when the
    discriminator confidently rejects the fakes (``s_fake << 0``), which is exactly the situation
    early in training. :class:`NonSaturating` exists for that reason.
    """

    name = "minimax"

    def d_loss(self, real_logits: np.ndarray, fake_logits: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray]:
        """``D = mean softplus(-s_real) + mean softplus(s_fake)``.

        Parameters
        ----------
        real_logits : (N,) or (N, 1); fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_real : (N,) or (N, 1); d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            -log sigma(s)      = softplus(-s)
            -log(1 - sigma(s)) = softplus(s)
            dD/ds_real = -sigma(-s_real) / N        dD/ds_fake = sigma(s_fake) / M
        """
        sr, sf = self._check(real_logits, "real_logits"), self._check(fake_logits, "fake_logits")
        v_real, d_real = ops.bce_with_logits(sr, 1.0)   # value and gradient in one pass
        v_fake, d_fake = ops.bce_with_logits(sf, 0.0)
        return v_real + v_fake, d_real, d_fake

    def g_loss(self, fake_logits: np.ndarray) -> tuple[float, np.ndarray]:
        """``G = mean log(1 - sigma(s_fake)) = -mean softplus(s_fake)``.

        Parameters
        ----------
        fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dG/ds_fake = -sigma(s_fake) / M    (-> 0 as s_fake -> -inf: the saturation)
        """
        sf = self._check(fake_logits, "fake_logits")
        value, d_fake = ops.bce_with_logits(sf, 0.0)
        return -value, -d_fake


class NonSaturating(Minimax):
    """The non-saturating GAN loss: the minimax discriminator, a different generator loss.

    ``D`` as :class:`Minimax`; ``G = -mean log sigma(s_fake)``.

    Why it exists: the minimax generator loss ``log(1 - sigma(s))`` has gradient ``-sigma(s)``,
    which vanishes when the discriminator confidently rejects the fakes (``s << 0``), and that is
    exactly the state early in training, when the samples are poor. Maximising ``log sigma(s)``
    instead has the same fixed point but gradient ``-sigma(-s) -> -1`` there: a strong signal
    when the generator is losing.
    """

    name = "nonsaturating"

    def g_loss(self, fake_logits: np.ndarray) -> tuple[float, np.ndarray]:
        """``G = -mean log sigma(s_fake) = mean softplus(-s_fake)``.

        Parameters
        ----------
        fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dG/ds_fake = -sigma(-s_fake) / M    (-> -1/M as s_fake -> -inf: no saturation)
        """
        sf = self._check(fake_logits, "fake_logits")
        return ops.bce_with_logits(sf, 1.0)


class Wasserstein(GANLoss):
    """The Wasserstein GAN loss (Arjovsky et al., 2017); the scores are critic values.

    ``D = mean s_fake - mean s_real``, ``G = -mean s_fake``. The critic must be kept Lipschitz
    (e.g. by weight clipping, ``GAN(..., clip=0.01)``) for ``-D`` to estimate a distance.
    """

    name = "wasserstein"

    def d_loss(self, real_logits: np.ndarray, fake_logits: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray]:
        """``D = mean s_fake - mean s_real``.

        Parameters
        ----------
        real_logits : (N,) or (N, 1); fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_real : (N,) or (N, 1); d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dD/ds_real = -1 / N        dD/ds_fake = 1 / M
        """
        sr, sf = self._check(real_logits, "real_logits"), self._check(fake_logits, "fake_logits")
        value = _mean(sf) - _mean(sr)
        d_real = xp.full(sr.shape, -1 / _size(sr), dtype=sr.dtype)
        d_fake = xp.full(sf.shape, 1 / _size(sf), dtype=sf.dtype)
        return value, d_real, d_fake

    def g_loss(self, fake_logits: np.ndarray) -> tuple[float, np.ndarray]:
        """``G = -mean s_fake``.

        Parameters
        ----------
        fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dG/ds_fake = -1 / M
        """
        sf = self._check(fake_logits, "fake_logits")
        return -_mean(sf), xp.full(sf.shape, -1 / _size(sf), dtype=sf.dtype)


class LSGAN(GANLoss):
    """The least-squares GAN loss (Mao et al., 2017) with targets 1 (real) and 0 (fake).

    ``D = 0.5 mean (s_real - 1)^2 + 0.5 mean s_fake^2``, ``G = 0.5 mean (s_fake - 1)^2``.
    """

    name = "lsgan"

    def d_loss(self, real_logits: np.ndarray, fake_logits: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray]:
        """``D = 0.5 mean (s_real - 1)^2 + 0.5 mean s_fake^2``.

        Parameters
        ----------
        real_logits : (N,) or (N, 1); fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_real : (N,) or (N, 1); d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dD/ds_real = (s_real - 1) / N        dD/ds_fake = s_fake / M
        """
        sr, sf = self._check(real_logits, "real_logits"), self._check(fake_logits, "fake_logits")
        er = sr - 1
        value = 0.5 * _mean(xp.square(er, dtype=np.float64)) \
            + 0.5 * _mean(xp.square(sf, dtype=np.float64))
        return value, er / _size(sr), sf / _size(sf)

    def g_loss(self, fake_logits: np.ndarray) -> tuple[float, np.ndarray]:
        """``G = 0.5 mean (s_fake - 1)^2``.

        Parameters
        ----------
        fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dG/ds_fake = (s_fake - 1) / M
        """
        sf = self._check(fake_logits, "fake_logits")
        ef = sf - 1
        return 0.5 * _mean(xp.square(ef, dtype=np.float64)), ef / _size(sf)


class Hinge(GANLoss):
    """The hinge GAN loss (Lim & Ye, 2017; Miyato et al., 2018).

    ``D = mean relu(1 - s_real) + mean relu(1 + s_fake)``, ``G = -mean s_fake``.
    """

    name = "hinge"

    def d_loss(self, real_logits: np.ndarray, fake_logits: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray]:
        """``D = mean relu(1 - s_real) + mean relu(1 + s_fake)``.

        Parameters
        ----------
        real_logits : (N,) or (N, 1); fake_logits : (M,) or (M, 1)

        Returns
        -------
        value : float; d_real : (N,) or (N, 1); d_fake : (M,) or (M, 1)

        Equations
        ---------
        ::

            dD/ds_real = -[1 - s_real > 0] / N     dD/ds_fake = [1 + s_fake > 0] / M
            (the derivative of relu at 0 is taken as 0, as PyTorch)
        """
        sr, sf = self._check(real_logits, "real_logits"), self._check(fake_logits, "fake_logits")
        mr, mf = 1 - sr, 1 + sf
        value = _mean(xp.maximum(mr, 0)) + _mean(xp.maximum(mf, 0))
        d_real = xp.where(mr > 0, -1 / _size(sr), sr.dtype.type(0)).astype(sr.dtype, copy=False)
        d_fake = xp.where(mf > 0, 1 / _size(sf), sf.dtype.type(0)).astype(sf.dtype, copy=False)
        return value, d_real, d_fake

    #: The generator loss is the Wasserstein one, ``G = -mean s_fake`` (gradient ``-1/M``): past
    #: the margin D keeps scoring, so G keeps being pushed toward higher scores.
    g_loss = Wasserstein.g_loss


#: Loss name -> class, the names :func:`get` accepts.
LOSSES: dict[str, type[GANLoss]] = {
    cls.name: cls for cls in (Minimax, NonSaturating, Wasserstein, LSGAN, Hinge)
}


def get(name: str | GANLoss) -> GANLoss:
    """The loss called ``name`` (a :class:`GANLoss` instance is returned as it is).

    Parameters
    ----------
    name : one of ``"minimax"``, ``"nonsaturating"``, ``"wasserstein"``, ``"lsgan"``, ``"hinge"``

    Raises
    ------
    ValueError
        for any other name, listing the choices.
    """
    if isinstance(name, GANLoss):
        return name
    cls = LOSSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown GAN loss {name!r}; choose one of {', '.join(LOSSES)}")
    return cls()
