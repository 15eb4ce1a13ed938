"""Batch normalisation: ``BatchNorm1d`` (features or sequences) and ``BatchNorm2d`` (images).

Both view their input as ``(N, C, M)`` (``M = 1``, ``L`` or ``H*W``) and normalise each channel
over the ``N*M`` values it holds. In training the batch statistics are used and the running
statistics are updated exactly as PyTorch does (the running variance is the *unbiased* one); in
evaluation (``train=False``) the running statistics are used and the layer is a fixed affine map per
channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import xp
from .base import Module, _fmt_shape, as_dtype, check_dy, check_real, check_sizes


class _BatchNorm(Module):
    """Common base of :class:`BatchNorm1d` and :class:`BatchNorm2d`.

    Parameters
    ----------
    num_features : int, the number of channels C
    eps : float, default 1e-5, added to the variance before the square root
    momentum : float or None, default 0.1; ``None`` means a cumulative average of all batches
    affine : bool, default True, learn a per-channel scale ``weight`` and shift ``bias``
    dtype : float32 (default) or float64

    Attributes
    ----------
    params["weight"] : (C,), ones; params["bias"] : (C,), zeros (only when ``affine``)
    buffers["running_mean"] : (C,), zeros; buffers["running_var"] : (C,), ones
    buffers["num_batches_tracked"] : 0-d int64 array
    """

    #: accepted ranks and the layout named in error messages; set by the subclasses
    _ranks: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, *, dtype=np.float32) -> None:
        super().__init__()
        (self.num_features,) = check_sizes(self, num_features=num_features)
        self.eps = check_real(self, "eps", eps, 0.0)
        self.momentum = None if momentum is None else check_real(self, "momentum", momentum,
                                                                 0.0, 1.0)
        self.affine = bool(affine)
        self.dtype = as_dtype(dtype)
        C = self.num_features
        if self.affine:
            self.weight: np.ndarray | None = self.add_param("weight", np.ones(C, self.dtype))
            self.bias: np.ndarray | None = self.add_param("bias", np.zeros(C, self.dtype))
        else:
            self.weight = self.bias = None
        # used in place of weight and bias when affine=False (not parameters)
        self._ones = xp.ones(C, self.dtype)
        self._zeros = xp.zeros(C, self.dtype)
        self.running_mean = self.add_buffer("running_mean", np.zeros(C, self.dtype))
        self.running_var = self.add_buffer("running_var", np.ones(C, self.dtype))
        self.num_batches_tracked = self.add_buffer("num_batches_tracked",
                                                   np.array(0, dtype=np.int64))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}")

    # ------------------------------------------------------------------ helpers
    def _gamma_beta(self) -> tuple[np.ndarray, np.ndarray]:
        if self.affine:
            return self.weight, self.bias
        return self._ones, self._zeros

    def _update_running(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        """PyTorch's update, in place::

            num_batches_tracked += 1
            f = momentum            (or 1 / num_batches_tracked when momentum is None)
            running_mean = (1 - f) running_mean + f mean
            running_var  = (1 - f) running_var  + f var * n / (n - 1)
        """
        self.num_batches_tracked[...] += 1
        f = (1.0 / float(self.num_batches_tracked) if self.momentum is None
             else self.momentum)
        self.running_mean *= 1 - f
        self.running_mean += f * mean
        self.running_var *= 1 - f
        self.running_var += (f * n / (n - 1)) * var

    # ------------------------------------------------------------------ the contract
    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, tuple[Any, ...]]:
        """Normalise each channel.

        Training::

            mean, var = batch mean and biased variance over (N, M)
            y = weight * (x - mean) / sqrt(var + eps) + bias

        Evaluation: the same with ``running_mean`` and ``running_var``.

        Parameters
        ----------
        x : (N, C), (N, C, L) for ``BatchNorm1d``; (N, C, H, W) for ``BatchNorm2d``
        train : use and update batch statistics (True) or use the running ones (False)

        Returns
        -------
        y : shape of ``x``; cache : what :meth:`backward` needs
        """
        from .._kernels import ops

        x = self._check_input(x, self._ranks, self._layout, {1: self.num_features})
        shape = x.shape
        N, C = shape[0], shape[1]
        x3 = xp.ascontiguousarray(x.reshape(N, C, -1))
        gamma, beta = self._gamma_beta()
        if train:
            n = x3.shape[0] * x3.shape[2]
            if n <= 1:
                raise ValueError(f"{self!r}: argument 'x' expected more than 1 value per channel "
                                 f"when training, got {_fmt_shape(shape)}")
            y3, mean, var, inv_std = ops.batchnorm_forward(x3, gamma, beta, self.eps)
            self._update_running(mean, var, n)
            return y3.reshape(shape), (True, x3, mean, inv_std, shape)
        mean = self.running_mean.copy()
        inv_std = 1 / xp.sqrt(self.running_var + self.dtype.type(self.eps))
        scale = gamma * inv_std
        shift = beta - mean * scale
        y3 = x3 * scale[None, :, None] + shift[None, :, None]
        return y3.reshape(shape), (False, x3, mean, inv_std, shape)

    def backward(self, dy: np.ndarray, cache: tuple[Any, ...], *, param_grads: bool = True,
                 input_grad: bool = True) -> np.ndarray | None:
        """Gradients of batch normalisation, per channel with ``m = N*M`` values.

        Equations
        ---------
        Training (``mean`` and ``var`` depend on ``x``)::

            xhat      = (x - mean) * inv_std,       inv_std = 1 / sqrt(var + eps)
            dL/dbias   += sum dy
            dL/dweight += sum dy * xhat
            dL/dx      = weight * inv_std / m * (m * dy - sum dy - xhat * sum(dy * xhat))

        Evaluation (running statistics are constants)::

            xhat      = (x - running_mean) * inv_std,   inv_std = 1 / sqrt(running_var + eps)
            dL/dbias   += sum dy
            dL/dweight += sum dy * xhat
            dL/dx      = dy * weight * inv_std

        Parameters
        ----------
        dy : shape of the output (= shape of ``x``)
        cache : from :meth:`forward`
        param_grads : if False, the parameter gradients are not computed
        input_grad : if False, ``dL/dx`` is not returned (None)

        Returns
        -------
        dx : shape of ``x``, or None
        """
        from .._kernels import ops

        train, x3, mean, inv_std, shape = cache
        dy = check_dy(self, dy, shape)
        dy3 = xp.ascontiguousarray(dy.astype(x3.dtype, copy=False).reshape(x3.shape))
        gamma, _ = self._gamma_beta()
        if train:
            dx3, dgamma, dbeta = ops.batchnorm_backward(dy3, x3, mean, inv_std, gamma)
            if param_grads and self.affine:
                self._grads["weight"] += dgamma
                self._grads["bias"] += dbeta
            return dx3.reshape(shape) if input_grad else None
        if param_grads and self.affine:
            xhat = (x3 - mean[None, :, None]) * inv_std[None, :, None]
            self._grads["weight"] += (dy3 * xhat).sum(axis=(0, 2))
            self._grads["bias"] += dy3.sum(axis=(0, 2))
        if not input_grad:
            return None
        return (dy3 * (gamma * inv_std)[None, :, None]).reshape(shape)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of features ``(N, C)`` or sequences ``(N, C, L)``.

    PyTorch's ``nn.BatchNorm1d``: statistics per channel over the batch (and length) axes.
    See :class:`_BatchNorm` for the parameters.
    """

    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images ``(N, C, H, W)``.

    PyTorch's ``nn.BatchNorm2d``: statistics per channel over the batch and spatial axes.
    See :class:`_BatchNorm` for the parameters.
    """

    _ranks = (4,)
    _layout = "(N, C, H, W)"
