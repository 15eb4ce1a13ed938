"""The fast path: a ``Sequential`` compiled into a plan of fused steps.

The layer files hold the plain math (``x @ W.T``, ``xp.where``, one kernel op per layer). Speed
lives here, beside them: :func:`compile` turns a :class:`~nanogan.layers.Sequential` into a
:class:`Plan` with the same ``forward -> (out, cache)`` / ``backward(dout, cache)`` contract and
the same parameters (the plan shares the network's arrays, so ``params``, ``grads``,
``state_dict`` and the optimizers see one network), that

* runs a Dense with a bias, a Conv2d or a BatchNorm followed by a ``LeakyReLU``/``ReLU`` as one
  step: the activation is applied in place in the producer's last pass over its output, and its
  gradient is taken in the same pass as the bias (or BatchNorm) sums (see :mod:`.steps`); a
  Dense followed by ``Tanh`` (a generator's output) likewise, bias and ``tanh`` in one pass
  (``ops.bias_tanh``: in the Cython set a vectorised float32 tanh of its own, ``_tanh.h``, and
  NumPy's own float64 loop, run on all cores); a Conv2d
  without a bias hands its ``LeakyReLU`` to the product itself (``ops.im2col_matmul(...,
  slope=)``), and a backward pass that wants one gradient only (D's first layer: its weight
  gradient when D trains, its input gradient when G trains through it) hands that product
  ``dy`` and ``y``, which it reads through the activation's gradient (``y=``, ``slope=``);
* keeps the images between its convolution and batch-norm steps channels first, ``(C, N, H,
  W)``, the order the products give and take (``y2 = W2 @ cols`` is ``(O, N*OH*OW)``), and
  converts to the layers' NCHW only at its ends and around steps that need it
  (:func:`.plan.layouts`);
* sends matrix products through :func:`nanogan._kernels.matmul` (one BLAS thread for small ones);
* takes the shortcuts of special shapes: a convolution whose window covers the whole image, a
  transposed convolution of a 1 x 1 input, the operand order BLAS prefers for weight gradients;
* runs a convolution's three products with its column matrix as kernel ops
  (``ops.im2col_matmul``, ``ops.matmul_col2im``, ``ops.matmul_im2col_t``) that work by tiles of
  the batch, each tile's columns made, used and dropped while they are in the cache, never the
  whole column matrix (:data:`nanogan._kernels._threads.CONV_THREAD_TILE_ELEMENTS`);
* runs the discriminator on the real and the fake batch as one batch of ``2N`` when none of its
  layers mixes samples or draws random numbers (:meth:`Plan.forward_pair`, which
  :meth:`nanogan.GAN.d_step` calls): one product per layer instead of two;
* runs the generator once per iteration where its plan can cut a stacked pass's cache by samples
  (:meth:`Plan.split_pair`): :meth:`nanogan.GAN.step` sends the last D update's noise and the G
  update's through G as one batch of ``2N`` (G does not change in between), and the G update's
  backward pass takes its half of the cache (:class:`Ahead`).

Its results equal the plain layers' (up to the order of floating-point sums; the tests hold the
two paths together layer by layer and over whole training iterations). :class:`nanogan.GAN`
trains with plans by default; ``GAN(..., fast=False)`` runs the plain layers.
"""

from __future__ import annotations

from ..layers import Module, Sequential
from .ahead import Ahead
from .plan import Plan

__all__ = ["Ahead", "Plan", "compile"]


def compile(model: Module) -> Module:
    """The fast runner of ``model``: a :class:`Plan` for a ``Sequential``; any other module is
    returned as it is (it has nothing to fuse)."""
    return Plan(model) if isinstance(model, Sequential) else model
