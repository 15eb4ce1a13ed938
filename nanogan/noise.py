"""Standard normal noise drawn from a NumPy ``Generator``'s bits by Box-Muller.

``GAN.sample_noise`` draws G's normal noise here by default (``GAN.normal_sampler =
"box-muller"``): one 64-bit word of the generator per two values
(``rng.bit_generator.random_raw``), turned into two N(0, 1) values by the kernel op
``normal_from_bits`` (equations in :func:`nanogan._kernels.reference.normal_from_bits`). The
compiled sets run that op on all cores with NumPy's own log, sin and cos loops, so every kernel
set draws the same bits. Drawing one MLP batch of 256 x 100 values takes about a third of the
time of ``rng.standard_normal`` (NumPy's ziggurat, one value at a time); see
``benchmarks/README.md``.

The generator advances by exactly ``ceil(n / 2)`` words for ``n`` values, so a run that stores
the generator's state resumes with the same noise. ``GAN.normal_sampler = "numpy"`` draws with
``rng.standard_normal`` instead, as nanogan did before (a checkpoint written then resumes so).
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import ops

#: The normal samplers a :class:`nanogan.GAN` can use (``GAN.normal_sampler``).
SAMPLERS: tuple[str, ...] = ("box-muller", "numpy")


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...],
                    dtype: np.dtype | type = np.float32) -> np.ndarray:
    """``shape`` independent N(0, 1) values of ``dtype`` (float32 or float64) from ``rng``'s
    bits, on the host.

    Parameters
    ----------
    rng : a NumPy ``Generator``; its bit generator advances by ``ceil(n / 2)`` 64-bit words,
        ``n = prod(shape)``
    shape : the shape of the result
    dtype : float32 or float64

    Returns
    -------
    z : ``shape`` array of ``dtype``
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"standard_normal: dtype must be float32 or float64, got {dtype}")
    bitgen = getattr(rng, "bit_generator", None)
    if bitgen is None:
        raise TypeError(f"standard_normal: rng must be a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"standard_normal: shape must have no negative size, got {shape}")
    n = math.prod(shape)
    words = np.asarray(bitgen.random_raw((n + 1) // 2), dtype=np.uint64)
    out = np.empty(n, dtype=dtype)
    ops.normal_from_bits(words, out)
    return out.reshape(shape)


def check_sampler(name: str, where: str) -> str:
    """``name`` if it is one of :data:`SAMPLERS`, else a ``ValueError`` naming ``where``."""
    if name not in SAMPLERS:
        raise ValueError(f"{where}: normal_sampler must be one of {list(SAMPLERS)}, got {name!r}")
    return name


def normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype | type,
           sampler: str = "box-muller") -> np.ndarray:
    """N(0, 1) values of ``shape`` and ``dtype`` from ``rng`` by ``sampler``:
    :func:`standard_normal` (``"box-muller"``) or ``rng.standard_normal`` (``"numpy"``)."""
    if check_sampler(sampler, "normal") == "numpy":
        return rng.standard_normal(shape, dtype=dtype)
    return standard_normal(rng, shape, dtype)


__all__ = ["SAMPLERS", "check_sampler", "normal", "standard_normal"]
