"""The reference configurations of BENCHMARKS.md and their FLOP counts, derived analytically.

Only the matrix products are counted (``2*M*N*K`` each; a convolution is one product over its
im2col columns): the elementwise work of activations, BatchNorm, losses and Adam is O(size) and
is left out. Each weighted layer costs the same number of multiply-adds ``macs`` per sample in
its forward product, its input-gradient product and its weight-gradient product.

What one iteration of Algorithm 1 (k = 1) needs, with "first" the network's first layer::

    D step:  G forward (z1); D forward on real and on fake; two D backward passes
             (weight grads, input grads except the first layer's: nothing asks for dL/dx)
    G step:  G forward (z2); D forward; D backward for input grads only, first layer included
             (the gradient must reach G); G backward (weight grads, input grads except the first)

What each framework computes beyond that (see :func:`iteration_flops`):

* nanogan: the minimum. The D step's backward passes skip D's first-layer input gradient and
  the G step's G backward skips G's (``input_grad=False``); the G step's D backward skips the
  weight grads (``param_grads=False``). (Earlier versions returned the first layers' input
  gradients too; the product count of a real iteration is checked in the tests.)
* PyTorch eager: autograd skips the first layers' input grads, but the G step's
  ``g_loss.backward()`` also fills D's weight grads (they are zeroed before the next D step).
* JAX: ``jax.grad`` prunes both, so it computes the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """One weighted layer: its PyTorch description and multiply-adds per sample."""

    desc: str
    macs: int


def dense(i: int, o: int) -> Layer:
    return Layer(f"Dense({i}, {o})", i * o)


def conv(cin: int, cout: int, k: int, s: int, p: int, h: int) -> Layer:
    """Conv2d on an ``h x h`` input: every output pixel is a ``cin*k*k`` dot product."""
    oh = (h + 2 * p - k) // s + 1
    return Layer(f"Conv2d({cin}, {cout}, {k}, {s}, {p}) @ {h}x{h}", cout * oh * oh * cin * k * k)


def convt(cin: int, cout: int, k: int, s: int, p: int, h: int) -> Layer:
    """ConvTranspose2d on an ``h x h`` input: every input pixel scatters a ``cout*k*k`` patch."""
    return Layer(f"ConvTranspose2d({cin}, {cout}, {k}, {s}, {p}) @ {h}x{h}",
                 cin * h * h * cout * k * k)


#: The weighted layers of each architecture, input to output.
ARCHS: dict[str, dict[str, list[Layer]]] = {
    "mlp": {
        "G": [dense(100, 256), dense(256, 256), dense(256, 784)],
        "D": [dense(784, 256), dense(256, 256), dense(256, 1)],
    },
    "dcgan": {
        "G": [convt(100, 128, 7, 1, 0, 1), convt(128, 64, 4, 2, 1, 7), convt(64, 1, 4, 2, 1, 14)],
        "D": [conv(1, 64, 4, 2, 1, 28), conv(64, 128, 4, 2, 1, 14), conv(128, 1, 7, 1, 0, 7)],
    },
}

#: config name -> (architecture, batch size)
CONFIGS: dict[str, tuple[str, int]] = {
    "mlp64": ("mlp", 64), "mlp256": ("mlp", 256), "dcgan64": ("dcgan", 64),
    "dcgan256": ("dcgan", 256),
}

#: Shapes without the batch axis: noise and real samples.
Z_SHAPE = {"mlp": (100,), "dcgan": (100, 1, 1)}
X_SHAPE = {"mlp": (784,), "dcgan": (1, 28, 28)}

#: BENCHMARKS.md's targets (nanogan time / PyTorch time); for the MLP the target is JAX's ratio
#: measured in the same run, these documented values are used only when JAX is not available.
TARGETS = {"mlp64": ("JAX jit", 0.36), "mlp256": ("JAX jit", 0.63),
           "dcgan64": ("PyTorch", 0.8), "dcgan256": ("PyTorch", 0.8)}

#: The same targets as ``(peer framework, nanogan time / peer time at most)``: the MLP at or
#: below JAX jit, DCGAN-28 at or below 0.8x PyTorch (BENCHMARKS.md, "Targets").
PEER_TARGETS = {"mlp64": ("jax", 1.0), "mlp256": ("jax", 1.0),
                "dcgan64": ("torch", 0.8), "dcgan256": ("torch", 0.8)}


def iteration_flops(arch: str, batch: int, framework: str = "minimum") -> int:
    """Matrix-product FLOPs of one iteration of Algorithm 1 (k = 1).

    Parameters
    ----------
    arch : ``"mlp"`` or ``"dcgan"``
    batch : minibatch size (real batch, and each noise batch)
    framework : ``"minimum"`` (what the algorithm needs; JAX, nanogan), ``"nanogan"`` or
        ``"torch"``

    Returns
    -------
    flops : ``2 * batch * sum of multiply-adds``
    """
    g, d = ARCHS[arch]["G"], ARCHS[arch]["D"]
    G, D = sum(x.macs for x in g), sum(x.macs for x in d)
    g0, d0 = g[0].macs, d[0].macs
    fwd = 2 * G + 3 * D                                  # G twice, D on real, fake, fake
    d_step = 2 * D + 2 * (D - d0)                        # weight grads + input grads, twice
    g_step = D + G + (G - g0)                            # D input grads; G weight + input grads
    macs = fwd + d_step + g_step
    if framework == "torch":
        macs += D                                        # D's weight grads in the G step
    elif framework not in ("minimum", "nanogan"):
        raise ValueError(f"unknown framework {framework!r}")
    return 2 * batch * macs


def layer_flops(layer: Layer, batch: int) -> dict[str, int]:
    """FLOPs of one layer's forward and of its full backward (input and weight grads)."""
    return {"forward": 2 * batch * layer.macs, "backward": 4 * batch * layer.macs}
