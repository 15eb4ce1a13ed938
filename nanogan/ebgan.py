"""Energy-based GAN (Zhao, Mathieu & LeCun 2017): an autoencoder as the discriminator.

The discriminator assigns every sample an *energy*, low on data and high elsewhere. EBGAN's
discriminator is an autoencoder, and the energy is its per-sample reconstruction error::

    D(x) = mean_p (Dec(Enc(x))_p - x_p)^2          (P = number of features p of one sample)

Trained with a margin ``m > 0`` (hinge on the fakes' energy), the two players descend::

    L_D = mean_i D(x_i) + mean_j max(0, m - D(G(z_j)))
    L_G = mean_j D(G(z_j))  [+ lambda_PT f_PT(S)]

so D learns to reconstruct data well and to reconstruct fakes badly, but gets no reward for
pushing a fake's energy past ``m``; G makes its samples easy to reconstruct. At the equilibrium of
the paper's Theorem 2 the generator matches the data distribution.

The *pull-away term* (PT) is a repelling regulariser on the encoder's codes ``S = Enc(G(z))``
(``s_i`` one row per generated sample), added to the generator's loss to discourage many samples
from mapping to one code (mode collapse)::

    f_PT(S) = 1/(N(N-1)) sum_{i != j} (s_i . s_j / (||s_i|| ||s_j||))^2

This module has the losses (:func:`margin_d_loss`, :func:`ebgan_g_loss`, :func:`pull_away`), the
energy (:func:`reconstruction_energy`), and :class:`AutoencoderEnergy`, a module that runs
``encoder`` then ``decoder`` and returns the energy (its backward also takes a gradient on the
codes, for the pull-away term). Every gradient is written out in its docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import asarray, xp
from .layers.base import Module, accepts_input_grad

__all__ = ["AutoencoderEnergy", "ebgan_g_loss", "margin_d_loss", "pull_away",
           "reconstruction_energy"]


def _as_vector(a: Any, owner: str, arg: str) -> np.ndarray:
    v = asarray(a)
    if v.dtype.kind != "f":
        raise ValueError(f"{owner}: argument {arg!r} expected a floating-point array of shape "
                         f"(N,), got dtype {v.dtype}")
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{owner}: argument {arg!r} expected shape (N,) with N >= 1 (one energy "
                         f"per sample), got {v.shape}")
    return v


def reconstruction_energy(x: np.ndarray, x_rec: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean squared reconstruction error, and its derivative.

    Parameters
    ----------
    x : (N, *) samples; x_rec : (N, *) reconstructions, same shape

    Returns
    -------
    energy : (N,), ``E_n = mean_p (x_rec[n, p] - x[n, p])^2``
    g : same shape as ``x``, ``g = dE_n/dx_rec[n] = 2 (x_rec[n] - x[n]) / P``
        (and ``dE_n/dx[n] = -g``)

    Equations
    ---------
    ::

        E_n         = 1/P sum_p (x_rec[n, p] - x[n, p])^2        P = prod(shape[1:])
        dE_n/dx_rec = 2 (x_rec - x) / P
        dE_n/dx     = -2 (x_rec - x) / P                          (x as the target)
    """
    x, x_rec = asarray(x), asarray(x_rec)
    if x.shape != x_rec.shape or x.ndim < 2:
        raise ValueError(f"reconstruction_energy: arguments 'x' and 'x_rec' expected the same "
                         f"shape (N, *), got {x.shape} and {x_rec.shape}")
    diff = x_rec - x
    P = diff[0].size
    energy = xp.mean(xp.square(diff).reshape(len(diff), -1), axis=1)
    return energy, diff * diff.dtype.type(2.0 / P)


def margin_d_loss(e_real: np.ndarray, e_fake: np.ndarray, margin: float
                  ) -> tuple[float, np.ndarray, np.ndarray]:
    """EBGAN's discriminator loss on energies.

    Parameters
    ----------
    e_real : (N,), energies D(x) of data
    e_fake : (M,), energies D(G(z)) of generated samples
    margin : m > 0

    Returns
    -------
    value : float; d_real : (N,); d_fake : (M,) (dtypes of the inputs)

    Equations
    ---------
    ::

        L_D          = mean_i e_real[i] + mean_j max(0, m - e_fake[j])
        dL_D/de_real = 1 / N
        dL_D/de_fake = -[m - e_fake > 0] / M      (0 at the kink, as PyTorch's relu)
    """
    er = _as_vector(e_real, "margin_d_loss", "e_real")
    ef = _as_vector(e_fake, "margin_d_loss", "e_fake")
    if not margin > 0:
        raise ValueError(f"margin_d_loss: margin must be positive, got {margin}")
    gap = margin - ef
    value = float(xp.mean(er, dtype=np.float64) + xp.mean(xp.maximum(gap, 0), dtype=np.float64))
    d_real = xp.full(er.shape, 1.0 / er.size, dtype=er.dtype)
    d_fake = xp.where(gap > 0, -1.0 / ef.size, 0.0).astype(ef.dtype)
    return value, d_real, d_fake


def ebgan_g_loss(e_fake: np.ndarray) -> tuple[float, np.ndarray]:
    """EBGAN's generator loss: the mean energy of its samples.

    Parameters
    ----------
    e_fake : (M,), energies D(G(z))

    Returns
    -------
    value : float; d_fake : (M,)

    Equations
    ---------
    ::

        L_G = mean_j e_fake[j]          dL_G/de_fake = 1 / M
    """
    ef = _as_vector(e_fake, "ebgan_g_loss", "e_fake")
    return float(xp.mean(ef, dtype=np.float64)), xp.full(ef.shape, 1.0 / ef.size, dtype=ef.dtype)


def pull_away(s: np.ndarray, eps: float = 1e-12) -> tuple[float, np.ndarray]:
    """The pull-away term of a batch of codes and its gradient.

    Parameters
    ----------
    s : (N, C) codes (N >= 2); a code of higher rank is flattened to (N, C)
    eps : added under the square root of each norm, so a zero code gives no division by zero

    Returns
    -------
    value : float, ``f_PT(s)``
    ds : same shape and dtype as ``s``

    Equations
    ---------
    ::

        r_i   = sqrt(||s_i||^2 + eps),   u_i = s_i / r_i          (unit rows)
        C     = U U^T,  C_ij = u_i . u_j                            (cosine similarities)
        f_PT  = 1/(N(N-1)) sum_{i != j} C_ij^2

        df/du_i = 4/(N(N-1)) sum_{j != i} C_ij u_j      (C_ij appears as (i, j) and (j, i))
                = 4/(N(N-1)) (C0 U)_i                   C0 = C with its diagonal zeroed
        df/ds_i = df/du_i / r_i - s_i (s_i . df/du_i) / r_i^3       (through u = s / r)
    """
    a = asarray(s)
    if a.dtype.kind != "f" or a.ndim < 2 or len(a) < 2:
        raise ValueError(f"pull_away: argument 's' expected a floating-point array of shape "
                         f"(N, C) with N >= 2, got {a.dtype} {a.shape}")
    x = a.reshape(len(a), -1).astype(np.float64)
    N = len(x)
    r = xp.sqrt(xp.einsum("ij,ij->i", x, x) + eps)[:, None]
    u = x / r
    c = u @ u.T
    xp.fill_diagonal(c, 0.0)
    value = float(xp.sum(c * c) / (N * (N - 1)))
    du = (4.0 / (N * (N - 1))) * (c @ u)
    ds = du / r - x * (xp.einsum("ij,ij->i", x, du)[:, None] / r**3)
    return value, ds.reshape(a.shape).astype(a.dtype, copy=False)


class AutoencoderEnergy(Module):
    """EBGAN's discriminator: ``D(x) = mean_p (decoder(encoder(x)) - x)^2`` per sample.

    Parameters
    ----------
    encoder : Module, ``x (N, *in) -> s (N, *code)``
    decoder : Module, ``s (N, *code) -> x_rec (N, *in)`` (same shape as ``x``)

    The parameters are keyed ``"encoder.<name>"`` and ``"decoder.<name>"``. ``forward`` returns
    the energy ``(N,)``; the codes of the batch are :meth:`codes` of the cache (for the pull-away
    term), and :meth:`backward` takes an optional gradient on them.
    """

    def __init__(self, encoder: Module, decoder: Module) -> None:
        super().__init__()
        self.encoder = self.add_module("encoder", encoder)
        self.decoder = self.add_module("decoder", decoder)

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple]:
        """``x (N, *in) -> energy (N,)``; cache: (codes, encoder/decoder caches, dE/dx_rec)."""
        x = asarray(x)
        s, c_enc = self.encoder.forward(x, train)
        x_rec, c_dec = self.decoder.forward(s, train)
        if x_rec.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: the decoder's output {x_rec.shape} must "
                             f"have the shape of the input {x.shape}")
        energy, g = reconstruction_energy(x, x_rec)
        return energy, (s, c_enc, c_dec, g)

    @staticmethod
    def codes(cache: tuple) -> np.ndarray:
        """The encoder's output ``s`` (N, *code) of the forward pass that made ``cache``."""
        return cache[0]

    def backward(self, dy: np.ndarray, cache: tuple, *, d_codes: np.ndarray | None = None,
                 param_grads: bool = True, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate ``dL/dE`` (N,) (and optionally ``dL/ds`` on the codes).

        Equations
        ---------
        ::

            g         = dE_n/dx_rec = 2 (x_rec - x) / P           (from the forward pass)
            dL/dx_rec = dy[n] g[n]
            dL/ds     = decoder.backward(dL/dx_rec) [+ d_codes]
            dL/dx     = encoder.backward(dL/ds) - dy[n] g[n]       (x is also the target)

        Parameters
        ----------
        dy : (N,), ``dL/dE``
        cache : from :meth:`forward`
        d_codes : (N, *code) or None, an extra ``dL/ds`` (e.g. the pull-away term's)
        param_grads, input_grad : as for every nanogan module

        Returns
        -------
        dx : (N, *in), or None when ``input_grad`` is False
        """
        _, c_enc, c_dec, g = cache
        dy = asarray(dy)
        if dy.shape != (len(g),):
            raise ValueError(f"{type(self).__name__}.backward: argument 'dy' expected shape "
                             f"({len(g)},), got {dy.shape}")
        d_rec = g * dy.astype(g.dtype).reshape((-1,) + (1,) * (g.ndim - 1))
        ds = self.decoder.backward(d_rec, c_dec, param_grads=param_grads)
        if d_codes is not None:
            ds = ds + asarray(d_codes, dtype=ds.dtype).reshape(ds.shape)
        kw: dict[str, Any] = {"param_grads": param_grads}
        if not input_grad and accepts_input_grad(self.encoder):
            kw["input_grad"] = False
        dx = self.encoder.backward(ds, c_enc, **kw)
        if not input_grad:
            return None
        return dx - d_rec
