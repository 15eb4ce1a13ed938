"""nanogan: generative adversarial nets from scratch in NumPy, every gradient by hand.

Layers follow PyTorch's names, argument names, shapes and state-dict keys (see the README).
``set_backend("cupy")`` (or ``NANOGAN_BACKEND=cupy``) computes on a GPU with CuPy
(:mod:`nanogan.backend`, docs/backends.md); NumPy is the default.
"""

from . import data, layers, losses, optim, penalties
from ._kernels import available as available_kernels
from ._kernels import get_backend as kernel_backend
from ._kernels import set_backend as set_kernel_backend
from .backend import get_backend, set_backend
from .gan import GAN
from .gradcheck import gradcheck, numerical_gradient, rel_error
from .layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Dropout,
    Flatten,
    GradientReversal,
    LayerNorm,
    LeakyReLU,
    Maxout,
    Module,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    dcgan_init,
)

__version__ = "0.1.0"

__all__ = [
    "GAN", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dense", "Dropout",
    "Flatten", "GradientReversal", "LayerNorm", "LeakyReLU", "Maxout", "Module", "ReLU",
    "Reshape", "Sequential", "Sigmoid", "Tanh",
    "available_kernels", "data", "dcgan_init", "get_backend", "gradcheck", "kernel_backend",
    "layers", "losses", "numerical_gradient", "optim", "penalties", "rel_error", "set_backend",
    "set_kernel_backend",
]
