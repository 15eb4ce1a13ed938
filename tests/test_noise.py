"""Normal noise by Box-Muller (nanogan.noise, the kernel op ``normal_from_bits``): the equations,
the same bits in every kernel set, the distribution, the words it takes from the generator, and
how GAN, training checkpoints and generator files choose it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import KERNEL_SETS
from hypothesis import given, settings
from hypothesis import strategies as st

from nanogan import _kernels
from nanogan._kernels import _threads
from nanogan._kernels import reference as ref
from nanogan.gan import GAN
from nanogan.generator_file import load_generator, save_generator
from nanogan.layers import Dense, LeakyReLU, Sequential
from nanogan.noise import SAMPLERS, normal, standard_normal
from nanogan.train import (
    gan_config,
    gan_from_config,
    load_training_checkpoint,
    save_training_checkpoint,
)

DTYPES = [np.float32, np.float64]


def by_hand(w: int, dtype) -> tuple[float, float]:
    """The docstring's equations for one word, with Python's math module in float64."""
    a, b = w >> 24, w & 0xFFFFFF
    r = math.sqrt(-2.0 * math.log((a + 1) * 2.0 ** -40))
    t = dtype(b) * dtype(2 * math.pi / 2 ** 24)
    r, t = dtype(r), np.float64(t)
    return float(dtype(r * dtype(math.cos(t)))), float(dtype(r * dtype(math.sin(t))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_follows_its_equations(dtype):
    """Each word gives ``(r cos theta, r sin theta)`` with ``u = (a + 1) 2^-40``,
    ``r = sqrt(-2 ln u)``, ``theta = b 2 pi 2^-24``: against the math module (whose log, sin and
    cos may differ from NumPy's by an ulp), including the extreme words."""
    words = np.array([0, 2 ** 64 - 1, 2 ** 63, 0xFFFFFF, 1 << 24, 123456789123456789,
                      (2 ** 40 - 1) << 24], dtype=np.uint64)
    out = ref.normal_from_bits(words, np.empty(2 * len(words), dtype))
    want = np.array([v for w in words for v in by_hand(int(w), dtype)], dtype)
    np.testing.assert_allclose(out, want, rtol=4 * np.finfo(dtype).eps, atol=1e-6)
    # the word 0: u = 2^-40, the largest radius sqrt(80 ln 2) at angle 0
    np.testing.assert_allclose(out[:2], [math.sqrt(80 * math.log(2)), 0.0], rtol=1e-6)
    # all ones: u = 1, radius 0 (finite zeros, never a NaN from log or sqrt)
    assert np.all(out[2:4] == 0)
    assert np.isfinite(out).all() and np.abs(out).max() <= 7.45


@pytest.mark.parametrize("name", KERNEL_SETS)
@settings(max_examples=25, deadline=None)
@given(n=st.one_of(st.integers(0, 9), st.integers(10, 3000), st.sampled_from([25600, 60001])),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2 ** 32 - 1))
def test_every_set_writes_the_references_bits(name, n, dtype, seed):
    """Serial and parallel, odd and even lengths, runs shorter and longer than the kernel's
    chunk: the reference's values to the bit (the compiled sets run NumPy's own loops)."""
    k = _kernels.load(name)
    words = np.random.default_rng(seed).bit_generator.random_raw((n + 1) // 2)
    want = ref.normal_from_bits(words, np.empty(n, dtype))
    for parallel_min in (2 ** 62, 0):
        old = _threads.NOISE_PARALLEL_MIN
        _threads.NOISE_PARALLEL_MIN = parallel_min
        _threads._load[:] = [math.inf, True]  # the load check says: cores to spare
        try:
            out = np.full(n, np.nan, dtype)
            got = k.normal_from_bits(words.copy(), out)
        finally:
            _threads.NOISE_PARALLEL_MIN = old
            _threads._load[:] = [-math.inf, True]
        assert got is out
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif("cython" not in KERNEL_SETS, reason="the Cython kernels are not built")
def test_cython_kernel_serves_both_dtypes_and_its_fallback_is_the_reference():
    """Where NumPy's loops pass their check the kernel serves the dtype itself (returns True);
    with them switched off it returns False and the op gives the reference's values."""
    from nanogan._kernels import _cython_kernels as ext

    words = np.random.default_rng(1).bit_generator.random_raw(700)
    assert set(ext.NOISE_FROM_NUMPY) == {"float32", "float64"}
    k = _kernels.load("cython")
    for dtype in DTYPES:
        out = np.empty(1400, dtype)
        assert ext.normal_from_bits(words, out, dtype(ref.ANGLE_STEP), True)
        try:
            assert ext.use_numpy_noise(False) == []
            assert not ext.normal_from_bits(words, np.empty(1400, dtype), dtype(ref.ANGLE_STEP),
                                            True)
            np.testing.assert_array_equal(k.normal_from_bits(words, np.empty(1400, dtype)), out)
        finally:
            ext.use_numpy_noise(True)
        np.testing.assert_array_equal(out, ref.normal_from_bits(words, np.empty(1400, dtype)))


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.frompyfunc(math.erf, 1, 1)(x / math.sqrt(2)).astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_values_are_standard_normal_and_pairs_independent(dtype):
    """On 2,000,000 values: mean, variance, skewness, kurtosis and the 3-sigma tails within a
    few standard errors of N(0, 1)'s; the two values of a word uncorrelated, and so are their
    squares (a radius shared by both would correlate them); the Kolmogorov-Smirnov distance to
    N(0, 1)'s distribution function below its 0.1% critical value."""
    n = 2_000_000
    z = standard_normal(np.random.default_rng(2024), (n,), dtype).astype(np.float64)
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs((z ** 3).mean()) < 5 * math.sqrt(15) * se
    assert abs((z ** 4).mean() - 3) < 5 * math.sqrt(96) * se
    tail = (np.abs(z) > 3).mean()
    p3 = 1 - math.erf(3 / math.sqrt(2))
    assert abs(tail - p3) < 5 * math.sqrt(p3 / n)
    c, s = z[0::2], z[1::2]
    assert abs(np.corrcoef(c, s)[0, 1]) < 5 / math.sqrt(n / 2)
    assert abs(np.corrcoef(c * c, s * s)[0, 1]) < 5 / math.sqrt(n / 2)
    x = np.sort(z[:200_000])
    ecdf = np.arange(1, len(x) + 1) / len(x)
    ks = np.abs(ecdf - _normal_cdf(x)).max()
    assert ks < 1.95 / math.sqrt(len(x))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 256])
def test_generator_advances_by_one_word_per_two_values(n):
    """``ceil(n / 2)`` words of the bit generator, no more: a stored state resumes the noise."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    z = standard_normal(a, (n,), np.float32)
    b.bit_generator.random_raw((n + 1) // 2)
    assert a.bit_generator.state == b.bit_generator.state
    assert z.shape == (n,) and z.dtype == np.float32
    c = np.random.default_rng(4)
    np.testing.assert_array_equal(standard_normal(c, (3, 5, 1, 1), np.float64).reshape(-1),
                                  standard_normal(np.random.default_rng(4), (15,), np.float64))


def test_bad_arguments_are_refused_with_names():
    with pytest.raises(ValueError, match="normal_from_bits: argument 'words' expected shape"):
        ref.normal_from_bits(np.zeros(3, np.uint64), np.empty(4, np.float32))
    with pytest.raises(ValueError, match="words must be a 1-D uint64 array"):
        ref.normal_from_bits(np.zeros(2, np.int64), np.empty(4, np.float32))
    with pytest.raises(ValueError, match="out must be a 1-D float32 or float64"):
        ref.normal_from_bits(np.zeros(2, np.uint64), np.empty(4, np.float16))
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got float16"):
        standard_normal(np.random.default_rng(0), (4,), np.float16)
    with pytest.raises(ValueError, match=r"shape must have no negative size, got \(2, -1\)"):
        standard_normal(np.random.default_rng(0), (2, -1), np.float32)
    with pytest.raises(TypeError, match=r"must be a numpy\.random\.Generator, got RandomState"):
        standard_normal(np.random.RandomState(0), (4,), np.float32)
    with pytest.raises(ValueError, match="normal_sampler must be one of"):
        normal(np.random.default_rng(0), (4,), np.float32, "ziggurat")


def tiny_gan(**kwargs) -> GAN:
    rng = np.random.default_rng(0)
    G = Sequential(Dense(4, 8, rng=rng), LeakyReLU(0.2), Dense(8, 3, rng=rng))
    D = Sequential(Dense(3, 8, rng=rng), LeakyReLU(0.2), Dense(8, 1, rng=rng))
    return GAN(G, D, **kwargs)


def test_gan_draws_by_its_normal_sampler():
    """The default is Box-Muller; ``"numpy"`` is ``rng.standard_normal``; an unknown name is
    refused when the GAN is built."""
    gan = tiny_gan()
    assert gan.normal_sampler == "box-muller" and SAMPLERS == ("box-muller", "numpy")
    np.testing.assert_array_equal(gan.sample_noise(6, np.random.default_rng(1)),
                                  standard_normal(np.random.default_rng(1), (6, 4), np.float32))
    gan.normal_sampler = "numpy"
    np.testing.assert_array_equal(gan.sample_noise(6, np.random.default_rng(1)),
                                  np.random.default_rng(1).standard_normal((6, 4), np.float32))
    assert tiny_gan(normal_sampler="numpy").normal_sampler == "numpy"
    with pytest.raises(ValueError, match="GAN: normal_sampler must be one of"):
        tiny_gan(normal_sampler="ziggurat")


def test_checkpoints_carry_the_sampler_and_older_ones_resume_with_numpys(tmp_path):
    """A training checkpoint and a generator file name the sampler; one written before the
    sampler existed names none and loads with ``"numpy"``, what its run drew."""
    gan = tiny_gan()
    config = gan_config(gan)
    assert config["normal_sampler"] == "box-muller"
    assert gan_from_config(config).normal_sampler == "box-muller"
    del config["normal_sampler"]
    assert gan_from_config(config).normal_sampler == "numpy"

    path = save_training_checkpoint(tmp_path / "run.npz", gan, np.random.default_rng(0))
    assert load_training_checkpoint(path)["gan"].normal_sampler == "box-muller"
    numpy_gan = tiny_gan(normal_sampler="numpy")
    path = save_training_checkpoint(tmp_path / "old.npz", numpy_gan, np.random.default_rng(0))
    assert load_training_checkpoint(path)["gan"].normal_sampler == "numpy"

    g = load_generator(save_generator(tmp_path / "G.npz", gan))
    assert g.normal_sampler == "box-muller"
    np.testing.assert_array_equal(g.sample_noise(5, np.random.default_rng(2)),
                                  gan.sample_noise(5, np.random.default_rng(2)))
