"""JAX's side: the same GANs as pure functions, the whole iteration as one ``jax.jit`` function.

Convolutions are ``lax.conv_general_dilated``; a transposed convolution is the same call on the
input dilated by the stride (``lhs_dilation``) with the kernel flipped and its in/out axes
swapped, padded by ``k - 1 - p``, which is PyTorch's ``ConvTranspose2d``. BatchNorm runs in
training mode and updates its running statistics (unbiased variance, momentum 0.1) as the other
two frameworks do. Adam is ``optax.adam(2e-4, b1=0.5, b2=0.999, eps=1e-8)``, PyTorch's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from specs import Z_SHAPE

# (kind, parameter prefix, stride, padding); prefixes follow PyTorch's Sequential indices
LAYERS: dict[str, dict[str, list[tuple]]] = {
    "mlp": {
        "G": [("dense", "0"), ("lrelu",), ("dense", "2"), ("lrelu",), ("dense", "4"), ("tanh",)],
        "D": [("dense", "0"), ("lrelu",), ("dense", "2"), ("lrelu",), ("dense", "4")],
    },
    "dcgan": {
        "G": [("convt", "0", 1, 0), ("bn", "1"), ("relu",), ("convt", "3", 2, 1), ("bn", "4"),
              ("relu",), ("convt", "6", 2, 1), ("tanh",)],
        "D": [("conv", "0", 2, 1), ("lrelu",), ("conv", "2", 2, 1), ("bn", "3"), ("lrelu",),
              ("conv", "5", 1, 0), ("flatten",)],
    },
}

_NCHW = ("NCHW", "OIHW", "NCHW")


def _batchnorm(x, p, s, key, eps=1e-5, momentum=0.1):
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    m = x.size // x.shape[1]
    y = (x - mean[None, :, None, None]) * lax.rsqrt(var + eps)[None, :, None, None]
    y = y * p[f"{key}.weight"][None, :, None, None] + p[f"{key}.bias"][None, :, None, None]
    new = {f"{key}.running_mean": (1 - momentum) * s[f"{key}.running_mean"] + momentum * mean,
           f"{key}.running_var": ((1 - momentum) * s[f"{key}.running_var"]
                                  + momentum * var * (m / (m - 1)))}
    return y, new


def apply(layers: list[tuple], p: Mapping, s: Mapping, x):
    """Run a network in training mode: ``(output, updated BatchNorm statistics)``."""
    s = dict(s)
    for spec in layers:
        kind = spec[0]
        if kind == "dense":
            x = x @ p[f"{spec[1]}.weight"].T + p[f"{spec[1]}.bias"]
        elif kind == "conv":
            _, key, st, pad = spec
            x = lax.conv_general_dilated(x, p[f"{key}.weight"], (st, st),
                                         [(pad, pad), (pad, pad)], dimension_numbers=_NCHW)
        elif kind == "convt":
            _, key, st, pad = spec
            w = p[f"{key}.weight"]                              # (Cin, Cout, k, k), PyTorch's
            k = w.shape[2]
            w = jnp.flip(w, (2, 3)).transpose(1, 0, 2, 3)       # (Cout, Cin, k, k)
            q = k - 1 - pad
            x = lax.conv_general_dilated(x, w, (1, 1), [(q, q), (q, q)], lhs_dilation=(st, st),
                                         dimension_numbers=_NCHW)
        elif kind == "bn":
            x, new = _batchnorm(x, p, s, spec[1])
            s.update(new)
        elif kind == "lrelu":
            x = jnp.where(x > 0, x, 0.2 * x)
        elif kind == "relu":
            x = jnp.maximum(x, 0)
        elif kind == "tanh":
            x = jnp.tanh(x)
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
    return x, s


def _split(state: Mapping[str, np.ndarray], params: Mapping[str, Any], dtype) -> tuple:
    p = {k: jnp.asarray(np.asarray(v), dtype) for k, v in state.items() if k in params}
    s = {k: jnp.asarray(np.asarray(v), dtype) for k, v in state.items()
         if k.endswith(("running_mean", "running_var"))}
    return p, s


class JaxGAN:
    """Parameters, statistics and optimizer states of G and D, and the jitted iteration.

    Parameters
    ----------
    arch : ``"mlp"`` or ``"dcgan"``
    g_state, d_state : nanogan ``state_dict()``s (PyTorch's keys) to start from
    g_params, d_params : the trainable keys (nanogan's ``params``)
    """

    def __init__(self, arch: str, g_state: Mapping, d_state: Mapping, g_params: Mapping,
                 d_params: Mapping, dtype=jnp.float32) -> None:
        self.arch, self.dtype = arch, dtype
        self.gp, self.gs = _split(g_state, g_params, dtype)
        self.dp, self.ds = _split(d_state, d_params, dtype)
        self.opt = optax.adam(2e-4, b1=0.5, b2=0.999, eps=1e-8)
        self.g_os, self.d_os = self.opt.init(self.gp), self.opt.init(self.dp)
        g_layers, d_layers = LAYERS[arch]["G"], LAYERS[arch]["D"]
        opt = self.opt

        def iteration(gp, gs, dp, ds, g_os, d_os, x, z1, z2):
            fake, gs = apply(g_layers, gp, gs, z1)
            fake = lax.stop_gradient(fake)

            def d_loss(dp, ds):
                s_real, ds = apply(d_layers, dp, ds, x)
                s_fake, ds = apply(d_layers, dp, ds, fake)
                return (jax.nn.softplus(-s_real).mean() + jax.nn.softplus(s_fake).mean()), ds

            (dl, ds), grads = jax.value_and_grad(d_loss, has_aux=True)(dp, ds)
            upd, d_os = opt.update(grads, d_os, dp)
            dp = optax.apply_updates(dp, upd)

            def g_loss(gp, gs, ds):
                fake, gs = apply(g_layers, gp, gs, z2)
                s_fake, ds = apply(d_layers, dp, ds, fake)
                return jax.nn.softplus(-s_fake).mean(), (gs, ds)

            (gl, (gs, ds)), grads = jax.value_and_grad(g_loss, has_aux=True)(gp, gs, ds)
            upd, g_os = opt.update(grads, g_os, gp)
            gp = optax.apply_updates(gp, upd)
            return gp, gs, dp, ds, g_os, d_os, dl, gl

        zshape = Z_SHAPE[arch]

        def noisy_iteration(gp, gs, dp, ds, g_os, d_os, x, key):
            key, k1, k2 = jax.random.split(key, 3)
            z1 = jax.random.normal(k1, (x.shape[0], *zshape), dtype)
            z2 = jax.random.normal(k2, (x.shape[0], *zshape), dtype)
            return (*iteration(gp, gs, dp, ds, g_os, d_os, x, z1, z2), key)

        self._fixed = jax.jit(iteration)
        self._noisy = jax.jit(noisy_iteration, donate_argnums=(0, 1, 2, 3, 4, 5, 7))

    def fixed_iteration(self, x: np.ndarray, z1: np.ndarray, z2: np.ndarray) -> tuple[float, float]:
        """One iteration on given noise (for the cross-check): ``(d_loss, g_loss)``."""
        out = self._fixed(self.gp, self.gs, self.dp, self.ds, self.g_os, self.d_os,
                          jnp.asarray(x, self.dtype), jnp.asarray(z1, self.dtype),
                          jnp.asarray(z2, self.dtype))
        self.gp, self.gs, self.dp, self.ds, self.g_os, self.d_os = out[:6]
        return float(out[6]), float(out[7])

    def make_step(self, x_real: np.ndarray, seed: int = 1) -> Callable[[], tuple[float, float]]:
        """``step()`` runs one jitted iteration with noise drawn inside, and waits for it."""
        x = jnp.asarray(x_real, self.dtype)
        key = [jax.random.PRNGKey(seed)]

        def step() -> tuple[float, float]:
            out = self._noisy(self.gp, self.gs, self.dp, self.ds, self.g_os, self.d_os, x,
                              key[0])
            self.gp, self.gs, self.dp, self.ds, self.g_os, self.d_os = out[:6]
            key[0] = out[8]
            return float(out[6]), float(out[7])

        return step
