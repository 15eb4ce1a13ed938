"""nanogan layers: every one with a hand-written forward and backward pass (see ``base.py``)."""

from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Module
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .dense import Dense
from .dropout import Dropout
from .gradient_reversal import GradientReversal
from .init import dcgan_init
from .layernorm import LayerNorm
from .maxout import Maxout
from .shape import Flatten, Reshape

__all__ = [
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dense", "Dropout", "Flatten",
    "GradientReversal", "LayerNorm", "LeakyReLU", "Maxout", "Module", "ReLU", "Reshape",
    "Sequential", "Sigmoid", "Tanh", "dcgan_init",
]
